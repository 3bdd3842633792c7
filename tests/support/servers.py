"""Real servers on loopback for the test suite (owned by the test-support engineer).

Every helper binds to 127.0.0.1 only, picks a free port unless told otherwise,
and is a context manager that stops its server (threads joined, sockets closed,
processes terminated) on exit.  Import them directly::

    from support.servers import (test_ca, mosquitto_broker, https_server, http_server,
                                 udp_dns_server, tcp_echo_server, tcp_sink, tcp_source,
                                 sntp_server, deterministic_bytes)

or use the pytest fixtures of `support.fixtures` (``ca``, ``mosquitto``,
``mosquitto_tls``, ``mosquitto_mtls``, ``https_srv``, ``http_srv``, ``dns``, ``tcp_echo``,
``sink``, ``sntp``)::

    from support.fixtures import *  # noqa: F401,F403   (in a test module or a conftest)

API
---
``test_ca() -> TestCA``  (also a context manager that deletes its files)
    A trustme CA.  ``.issue_cert("localhost", "127.0.0.1") -> trustme.LeafCert``;
    ``.server_context(cert=None)`` / ``.client_context()`` -> ``ssl.SSLContext``
    (server uses a default "localhost"/"127.0.0.1"/"::1" leaf, client trusts the CA
    and verifies hostnames); ``.ca_pem_path`` (str), ``.ca_pem`` (bytes);
    ``.server_cert_path`` / ``.server_key_path`` (PEM files of the default leaf);
    ``.client_cert(name="client") -> (cert_path, key_path)`` for mutual TLS;
    ``.paths(leaf) -> (cert_path, key_path)`` for any leaf.

``mosquitto_broker(tls=None, port=0, tls_port=0, username=None, password=None,
                   require_certificate=False, ca=None, server_names=None, users=None) -> Broker``
    Runs the real ``mosquitto`` binary (skips locally / fails under CI=true when it
    is missing).  ``tls``: None/False = plain listener only; True = also a TLS
    listener with certificates from ``ca`` (a TestCA; a fresh one is made if None).
    ``require_certificate=True`` makes the TLS listener demand a client certificate
    signed by the CA (AWS-style).  ``server_names`` (e.g. ``["hub.azure-devices.net"]``)
    gives the TLS listener a certificate for those names (implies TLS).
    ``username``/``password`` (or ``users={name: password}``) turn off anonymous access.
    Broker: ``.host`` ("127.0.0.1"), ``.port``, ``.tls_port`` (None without TLS),
    ``.ca``, ``.restart(down=0.0)`` (same ports; ``down`` seconds offline),
    ``.stop()``, ``.start()``, ``.running``, ``.log()`` (the broker's log text).

``https_server(ca=None, handler=None) -> HTTPServerInfo`` / ``http_server(handler=None)``
    Threaded HTTP/1.1 (keep-alive) server; TLS from the test CA for https (handshake
    in the connection's thread, so a failing client never blocks the server).
    Default handler (``DefaultHandler``; pass your own BaseHTTPRequestHandler subclass):
      GET  /bytes/<n>     n bytes of ``deterministic_bytes(n)``; header X-SHA256
      GET  /slow/<sec>    sleeps, then b"slow ok"
      GET  /status/<code> that status, empty body
      GET  /headers       JSON of the request headers
      GET  /              b"hello from the test server\\n"
      POST /echo          the body back (Content-Length or chunked upload)
      POST <other path>   JSON {"length": n, "sha256": hex} of the body
      HEAD                same headers as GET, no body
    Info: ``.host``, ``.port``, ``.url`` ("https://localhost:PORT" or
    "http://127.0.0.1:PORT"), ``.ip_url`` (always 127.0.0.1; the certificate covers it), ``.ca``, ``.requests`` (list of (method, path)),
    ``.connections`` (number of TCP connections accepted; keep-alive checks).

``udp_dns_server(records, port=0) -> DNSServerInfo``
    Answers A queries over UDP from ``records`` ({"name": "ip" or [ips]}, names
    case-insensitive); unknown names get NXDOMAIN, other query types an empty
    NOERROR answer.  ``.host``, ``.port``, ``.queries`` (list of (name, qtype)).
    Wire helpers: ``dns_query(name, qid=0x1234, qtype=1) -> bytes``,
    ``parse_dns_response(data) -> (qid, rcode, [ips])``.

``tcp_echo_server() -> TCPServerInfo``: echoes every byte; half-close is mirrored.
``tcp_sink(reply=False) -> Sink``: reads each connection to EOF and records
    ``(nbytes, sha256hex)`` in ``.results``; ``.wait(count=1, timeout=10)`` returns
    the results.  ``reply=N`` (int) makes it answer b"<n> <sha256>\\n" and close after
    exactly N bytes (for peers that cannot half-close, like the module).
``tcp_source(data=None, n=None, close=True) -> Source``: sends ``data`` (or
    ``deterministic_bytes(n)``) to every connection, then closes it;
    ``.data``, ``.sha256``.

``sntp_server(offset=0.0, port=0, stratum=2) -> SNTPServerInfo``
    A tiny SNTP (RFC 4330) responder over UDP: answers client requests with the
    host clock plus ``offset`` seconds. ``.host``, ``.port``, ``.address``
    ("127.0.0.1:PORT"), ``.requests`` (count).

``deterministic_bytes(n) -> bytes``: the payload of /bytes/<n> and tcp_source(n=...).
``free_port(kind=socket.SOCK_STREAM) -> int``: a currently free loopback port.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple, Union

LOOPBACK = "127.0.0.1"

__all__ = [
    "LOOPBACK", "free_port", "deterministic_bytes", "sha256",
    "TestCA", "test_ca",
    "Broker", "mosquitto_broker", "mosquitto_available",
    "DefaultHandler", "HTTPServerInfo", "https_server", "http_server",
    "DNSServerInfo", "udp_dns_server", "dns_query", "parse_dns_response",
    "TCPServerInfo", "tcp_echo_server", "Sink", "tcp_sink", "Source", "tcp_source",
    "SNTPServerInfo", "sntp_server", "NTP_EPOCH_OFFSET",
]


# --------------------------------------------------------------------------- basics

def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that is free on 127.0.0.1 right now (for servers that cannot bind 0)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


_PATTERN = bytes((i * 131 + 7) % 256 for i in range(251))   # period 251, not a power of two


def deterministic_bytes(n: int) -> bytes:
    """n bytes of a fixed pattern (period 251) — the payload of /bytes/<n>."""
    if n <= 0:
        return b""
    reps = n // len(_PATTERN) + 1
    return (_PATTERN * reps)[:n]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wait_tcp(host: str, port: int, timeout: float, alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + timeout
    last: Optional[Exception] = None
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"server on {host}:{port} exited before accepting")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as e:
            last = e
            time.sleep(0.02)
    raise TimeoutError(f"nothing accepted on {host}:{port} within {timeout}s ({last})")


class _Stoppable:
    """Base of the threaded servers: a context manager that stops on exit."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


