"""The shared loopback servers work as documented (real clients against them)."""
import hashlib
import http.client
import json
import socket
import ssl
import struct
import threading
import time
import urllib.request

import pytest

from support import servers
from support.fixtures import *  # noqa: F401,F403
from support.servers import (deterministic_bytes, dns_query, http_server,
                             mosquitto_broker, parse_dns_response, sntp_server, tcp_echo_server,
                             tcp_sink, tcp_source, udp_dns_server)

mqtt = pytest.importorskip("paho.mqtt.client")


# ------------------------------------------------------------------ helpers

def _paho(port, tls_ctx=None, username=None, password=None, cert=None):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t{time.monotonic_ns()}")
    if tls_ctx is not None:
        if cert:
            tls_ctx.load_cert_chain(*cert)
        c.tls_set_context(tls_ctx)
    if username is not None:
        c.username_pw_set(username, password)
    return c


def _roundtrip(port, tls_ctx=None, **kw):
    """Connect, subscribe, publish to self, return the received payload (or raise)."""
    got = []
    ev = threading.Event()
    connected = threading.Event()
    rc_box = []
    c = _paho(port, tls_ctx, **kw)

    def on_connect(client, userdata, flags, rc, props=None):
        rc_box.append(rc)
        connected.set()
        if not rc.is_failure:
            client.subscribe("t/#", qos=1)

    def on_subscribe(client, userdata, mid, rcs, props=None):
        client.publish("t/x", b"hello", qos=1)

    def on_message(client, userdata, msg):
        got.append((msg.topic, msg.payload))
        ev.set()

    c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
    c.connect(servers.LOOPBACK, port, keepalive=10)
    c.loop_start()
    try:
        assert connected.wait(10), "no CONNACK"
        if rc_box[0].is_failure:
            return rc_box[0]
        assert ev.wait(10), "no message"
        return got[0]
    finally:
        c.disconnect()
        c.loop_stop()


# ------------------------------------------------------------------ CA

def test_ca_contexts_verify_each_other(ca):
    srv_ctx = ca.server_context()
    cli_ctx = ca.client_context()
    lsock = socket.create_server(("127.0.0.1", 0))
    port = lsock.getsockname()[1]
    out = []

    def serve():
        conn, _ = lsock.accept()
        with srv_ctx.wrap_socket(conn, server_side=True) as s:
            out.append(s.recv(5))
            s.sendall(b"pong")

    t = threading.Thread(target=serve)
    t.start()
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with cli_ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"ping!")
            assert s.recv(4) == b"pong"
    t.join(5)
    lsock.close()
    assert out == [b"ping!"]
    with open(ca.ca_pem_path, "rb") as f:
        assert f.read().startswith(b"-----BEGIN CERTIFICATE-----")
    cert, key = ca.client_cert("dev1")
    assert open(cert, "rb").read().startswith(b"-----BEGIN CERTIFICATE-----")
    assert b"PRIVATE KEY" in open(key, "rb").read()


def test_ca_is_not_collected_as_a_test():
    assert servers.test_ca.__test__ is False and servers.TestCA.__test__ is False


# ------------------------------------------------------------------ mosquitto

def test_missing_mosquitto_skips_locally_and_fails_under_ci(monkeypatch):
    from conftest import IN_CI
    monkeypatch.setattr(servers, "mosquitto_available", lambda: None)
    expected = pytest.fail.Exception if IN_CI else pytest.skip.Exception
    with pytest.raises(expected, match="mosquitto"):
        with mosquitto_broker():
            pass


