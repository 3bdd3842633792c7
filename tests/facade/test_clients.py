"""Stock clients over the emulated module: urllib.request, http.client, httpx (sync),
smtplib with STARTTLS, websocket-client."""
import http.client
import json
import smtplib
import ssl
import urllib.request
from email.message import EmailMessage

import httpx
import pytest
import websocket

import wizsock
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