# --------------------------------------------------------------------------- test CA

class TestCA:
    """A trustme CA with its PEM files in a private temporary directory."""

    __test__ = False  # not a pytest test class

    def __init__(self, organization: str = "wizsock test CA"):
        import trustme

        self.ca = trustme.CA(organization_name=organization)
        self.dir = tempfile.mkdtemp(prefix="wizsock-ca-")
        self.ca_pem = self.ca.cert_pem.bytes()
        self.ca_pem_path = self._write("ca.pem", self.ca_pem)
        self.server_cert = self.issue_cert("localhost", "127.0.0.1", "::1")
        self.server_cert_path, self.server_key_path = self.paths(self.server_cert, "server")
        self._n = 0

    # -- files
    def _write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o600)
        return path

    def paths(self, leaf, stem: Optional[str] = None) -> Tuple[str, str]:
        """Write `leaf` (a trustme LeafCert) as PEM files; -> (cert_path, key_path)."""
        if stem is None:
            self._n += 1
            stem = f"leaf{self._n}"
        chain = b"".join(b.bytes() for b in leaf.cert_chain_pems)
        return (self._write(stem + ".crt", chain),
                self._write(stem + ".key", leaf.private_key_pem.bytes()))

    # -- certificates
    def issue_cert(self, *names: str, common_name: Optional[str] = None):
        """A leaf certificate for `names` (DNS names and/or IP addresses)."""
        names = names or ("localhost", "127.0.0.1")
        return self.ca.issue_cert(*names, common_name=common_name)

    def client_cert(self, name: str = "client") -> Tuple[str, str]:
        """A client certificate (CN=name) for mutual TLS; -> (cert_path, key_path)."""
        leaf = self.ca.issue_cert(name, common_name=name)
        return self.paths(leaf, "client-" + re.sub(r"[^A-Za-z0-9_.-]", "_", name))

    # -- contexts
    def server_context(self, cert=None, require_client_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (cert or self.server_cert).configure_cert(ctx)
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(ctx)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(ctx)
        return ctx

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


def test_ca(organization: str = "wizsock test CA") -> TestCA:
    """A fresh trustme CA (usable as a context manager that removes its files)."""
    return TestCA(organization)


test_ca.__test__ = False  # type: ignore[attr-defined]  # keep pytest from collecting it


# --------------------------------------------------------------------------- mosquitto

def mosquitto_available() -> Optional[str]:
    return shutil.which("mosquitto") or (os.path.exists("/usr/sbin/mosquitto") and "/usr/sbin/mosquitto") or None


def _mosquitto_hash(password: str) -> str:
    """A mosquitto 2.x password-file hash ($6$: SHA-512 over password + salt)."""
    salt = os.urandom(12)
    digest = hashlib.sha512(password.encode() + salt).digest()
    return "$6$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


class Broker:
    """A real mosquitto on loopback (see module docstring)."""

    host = LOOPBACK

    def __init__(self, binary: str, tls=None, port: int = 0, tls_port: int = 0,
                 username: Optional[str] = None, password: Optional[str] = None,
                 require_certificate: bool = False, ca: Optional[TestCA] = None,
                 server_names: Optional[Iterable[str]] = None, users: Optional[Dict[str, str]] = None):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="wizsock-mosq-")
        self.port = port or free_port()
        self._own_ca = False
        self.ca: Optional[TestCA] = None
        self.tls_port: Optional[int] = None
        if tls or require_certificate or server_names:
            if ca is None:
                ca = TestCA()
                self._own_ca = True
            self.ca = ca
            self.tls_port = tls_port or free_port()
        cert_path = key_path = None
        if server_names:
            cert_path, key_path = ca.paths(ca.issue_cert(*server_names))
        elif self.ca is not None:
            cert_path, key_path = self.ca.server_cert_path, self.ca.server_key_path
        self.username = username
        self.require_certificate = require_certificate
        self.conf_path = os.path.join(self.dir, "mosquitto.conf")
        self.log_path = os.path.join(self.dir, "mosquitto.log")
        lines = [
            "per_listener_settings false",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            "connection_messages true",
            "max_keepalive 65535",
        ]
        if os.geteuid() == 0:
            import pwd
            lines.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
        users = dict(users or {})
        if username is not None:
            users[username] = password or ""
        if users:
            pw_path = os.path.join(self.dir, "passwd")
            with open(pw_path, "w") as f:
                for user, pw in users.items():
                    if ":" in user or "\n" in user:
                        raise ValueError("mosquitto user names cannot hold ':' or newlines")
                    f.write(f"{user}:{_mosquitto_hash(pw)}\n")
            os.chmod(pw_path, 0o600)
            lines += ["allow_anonymous false", f"password_file {pw_path}"]
        else:
            lines.append("allow_anonymous true")
        lines.append(f"listener {self.port} {LOOPBACK}")
        if self.tls_port is not None:
            assert self.ca is not None
            lines += [
                f"listener {self.tls_port} {LOOPBACK}",
                f"cafile {self.ca.ca_pem_path}",
                f"certfile {cert_path}",
                f"keyfile {key_path}",
                "tls_version tlsv1.2",
                f"require_certificate {'true' if require_certificate else 'false'}",
            ]
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc: Optional[subprocess.Popen] = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> "Broker":
        if self.running:
            return self
        self.proc = subprocess.Popen([self.binary, "-c", self.conf_path],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        try:
            for p in (self.port, self.tls_port):
                if p is not None:
                    _wait_tcp(self.host, p, timeout, alive=lambda: self.proc.poll() is None)
        except Exception as e:
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {e}\n{self.log()}") from e
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def restart(self, down: float = 0.0, timeout: float = 10.0) -> "Broker":
        """Stop and start again on the same ports (clients see a dropped connection)."""
        self.stop()
        if down:
            time.sleep(down)
        deadline = time.monotonic() + timeout
        while True:   # the old listening sockets may take a moment to be released
            try:
                return self.start(timeout=max(1.0, deadline - time.monotonic()))
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self) -> None:
        self.stop()
        if self._own_ca and self.ca is not None:
            self.ca.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __repr__(self):
        return f"<Broker {self.host}:{self.port} tls={self.tls_port} running={self.running}>"


