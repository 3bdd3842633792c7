"""The far side of the module, run inside the lab's server namespace (see lab.py).

Serves, each on its own address of 198.51.100.0/24 (on that namespace's loopback):
HTTP (blobs, a POST digest, a pip index), HTTPS (a trustme CA, certificate for
``secure.test``), HTTP/2 over TLS (hypercorn, ``h2.test``: the same blobs and digest), DNS over UDP (answers from the lab's name table), a TCP echo, an
XML-RPC server.  Prints one JSON line when everything listens, then serves until
killed.  The clients are the programs under test; these servers are test fixtures.
"""
import hashlib
import http.server
import json
import os
import socket
import socketserver
import ssl
import sys
import threading
import xmlrpc.server

import dns.message
import dns.rrset
import trustme

ADDR = {
    "web": "198.51.100.10", "secure": "198.51.100.11", "dns": "198.51.100.53",
    "echo": "198.51.100.20", "rpc": "198.51.100.30", "mqtt": "198.51.100.40",
    "redis": "198.51.100.41", "pypi": "198.51.100.12", "h2": "198.51.100.13",
}
NAMES = {
    "web.test": ADDR["web"], "secure.test": ADDR["secure"], "echo.test": ADDR["echo"],
    "rpc.test": ADDR["rpc"], "mqtt.test": ADDR["mqtt"], "redis.test": ADDR["redis"],
    "pypi.test": ADDR["pypi"], "ns.test": ADDR["dns"], "h2.test": ADDR["h2"],
    # names only the lab's DNS server knows (for resolvers that ask it over UDP)
}
SESSION_PORTS = range(8081, 8087)   # six more HTTP servers: six keep-alive pools
DNS_ONLY = {"alpha.zone.test": "203.0.113.1", "beta.zone.test": "203.0.113.2",
            "gamma.zone.test": "203.0.113.3"}


def blob(n: int) -> bytes:
    """n deterministic bytes (clients check them by digest)."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"wizsock-lab-%d" % i).digest()
        i += 1
    return bytes(out[:n])


def make_wheel(directory: str) -> str:
    import base64
    import zipfile

    name = "wizprobe-1.0-py3-none-any.whl"
    files = {
        "wizprobe/__init__.py": b"VALUE = 42\n",
        "wizprobe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: wizprobe\nVersion: 1.0\n",
        "wizprobe-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: lab\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append("wizprobe-1.0.dist-info/RECORD,,")
    path = os.path.join(directory, name)
    with zipfile.ZipFile(path, "w") as z:
        for p, data in files.items():
            z.writestr(p, data)
        z.writestr("wizprobe-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return path


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wheel = None

    def log_message(self, *a):
        pass

    def _send(self, body: bytes, ctype="application/octet-stream", code=200):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path.startswith("/blob/"):
            return self._send(blob(int(path[6:])))
        if path == "/":
            return self._send(b"hello from behind the module\n", "text/plain")
        if path in ("/simple/", "/simple/wizprobe/"):
            name = os.path.basename(self.wheel)
            digest = hashlib.sha256(open(self.wheel, "rb").read()).hexdigest()
            html = f'<html><body><a href="/files/{name}#sha256={digest}">{name}</a></body></html>'
            return self._send(html.encode(), "text/html")
        if path.startswith("/files/"):
            return self._send(open(self.wheel, "rb").read())
        self._send(b"not found", "text/plain", 404)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        self._send(json.dumps({"n": len(body), "sha256": hashlib.sha256(body).hexdigest()}).encode(),
                   "application/json")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64


def serve_dns(sock):
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            q = dns.message.from_wire(data)
        except Exception:
            continue
        r = dns.message.make_response(q)
        for question in q.question:
            name = question.name.to_text().rstrip(".").lower()
            ip = DNS_ONLY.get(name) or NAMES.get(name)
            if ip and question.rdtype == 1:
                r.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", ip))
        if not r.answer:
            r.set_rcode(3)  # NXDOMAIN
        sock.sendto(r.to_wire(), peer)


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


async def h2_app(scope, receive, send):
    """ASGI: GET /blob/N (N deterministic bytes), POST (the body's length and digest)."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        event = await receive()
        body += event.get("body", b"")
        if not event.get("more_body"):
            break
    if scope["method"] == "POST":
        out = json.dumps({"n": len(body), "sha256": hashlib.sha256(body).hexdigest()}).encode()
    elif scope["path"].startswith("/blob/"):
        out = blob(int(scope["path"][6:]))
    else:
        out = b"not found"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(out)).encode()),
                            (b"x-http-version", scope.get("http_version", "").encode())]})
    await send({"type": "http.response.body", "body": out})


def serve_h2(ca, workdir):
    """hypercorn on h2.test:443, TLS with ALPN h2 (HTTP/2 only: a client that fell back
    to HTTP/1.1 would not be tested)."""
    import asyncio

    import hypercorn.asyncio
    import hypercorn.config

    cert = ca.issue_cert("h2.test")
    certfile, keyfile = os.path.join(workdir, "h2.pem"), os.path.join(workdir, "h2.key")
    cert.cert_chain_pems[0].write_to_path(certfile)
    for extra in cert.cert_chain_pems[1:]:
        with open(certfile, "ab") as f:
            f.write(extra.bytes())
    cert.private_key_pem.write_to_path(keyfile)
    config = hypercorn.config.Config()
    config.bind = [f"{ADDR['h2']}:443"]
    config.certfile, config.keyfile = certfile, keyfile
    config.alpn_protocols = ["h2"]
    config.accesslog = config.errorlog = None

    async def forever():                 # not signals: this is not the main thread
        await asyncio.Event().wait()

    asyncio.run(hypercorn.asyncio.serve(h2_app, config, shutdown_trigger=forever))


def main():
    workdir = sys.argv[1]
    ca = trustme.CA()
    ca_path = os.path.join(workdir, "ca.pem")
    ca.cert_pem.write_to_path(ca_path)
    Handler.wheel = make_wheel(workdir)
    web = Server((ADDR["web"], 80), Handler)
    pypi = Server((ADDR["pypi"], 80), Handler)
    tls = Server((ADDR["secure"], 443), Handler)
    sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("secure.test").configure_cert(sctx)
    tls.socket = sctx.wrap_socket(tls.socket, server_side=True)
    echo = EchoServer((ADDR["echo"], 7), Echo)
    rpc = xmlrpc.server.SimpleXMLRPCServer((ADDR["rpc"], 8000), logRequests=False, allow_none=True)
    rpc.register_function(lambda data: hashlib.sha256(data.data).hexdigest(), "digest")
    rpc.register_function(lambda a, b: a + b, "add")
    servers = [web, pypi, tls, echo, rpc]
    servers += [Server((ADDR["web"], port), Handler) for port in SESSION_PORTS]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    threading.Thread(target=serve_h2, args=(ca, workdir), daemon=True).start()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((ADDR["dns"], 53))
    threading.Thread(target=serve_dns, args=(udp,), daemon=True).start()
    print(json.dumps({"ca": ca_path, "wheel": Handler.wheel}), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
