"""UDP through the module (sendto/recvfrom, connected UDP) and a server on the module
(bind/listen/accept through AT+CIPSERVER) serving unmodified http.server."""
import http.server
import socket
import threading
import urllib.request

import pytest

from facade.helpers import read_to_eof
from support.servers import dns_query, free_port, parse_dns_response
from wizsock import _orig


def test_udp_dns_sendto_recvfrom(dns, patched, at_log):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(5)
        s.sendto(dns_query("test.local", qid=7), (dns.host, dns.port))
        data, addr = s.recvfrom(512)
        assert addr == (dns.host, dns.port)
        assert parse_dns_response(data) == (7, 0, ["127.0.0.1"])
        s.sendto(dns_query("example.test", qid=8), (dns.host, dns.port))
        data, addr = s.recvfrom(512)
        assert parse_dns_response(data) == (8, 0, ["127.0.0.2"])
        assert s.family == socket.AF_INET and s.type == socket.SOCK_DGRAM
    finally:
        s.close()
    assert ("test.local", 1) in dns.queries
    assert at_log.count('"UDP"') == 1


def test_connected_udp(dns, patched):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.connect((dns.host, dns.port))
        assert s.getpeername() == (dns.host, dns.port)
        s.send(dns_query("nonexistent.test", qid=9))
        qid, rcode, ips = parse_dns_response(s.recv(512))
        assert (qid, rcode, ips) == (9, 3, [])          # NXDOMAIN
        buf = bytearray(512)
        s.send(dns_query("test.local", qid=10))
        n = s.recv_into(buf)
        assert parse_dns_response(bytes(buf[:n])) == (10, 0, ["127.0.0.1"])


def test_udp_recv_timeout(dns, patched):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        s.connect((dns.host, dns.port))
        with pytest.raises(TimeoutError):
            s.recvfrom(512)


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = f"served from the module to {self.client_address[0]}\n".encode() * 100
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_http_server_on_the_module(patched, at_log):
    port = free_port()
    server = http.server.HTTPServer(("", port), Hello)      # unmodified stdlib server
    assert server.socket.getsockname()[1] == port
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    try:
        # the host fetches it with its own network (the emulator exposes the module's
        # server port on loopback).  Each fetch reads to the server's close before the
        # next one connects: a client that closes first races the module's CIPCLOSE
        # against the next connection taking the same link id (see docs/design.md §3g).
        for _ in range(3):
            with _orig.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(b"GET / HTTP/1.1\r\nHost: module\r\nConnection: close\r\n\r\n")
                raw = read_to_eof(c)
            head, _, body = raw.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            assert body.startswith(b"served from the module to ") and len(body) > 2000
        with _orig.internal():   # and urllib, once
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
                assert r.read().startswith(b"served from the module to ")
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)
    assert at_log.count("CIPSERVER=1") == 1
    assert at_log.count("CIPSTART") == 0


def test_accept_timeout_and_nonblocking(patched):
    port = free_port()
    with socket.socket() as lsock:
        lsock.bind(("0.0.0.0", port))
        lsock.listen(2)
        lsock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            lsock.accept()
        lsock.setblocking(False)
        with pytest.raises(BlockingIOError):
            lsock.accept()
        lsock.settimeout(10)
        with _orig.internal():
            c = socket.create_connection(("127.0.0.1", port))
        conn, addr = lsock.accept()
        with conn, c:
            assert addr[0] == "127.0.0.1"
            c.sendall(b"ping")
            assert conn.recv(10) == b"ping"
            conn.sendall(b"pong")
            assert c.recv(10) == b"pong"


def test_udp_server_on_the_module(patched):
    port = free_port(socket.SOCK_DGRAM)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as srv:
        srv.bind(("", port))
        assert srv.getsockname()[1] == port
        srv.settimeout(5)
        with _orig.socket(socket.AF_INET, socket.SOCK_DGRAM) as host:
            host.bind(("127.0.0.1", 0))
            host.settimeout(5)
            for i in range(3):
                host.sendto(b"ping %d" % i, ("127.0.0.1", port))
                data, addr = srv.recvfrom(100)
                assert data == b"ping %d" % i and addr == host.getsockname()
                srv.sendto(b"pong " + data, addr)
                assert host.recvfrom(100) == (b"pong ping %d" % i, ("127.0.0.1", port))


def test_asyncio_server_on_the_module(patched):
    import asyncio
    port = free_port()

    async def main():
        async def echo(reader, writer):
            data = await reader.readline()
            writer.write(b"echo: " + data)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "0.0.0.0", port)
        async with server:
            def client():
                with _orig.create_connection(("127.0.0.1", port), timeout=10) as c:
                    c.sendall(b"hello module\n")
                    return read_to_eof(c)
            return await asyncio.get_running_loop().run_in_executor(None, client)

    assert asyncio.run(main()) == b"echo: hello module\n"


def test_asyncio_datagram_endpoint(dns, patched):
    import asyncio

    async def main():
        loop = asyncio.get_running_loop()
        got = loop.create_future()

        class Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                if not got.done():
                    got.set_result((data, addr))

        transport, _ = await loop.create_datagram_endpoint(Proto, remote_addr=(dns.host, dns.port))
        try:
            transport.sendto(dns_query("test.local", qid=21))
            return await asyncio.wait_for(got, 10)
        finally:
            transport.close()

    data, addr = asyncio.run(main())
    assert addr == (dns.host, dns.port)
    assert parse_dns_response(data) == (21, 0, ["127.0.0.1"])