@contextlib.contextmanager
def mosquitto_broker(tls=None, port: int = 0, tls_port: int = 0, username: Optional[str] = None,
                     password: Optional[str] = None, require_certificate: bool = False,
                     ca: Optional[TestCA] = None, server_names: Optional[Iterable[str]] = None,
                     users: Optional[Dict[str, str]] = None):
    """Run a real mosquitto on 127.0.0.1 (see module docstring); yields a Broker."""
    binary = mosquitto_available()
    if binary is None:
        from conftest import require  # tests/conftest.py: skip locally, fail under CI
        require(False, "mosquitto binary (apt-get install mosquitto)")
    if isinstance(tls, TestCA) and ca is None:
        ca = tls
    broker = Broker(binary, tls=tls, port=port, tls_port=tls_port, username=username,
                    password=password, require_certificate=require_certificate, ca=ca,
                    server_names=server_names, users=users)
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


# --------------------------------------------------------------------------- HTTP(S)

class DefaultHandler(http.server.BaseHTTPRequestHandler):
    """The default test handler (routes in the module docstring)."""

    protocol_version = "HTTP/1.1"
    timeout = 60
    server_version = "wizsock-test/1.0"

    def log_message(self, format, *args):  # keep the test output quiet
        pass

    def _record(self):
        self.server.info.requests.append((self.command, self.path))

    def _send(self, status: int, body: bytes = b"", ctype: str = "application/octet-stream",
              headers: Iterable[Tuple[str, str]] = (), head: bool = False):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if body and not head:
            self.wfile.write(body)

    def _get(self, head: bool = False):
        self._record()
        path = self.path.split("?", 1)[0]
        m = re.fullmatch(r"/bytes/(\d+)", path)
        if m:
            n = int(m.group(1))
            data = deterministic_bytes(n)
            return self._send(200, data, headers=[("X-SHA256", sha256(data))], head=head)
        m = re.fullmatch(r"/slow/([0-9.]+)", path)
        if m:
            time.sleep(float(m.group(1)))
            return self._send(200, b"slow ok", "text/plain", head=head)
        m = re.fullmatch(r"/status/(\d{3})", path)
        if m:
            return self._send(int(m.group(1)), b"", "text/plain", head=head)
        if path == "/headers":
            body = json.dumps(dict(self.headers.items())).encode()
            return self._send(200, body, "application/json", head=head)
        if path == "/":
            return self._send(200, b"hello from the test server\n", "text/plain", head=head)
        return self._send(404, b"not found\n", "text/plain", head=head)

    def do_GET(self):
        self._get()

    def do_HEAD(self):
        self._get(head=True)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_POST(self):
        self._record()
        body = self._read_body()
        if self.path.split("?", 1)[0] == "/echo":
            return self._send(200, body)
        doc = json.dumps({"length": len(body), "sha256": sha256(body)}).encode()
        self._send(200, doc, "application/json")

    do_PUT = do_POST