def test_mosquitto_plain_roundtrip_and_restart():
    with mosquitto_broker() as b:
        assert b.host == "127.0.0.1" and b.tls_port is None
        assert _roundtrip(b.port) == ("t/x", b"hello")
        port = b.port
        b.restart()
        assert b.port == port and b.running
        assert _roundtrip(b.port) == ("t/x", b"hello")
    assert not b.running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_mosquitto_restart_drops_clients_and_paho_reconnects(mosquitto):
    connects = []
    again = threading.Event()
    c = _paho(mosquitto.port)
    c.reconnect_delay_set(0.1, 0.5)

    def on_connect(client, userdata, flags, rc, props=None):
        connects.append(rc)
        if len(connects) == 2:
            again.set()

    c.on_connect = on_connect
    c.connect(mosquitto.host, mosquitto.port, keepalive=5)
    c.loop_start()
    try:
        deadline = time.monotonic() + 10
        while not connects and time.monotonic() < deadline:
            time.sleep(0.02)
        mosquitto.restart(down=0.3)
        assert again.wait(15), "paho did not reconnect after the restart"
    finally:
        c.disconnect()
        c.loop_stop()


def test_mosquitto_tls_verifies_against_the_ca(mosquitto_tls, ca):
    assert mosquitto_tls.ca is ca and mosquitto_tls.tls_port
    assert _roundtrip(mosquitto_tls.tls_port, ca.client_context()) == ("t/x", b"hello")
    # a client trusting another CA refuses the broker
    with servers.test_ca() as other:
        with pytest.raises(ssl.SSLCertVerificationError):
            _roundtrip(mosquitto_tls.tls_port, other.client_context())


def test_mosquitto_requires_client_certificate(mosquitto_mtls, ca):
    ok = _roundtrip(mosquitto_mtls.tls_port, ca.client_context(), cert=ca.client_cert("thing1"))
    assert ok == ("t/x", b"hello")
    # without a client certificate the broker ends the TLS session: no CONNACK ever comes
    connect = bytes([0x10, 14, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 10, 0, 2]) + b"c1"
    with socket.create_connection(("127.0.0.1", mosquitto_mtls.tls_port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)) as ei:
            s = ca.client_context().wrap_socket(raw, server_hostname="localhost")
            s.sendall(connect)
            if s.recv(4) == b"":
                raise ConnectionError("closed")
        assert not isinstance(ei.value, ssl.SSLCertVerificationError)


def test_mosquitto_username_password():
    with mosquitto_broker(username="alice", password="s3cr\"t,x") as b:
        assert _roundtrip(b.port, username="alice", password="s3cr\"t,x") == ("t/x", b"hello")
        rc = _roundtrip(b.port, username="alice", password="wrong")
        assert rc.is_failure
        assert "s3cr" not in b.log()


# ------------------------------------------------------------------ HTTP(S)

