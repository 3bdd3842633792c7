"""Done-when: a plain script (pyserial + AT commands only) over each transport joins an
AP of the world file, exchanges TCP data byte-exact, and does verified TLS (CIPSSLCONF=2)."""
import os

import pytest
import serial

from emulator.atclient import AT
from emulator.conftest import join

TRANSPORTS = ["wizemu", "pty", "tcp"]


def open_transport(emu, kind):
    if kind == "wizemu":
        port = serial.serial_for_url(emu.url, baudrate=emu.baud, timeout=0.05)
    elif kind == "pty":
        path = emu.serve_pty()
        assert os.path.exists(path)
        port = serial.Serial(path, baudrate=emu.baud, timeout=0.05)
    else:
        host, p = emu.serve_tcp("127.0.0.1", 0)
        assert host == "127.0.0.1"
        port = serial.serial_for_url(f"socket://{host}:{p}", timeout=0.05)
    return port


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_plain_script_tcp_and_tls(make_emu, kind, echo_server, tls_server, ca):
    emu = make_emu(boot_delay=0.3)
    port = open_transport(emu, kind)
    at = AT(port)
    try:
        # the banner may have gone out before a pty/TCP host connected: sync with AT
        at.sync()
        join(at)
        at.ok(b"AT+CIPMUX=1")
        r = at.ok(b'AT+CIPSTART=0,"TCP","127.0.0.1",%d' % echo_server.port)
        assert b"0,CONNECT" in r
        payload = os.urandom(2048) + b"+IPD,5:fake\r\nOK\r\n" + bytes(range(256))
        sent = b""
        for i in range(0, len(payload), 1000):
            chunk = payload[i:i + 1000]
            assert b"Recv %d bytes" % len(chunk) in at.send(0, chunk)
            sent += chunk
        assert at.ipd(len(sent), link=0) == sent
        assert bytes(echo_server.received) == sent

        # TLS verified against the trustme CA given with AT+CASEND
        pem = ca.cert_pem.bytes()
        at.port.write(b"AT+CASEND=1\r\n")
        at.expect(b">")
        at.port.write(pem)
        assert at.cmd(b"", final=(b"OK", b"ERROR")).endswith(b"OK\r\n")
        at.ok(b"AT+CIPSSLCONF=2")
        r = at.ok(b'AT+CIPSTART=1,"SSL","lab.wizsock.test",%d' % tls_server.port)
        msg = b"hello over verified TLS"
        at.send(1, msg)
        assert at.ipd(len(msg), link=1) == msg
        # at most one SSL link, as the module
        r = at.cmd(b'AT+CIPSTART=2,"SSL","lab.wizsock.test",%d' % tls_server.port)
        assert r.endswith(b"ERROR\r\n")
        r = at.ok(b"AT+CIPCLOSE=5")
        assert b"0,CLOSED" in r and b"1,CLOSED" in r
    finally:
        port.close()


def test_tls_wrong_ca_fails_when_it_should(at, tls_server):
    import trustme
    join(at)
    other = trustme.CA()
    at.port.write(b"AT+CASEND=1\r\n")
    at.expect(b">")
    at.port.write(other.cert_pem.bytes())
    assert at.cmd(b"", final=(b"OK", b"ERROR")).endswith(b"OK\r\n")
    at.ok(b"AT+CIPSSLCONF=2")
    r = at.cmd(b'AT+CIPSTART="SSL","lab.wizsock.test",%d' % tls_server.port)
    assert r.endswith(b"ERROR\r\n"), r
    # mode 1: checks, but connects even though verification failed
    at.ok(b"AT+CIPSSLCONF=1")
    at.ok(b'AT+CIPSTART="SSL","lab.wizsock.test",%d' % tls_server.port)
    at.send(None, b"ping")
    assert at.ipd(4) == b"ping"
    at.ok(b"AT+CIPCLOSE")
    # mode 0: no check at all
    at.ok(b"AT+CIPSSLCONF=0")
    at.ok(b'AT+CIPSTART="SSL","127.0.0.1",%d' % tls_server.port)
    at.ok(b"AT+CIPCLOSE")
    # a name the certificate does not carry fails verification under mode 2
    at.ok(b"AT+CIPSSLCONF=2")


def test_tls_wrong_hostname(make_emu, tls_server, ca):
    emu = make_emu(world={"aps": [{"ssid": "x", "password": "12345678", "ecn": 3}],
                          "dns": {"other.test": "127.0.0.1"}})
    at = AT(serial.serial_for_url(emu.url, baudrate=emu.baud, timeout=0.05))
    at.wait_ready()
    at.ok(b"AT+CWMODE_CUR=1")
    at.ok(b'AT+CWJAP_CUR="x","12345678"')
    at.port.write(b"AT+CASEND=1\r\n")
    at.expect(b">")
    at.port.write(ca.cert_pem.bytes())
    at.cmd(b"")
    at.ok(b"AT+CIPSSLCONF=2")
    r = at.cmd(b'AT+CIPSTART="SSL","other.test",%d' % tls_server.port)
    assert r.endswith(b"ERROR\r\n")
    at.port.close()


def test_tcp_transport_new_host_replaces_old(make_emu):
    emu = make_emu()
    host, p = emu.serve_tcp()
    a = AT(serial.serial_for_url(f"socket://{host}:{p}", timeout=0.05))
    a.sync()
    a.port.close()
    b = AT(serial.serial_for_url(f"socket://{host}:{p}", timeout=0.05))
    b.ok(b"AT")
    b.port.close()


def test_wizemu_port_semantics(make_emu):
    """read/timeout/in_waiting/cancel_read behave like a pyserial port."""
    import threading
    import time

    emu = make_emu()
    port = serial.serial_for_url(emu.url, baudrate=emu.baud, timeout=0.05)
    at = AT(port)
    at.sync()
    assert port.in_waiting == 0
    port.timeout = 0.1
    t0 = time.monotonic()
    assert port.read(10) == b""
    assert 0.09 <= time.monotonic() - t0 < 1
    port.timeout = None
    threading.Timer(0.2, port.cancel_read).start()
    t0 = time.monotonic()
    assert port.read(10) == b""  # unblocked by cancel_read
    assert time.monotonic() - t0 < 2
    port.write(b"AT\r\n")
    time.sleep(0.1)
    assert port.in_waiting == len(b"AT\r\n\r\nOK\r\n")
    assert port.read(port.in_waiting) == b"AT\r\n\r\nOK\r\n"
    port.close()
    with pytest.raises(serial.PortNotOpenError):
        port.read(1)


def test_strict_baud_pty_garbles_at_another_rate(make_emu):
    """serve_pty(strict_baud=True): the host's pty speed is its UART's rate; at another
    rate than the module's nothing readable crosses, either way (as on a real line)."""
    import time

    emu = make_emu(baudrate=115200)
    path = emu.serve_pty(strict_baud=True)
    port = serial.Serial(path, baudrate=921600, timeout=0.05)
    try:
        got = b""
        for _ in range(3):
            port.write(b"AT\r\n")
            t0 = time.monotonic()
            while time.monotonic() - t0 < 0.3:
                got += port.read(256)
        assert got and b"OK" not in got and all(b & 0x80 for b in got), got  # echo, garbled
        port.baudrate = 115200                       # the module's rate: it answers
        port.reset_input_buffer()
        AT(port).sync()
        assert AT(port).ok(b"AT+UART_CUR?").count(b"+UART_CUR:115200,") == 1
    finally:
        port.close()