class _ThreadingHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, info, ssl_context=None):
        self.info = info
        self.ssl_context = ssl_context
        self._conns: set = set()
        self._conns_lock = threading.Lock()
        self._workers: List[threading.Thread] = []
        super().__init__(addr, handler)

    def process_request(self, request, client_address):
        self.info.connections += 1
        with self._conns_lock:
            self._conns.add(request)
            self._workers = [t for t in self._workers if t.is_alive()]
            t = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                                 name=f"test-http-conn-{client_address[1]}", daemon=True)
            self._workers.append(t)
        t.start()

    def finish_request(self, request, client_address):
        conn = request
        if self.ssl_context is not None:   # handshake here, in the connection's own thread
            request.settimeout(30)
            try:
                conn = self.ssl_context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return
            with self._conns_lock:
                self._conns.add(conn)
        try:
            self.RequestHandlerClass(conn, client_address, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            if conn is not request:
                with self._conns_lock:
                    self._conns.discard(conn)
                with contextlib.suppress(OSError):
                    conn.close()

    def shutdown_request(self, request):
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):  # connection resets are normal in tests
        pass

    def close_all(self):
        with self._conns_lock:
            conns, self._conns = list(self._conns), set()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                c.close()


class HTTPServerInfo(_Stoppable):
    host = LOOPBACK

    def __init__(self, handler, ca: Optional[TestCA], tls: bool):
        self.ca = ca
        self.tls = tls
        self.requests: List[Tuple[str, str]] = []
        self.connections = 0
        ctx = ca.server_context() if tls and ca is not None else None
        self.server = _ThreadingHTTPServer((LOOPBACK, 0), handler or DefaultHandler, self, ctx)
        self.port = self.server.server_address[1]
        self.url = f"https://localhost:{self.port}" if tls else f"http://{LOOPBACK}:{self.port}"
        self.ip_url = f"{'https' if tls else 'http'}://{LOOPBACK}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"test-http-{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self.server.shutdown()
        self.server.server_close()
        self.server.close_all()
        self._thread.join(5)
        self._thread = None
        for t in list(self.server._workers):   # their sockets are closed now: they end
            t.join(5)


@contextlib.contextmanager
def https_server(ca: Optional[TestCA] = None, handler=None):
    """A threaded HTTPS (HTTP/1.1, keep-alive) server on 127.0.0.1; yields HTTPServerInfo."""
    own = ca is None
    if own:
        ca = TestCA()
    srv = HTTPServerInfo(handler, ca, tls=True)
    try:
        yield srv
    finally:
        srv.stop()
        if own:
            ca.cleanup()


@contextlib.contextmanager
def http_server(handler=None):
    """The plain-HTTP variant of https_server."""
    srv = HTTPServerInfo(handler, None, tls=False)
    try:
        yield srv
    finally:
        srv.stop()


# --------------------------------------------------------------------------- DNS over UDP

def _encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode("idna") if not label.isascii() else label.encode()
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def _decode_name(data: bytes, off: int) -> Tuple[str, int]:
    labels, jumped, end = [], False, off
    for _ in range(128):
        n = data[off]
        if n == 0:
            off += 1
            break
        if n & 0xC0 == 0xC0:
            ptr = ((n & 0x3F) << 8) | data[off + 1]
            if not jumped:
                end = off + 2
            jumped = True
            off = ptr
            continue
        labels.append(data[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    else:
        raise ValueError("name loop")
    return ".".join(labels), (end if jumped else off)


def dns_query(name: str, qid: int = 0x1234, qtype: int = 1) -> bytes:
    """A standard recursive query for `name` (qtype 1 = A)."""
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + _encode_name(name) + struct.pack("!HH", qtype, 1)


def parse_dns_response(data: bytes) -> Tuple[int, int, List[str]]:
    """-> (id, rcode, [IPv4 addresses of the A answers])."""
    qid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", data[:12])
    off = 12
    for _ in range(qd):
        _, off = _decode_name(data, off)
        off += 4
    ips = []
    for _ in range(an):
        _, off = _decode_name(data, off)
        rtype, _, _, rdlen = struct.unpack("!HHIH", data[off:off + 10])
        off += 10
        if rtype == 1 and rdlen == 4:
            ips.append(socket.inet_ntoa(data[off:off + 4]))
        off += rdlen
    return qid, flags & 0xF, ips


class _UDPServer(_Stoppable):
    """A UDP server on 127.0.0.1: `answer(datagram) -> reply or None` in one thread."""

    host = LOOPBACK

    def __init__(self, port: int, name: str):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, port))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.address = f"{LOOPBACK}:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"test-{name}-{self.port}", daemon=True)
        self._thread.start()

    def answer(self, data: bytes) -> Optional[bytes]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _run(self):
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            try:
                reply = self.answer(data)
            except (ValueError, IndexError, struct.error):
                reply = None
            if reply is not None:
                with contextlib.suppress(OSError):
                    self.sock.sendto(reply, addr)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


class DNSServerInfo(_UDPServer):
    def __init__(self, records: Dict[str, Union[str, List[str]]], port: int = 0):
        self.records = {k.lower().rstrip("."): ([v] if isinstance(v, str) else list(v))
                        for k, v in records.items()}
        self.queries: List[Tuple[str, int]] = []
        super().__init__(port, "dns")

    def answer(self, query: bytes) -> Optional[bytes]:
        if len(query) < 12:
            return None
        qid, flags, qd, _, _, _ = struct.unpack("!HHHHHH", query[:12])
        if flags & 0x8000 or qd != 1:
            return None
        name, off = _decode_name(query, 12)
        qtype, qclass = struct.unpack("!HH", query[off:off + 4])
        question = query[12:off + 4]
        self.queries.append((name, qtype))
        ips = self.records.get(name.lower().rstrip("."))
        rd = flags & 0x0100
        if ips is None:
            return struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | 0x0080 | 3, 1, 0, 0, 0) + question
        answers = b""
        count = 0
        if qtype in (1, 255) and qclass == 1:
            for ip in ips:
                answers += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)
                count += 1
        return struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | 0x0080, 1, count, 0, 0) + question + answers


