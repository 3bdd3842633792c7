import socket
import ssl
import threading

import pytest
import serial
import trustme

import wizsock  # noqa: F401  (registers wizemu://)
from wizsock.emulator import Emulator

from emulator.atclient import AT

FAST = 2000000  # tests talk at the module's top rate unless they measure pacing


@pytest.fixture
def make_emu(tmp_path):
    made = []

    def make(**kw):
        kw.setdefault("baudrate", FAST)
        kw.setdefault("boot_delay", 0.02)
        kw.setdefault("flash", str(tmp_path / f"flash{len(made)}.json"))
        kw.setdefault("pace_input", False)  # the default paces; tests that measure it ask for it
        emu = Emulator(**kw).start()
        made.append(emu)
        return emu

    yield make
    for emu in made:
        emu.stop()


@pytest.fixture
def emu(make_emu):
    return make_emu()


def open_at(emu, timeout=0.05):
    port = serial.serial_for_url(emu.url, baudrate=emu.baud, timeout=timeout)
    at = AT(port)
    at.wait_ready()
    return at


@pytest.fixture
def at(emu):
    a = open_at(emu)
    yield a
    a.port.close()


def free_port(kind=socket.SOCK_STREAM):
    """A loopback port nobody listens on right now."""
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def join(at, mux=False):
    at.ok(b"AT+CWMODE_CUR=1")
    r = at.ok(b'AT+CWJAP_CUR="wizsock-lab","wizsock123"')
    assert b"WIFI GOT IP" in r
    if mux:
        at.ok(b"AT+CIPMUX=1")


class EchoServer:
    """A real TCP server on loopback; echoes, or records when echo=False."""

    def __init__(self, echo=True, tls_context=None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.echo = echo
        self.tls = tls_context
        self.received = bytearray()
        self.conns = []
        self.errors = []
        self.accepted = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if self.tls is not None:
                try:
                    c = self.tls.wrap_socket(c, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    self.errors.append(e)
                    c.close()
                    continue
            self.conns.append(c)
            self.accepted.set()
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        while True:
            try:
                d = c.recv(65536)
            except OSError:
                return
            if not d:
                c.close()
                return
            self.received += d
            if self.echo:
                try:
                    c.sendall(d)
                except OSError:
                    return

    def close(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


@pytest.fixture
def echo_server():
    s = EchoServer()
    yield s
    s.close()


@pytest.fixture(scope="session")
def ca():
    return trustme.CA()


@pytest.fixture
def tls_server(ca):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("lab.wizsock.test", "127.0.0.1").configure_cert(ctx)
    s = EchoServer(tls_context=ctx)
    yield s
    s.close()
