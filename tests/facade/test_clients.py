"""Stock clients over the emulated module: urllib.request, http.client, httpx (sync),
smtplib with STARTTLS, websocket-client."""
import http.client
import smtplib
import urllib.request
from email.message import EmailMessage

import httpx
import websocket

from facade.peers import SMTPServer, WebSocketEchoServer


def test_urllib_request(https_srv, patched, at_log):
    ctx = https_srv.ca.client_context()
    with urllib.request.urlopen(https_srv.url + "/bytes/20000", context=ctx, timeout=10) as r:
        body = r.read()
    assert len(body) == 20000
    assert at_log.count("CIPSTART") == 1


def test_http_client_keepalive(http_srv, patched):
    conn = http.client.HTTPConnection("127.0.0.1", http_srv.port, timeout=10)
    try:
        for n in (10, 5000, 70000):
            conn.request("GET", f"/bytes/{n}")
            r = conn.getresponse()
            assert r.status == 200 and len(r.read()) == n
        conn.request("POST", "/echo", body=b"x" * 3000, headers={"Content-Type": "application/octet-stream"})
        assert conn.getresponse().read() == b"x" * 3000
        assert conn.sock.getpeername() == ("127.0.0.1", http_srv.port)
    finally:
        conn.close()
    assert http_srv.connections == 1


def test_httpx_sync(https_srv, patched, at_log):
    with httpx.Client(verify=https_srv.ca.client_context(), timeout=10) as client:
        r = client.get(https_srv.url + "/headers")
        assert r.status_code == 200 and "host" in {k.lower() for k in r.json()}
        r = client.post(https_srv.url + "/echo", content=b"y" * 50000)
        assert r.content == b"y" * 50000
    assert at_log.count("CIPSTART") == 1


def test_smtplib_starttls(ca, patched, at_log):
    with SMTPServer(ca.server_context()) as server:
        msg = EmailMessage()
        msg["From"] = "alice@example.test"
        msg["To"] = "bob@example.test"
        msg["Subject"] = "over the module"
        msg.set_content("Hello over a WizFi360.\n" * 50)
        with smtplib.SMTP("127.0.0.1", server.port, local_hostname="wizsock", timeout=10) as smtp:
            smtp.ehlo()
            assert smtp.has_extn("starttls")
            smtp.starttls(context=ca.client_context())
            smtp.ehlo()
            refused = smtp.send_message(msg)
        assert refused == {}
        ((mail_from, rcpts, data, was_tls),) = server.messages
        assert was_tls and rcpts == ["<bob@example.test>"]
        assert b"Hello over a WizFi360." in data
    assert at_log.count("CIPSTART") == 1


def test_websocket_client(patched, at_log):
    with WebSocketEchoServer() as server:
        ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/echo", timeout=10)
        try:
            ws.send("hello")
            assert ws.recv() == "hello"
            ws.send_binary(bytes(range(256)) * 100)
            assert ws.recv() == bytes(range(256)) * 100
            ws.ping(b"p")
        finally:
            ws.close()
        assert server.received[0] == b"hello"
    assert at_log.count("CIPSTART") == 1


def test_ssl_wrap_before_connect_goes_over_the_module(https_srv, patched, at_log):
    import socket
    import wizsock.ssl as wssl
    ctx = https_srv.ca.client_context()
    s = ctx.wrap_socket(socket.socket(), server_hostname="localhost")
    assert isinstance(s, wssl.SSLSocket)
    with s:
        s.settimeout(10)
        s.connect(("127.0.0.1", https_srv.port))
        assert s.getpeername() == ("127.0.0.1", https_srv.port)
        assert s.version().startswith("TLS")
        assert s.getpeercert()["subjectAltName"]
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 200")
    assert at_log.count("CIPSTART") == 1


def test_alpn_and_sni_reach_the_server(ca, patched):
    import socket
    import threading
    from wizsock import _orig
    seen = {}
    server_ctx = ca.server_context()
    server_ctx.set_alpn_protocols(["h2", "http/1.1"])
    server_ctx.sni_callback = lambda sslobj, name, ctx: seen.__setitem__("sni", name)
    lsock = _orig.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)

    def serve():
        with _orig.internal():
            conn, _ = lsock.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                seen["alpn"] = tls.selected_alpn_protocol()
                tls.sendall(b"ok")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    ctx = ca.client_context()
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(lsock.getsockname(), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.recv(2) == b"ok"
            assert tls.selected_alpn_protocol() == "h2"
    t.join(5)
    lsock.close()
    assert seen == {"sni": "localhost", "alpn": "h2"}