@contextlib.contextmanager
def udp_dns_server(records: Dict[str, Union[str, List[str]]], port: int = 0):
    """A real DNS server over UDP on 127.0.0.1 answering A queries from `records`."""
    srv = DNSServerInfo(records, port)
    try:
        yield srv
    finally:
        srv.stop()


# --------------------------------------------------------------------------- raw TCP

class TCPServerInfo(_Stoppable):
    """A threaded TCP server; `serve(conn)` runs in one thread per connection."""

    host = LOOPBACK

    def __init__(self, serve: Callable[[socket.socket], None], name: str = "tcp"):
        self._serve = serve
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((LOOPBACK, 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.1)
        self.port = self.lsock.getsockname()[1]
        self.address = (LOOPBACK, self.port)
        self.connections = 0
        self._conns: List[socket.socket] = []
        self._threads: List[threading.Thread] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name=f"test-{name}-{self.port}", daemon=True)
        self._thread.start()

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            conn.settimeout(None)
            self.connections += 1
            self._conns.append(conn)
            t = threading.Thread(target=self._run_one, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _run_one(self, conn):
        try:
            self._serve(conn)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.lsock.close()
        for c in self._conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                c.close()
        for t in self._threads:
            t.join(5)


def _echo(conn: socket.socket) -> None:
    while True:
        data = conn.recv(65536)
        if not data:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_WR)
            return
        conn.sendall(data)