def test_https_bytes_post_slow_keepalive(https_srv, ca):
    assert https_srv.url.startswith("https://localhost:")
    conn = http.client.HTTPSConnection("localhost", https_srv.port, context=ca.client_context(), timeout=10)
    conn.request("GET", "/bytes/100000")
    r = conn.getresponse()
    body = r.read()
    assert body == deterministic_bytes(100000)
    assert r.getheader("X-SHA256") == hashlib.sha256(body).hexdigest()
    payload = bytes(range(256)) * 1200
    conn.request("POST", "/upload", body=payload)
    doc = json.loads(conn.getresponse().read())
    assert doc == {"length": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    conn.request("POST", "/echo", body=b"abc")
    assert conn.getresponse().read() == b"abc"
    t0 = time.monotonic()
    conn.request("GET", "/slow/0.3")
    assert conn.getresponse().read() == b"slow ok"
    assert time.monotonic() - t0 >= 0.3
    conn.close()
    assert https_srv.connections == 1  # all four over one keep-alive connection
    assert [m for m, _ in https_srv.requests] == ["GET", "POST", "POST", "GET"]


def test_https_rejects_untrusting_client(https_srv):
    with pytest.raises(urllib.error.URLError) as ei:
        urllib.request.urlopen(https_srv.url + "/", timeout=10)
    assert isinstance(ei.value.reason, ssl.SSLCertVerificationError)
    # the server survives a failed handshake
    ctx = https_srv.ca.client_context()
    assert urllib.request.urlopen(https_srv.url + "/", context=ctx, timeout=10).read().startswith(b"hello")
    assert urllib.request.urlopen(https_srv.ip_url + "/bytes/3", context=ctx, timeout=10).read() == \
        deterministic_bytes(3)


def test_http_plain_chunked_upload_and_stop_with_open_keepalive():
    with http_server() as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        conn.request("POST", "/x", body=iter([b"ab", b"cde"]), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
        doc = json.loads(conn.getresponse().read())
        assert doc["length"] == 5
        conn.request("GET", "/status/418")
        assert conn.getresponse().status == 418
        # leave the keep-alive connection open: stop() must still return promptly, its thread joined
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 5
    assert not [t for t in threading.enumerate() if t.name.startswith("test-http")]
    conn.close()


# ------------------------------------------------------------------ DNS

def test_udp_dns_answers_a_records():
    with udp_dns_server({"Broker.Test": "127.0.0.1", "multi.test": ["127.0.0.2", "127.0.0.3"]}) as d:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        s.sendto(dns_query("broker.test", 7), (d.host, d.port))
        assert parse_dns_response(s.recvfrom(512)[0]) == (7, 0, ["127.0.0.1"])
        s.sendto(dns_query("multi.test", 8), (d.host, d.port))
        assert parse_dns_response(s.recvfrom(512)[0]) == (8, 0, ["127.0.0.2", "127.0.0.3"])
        s.sendto(dns_query("nope.test", 9), (d.host, d.port))
        assert parse_dns_response(s.recvfrom(512)[0]) == (9, 3, [])
        s.sendto(dns_query("multi.test", 10, qtype=28), (d.host, d.port))
        assert parse_dns_response(s.recvfrom(512)[0]) == (10, 0, [])
        s.close()
        assert d.queries[0] == ("broker.test", 1)


# ------------------------------------------------------------------ raw TCP

def test_tcp_echo_byte_exact():
    data = deterministic_bytes(300_000)
    with tcp_echo_server() as e:
        with socket.create_connection(e.address, timeout=10) as s:
            t = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
            t.start()
            got = bytearray()
            while chunk := s.recv(65536):
                got += chunk
            t.join()
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_tcp_sink_and_source():
    data = deterministic_bytes(123_457)
    with tcp_sink() as sink:
        with socket.create_connection(sink.address) as s:
            s.sendall(data)
        assert sink.wait(1) == [(len(data), hashlib.sha256(data).hexdigest())]
    with tcp_sink(reply=1000) as sink:
        with socket.create_connection(sink.address, timeout=10) as s:
            s.sendall(data[:1000])
            line = s.makefile("rb").readline()
        assert line == f"1000 {hashlib.sha256(data[:1000]).hexdigest()}\n".encode()
    with tcp_source(n=50_000) as src:
        with socket.create_connection(src.address, timeout=10) as s:
            got = bytearray()
            while chunk := s.recv(65536):
                got += chunk
        assert bytes(got) == deterministic_bytes(50_000)
        assert hashlib.sha256(got).hexdigest() == src.sha256


# ------------------------------------------------------------------ SNTP

def test_sntp_answers_with_offset():
    with sntp_server(offset=3600) as srv:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        req = bytes([0x23]) + bytes(39) + b"\x01\x02\x03\x04\x05\x06\x07\x08"
        s.sendto(req, (srv.host, srv.port))
        data, _ = s.recvfrom(512)
        s.close()
        assert len(data) == 48 and data[0] & 7 == 4 and data[24:32] == req[40:48]
        sec = struct.unpack("!I", data[40:44])[0] - servers.NTP_EPOCH_OFFSET
        assert abs(sec - (time.time() + 3600)) < 5
        assert srv.address == f"127.0.0.1:{srv.port}" and srv.requests == 1