@contextlib.contextmanager
def tcp_echo_server():
    """Echoes every byte back; EOF from the client is answered with EOF."""
    srv = TCPServerInfo(_echo, "echo")
    try:
        yield srv
    finally:
        srv.stop()


class Sink(TCPServerInfo):
    def __init__(self, reply=False):
        self.reply = reply
        self.results: List[Tuple[int, str]] = []
        #: per transfer, when its bytes arrived (time.monotonic: one clock for every
        #: process of the host): (first recv's time, its bytes, last recv's time)
        self.arrivals: List[Tuple[float, int, float]] = []
        self._cond = threading.Condition()
        super().__init__(self._sink, "sink")

    def _sink(self, conn: socket.socket) -> None:
        h = hashlib.sha256()
        n = 0
        first: Optional[Tuple[float, int]] = None
        last = 0.0
        limit = self.reply if (self.reply is not False and self.reply is not True) else None
        while limit is None or n < limit:
            data = conn.recv(65536 if limit is None else min(65536, limit - n))
            if not data:
                break
            last = time.monotonic()
            if first is None:
                first = (last, len(data))
            h.update(data)
            n += len(data)
        digest = h.hexdigest()
        if first is not None:
            self.arrivals.append((first[0], first[1], last))
        if limit is not None:
            conn.sendall(f"{n} {digest}\n".encode())
        with self._cond:
            self.results.append((n, digest))
            self._cond.notify_all()

    def wait(self, count: int = 1, timeout: float = 10.0) -> List[Tuple[int, str]]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.results) >= count, timeout):
                raise TimeoutError(f"sink got {len(self.results)} of {count} transfers")
            return list(self.results)


@contextlib.contextmanager
def tcp_sink(reply=False):
    """Reads each connection to EOF (or `reply` bytes) and records (n, sha256)."""
    srv = Sink(reply)
    try:
        yield srv
    finally:
        srv.stop()


class Source(TCPServerInfo):
    def __init__(self, data: bytes, close: bool = True):
        self.data = data
        self.sha256 = sha256(data)
        self.close_after = close
        super().__init__(self._source, "source")

    def _source(self, conn: socket.socket) -> None:
        conn.sendall(self.data)
        if self.close_after:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_WR)
        # drain until the peer closes, so our close never turns into a reset
        while conn.recv(65536):
            pass


@contextlib.contextmanager
def tcp_source(data: Optional[bytes] = None, n: Optional[int] = None, close: bool = True):
    """Sends `data` (or deterministic_bytes(n)) to every connection, then EOF."""
    if data is None:
        data = deterministic_bytes(n or 0)
    srv = Source(bytes(data), close)
    try:
        yield srv
    finally:
        srv.stop()


# --------------------------------------------------------------------------- SNTP

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01


def _ntp_ts(t: float) -> bytes:
    t += NTP_EPOCH_OFFSET
    sec = int(t)
    frac = int((t - sec) * (1 << 32)) & 0xFFFFFFFF
    return struct.pack("!II", sec & 0xFFFFFFFF, frac)


class SNTPServerInfo(_UDPServer):
    def __init__(self, offset: float = 0.0, port: int = 0, stratum: int = 2):
        self.offset = offset
        self.stratum = stratum
        self.requests = 0
        super().__init__(port, "sntp")

    def now(self) -> float:
        return time.time() + self.offset

    def answer(self, data: bytes) -> Optional[bytes]:
        if len(data) < 48 or (data[0] & 0x07) != 3:   # only client-mode requests
            return None
        self.requests += 1
        vn = (data[0] >> 3) & 0x07 or 4
        recv = _ntp_ts(self.now())
        head = struct.pack("!BBbb", (vn << 3) | 4, self.stratum, 6, -20)
        head += struct.pack("!II", 0, 0) + b"LOCL"
        return head + _ntp_ts(self.now() - 1) + data[40:48] + recv + _ntp_ts(self.now())


@contextlib.contextmanager
def sntp_server(offset: float = 0.0, port: int = 0, stratum: int = 2):
    """A tiny SNTP responder on 127.0.0.1 (host clock + offset)."""
    srv = SNTPServerInfo(offset, port, stratum)
    try:
        yield srv
    finally:
        srv.stop()
