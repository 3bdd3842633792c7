"""`wizsock socks`: a real SOCKS5 server process whose connections go over the
emulated module, driven by curl and by a raw RFC 1928 client on loopback.

(The directory is not tests/socks: with pythonpath=tests that name would shadow
PySocks, which paho-mqtt probes with ``import socks``.)"""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from conftest import require
from support.servers import (dns_query, free_port, https_server, parse_dns_response,
                             tcp_echo_server, test_ca, udp_dns_server)
from wizsock.emulator.core import load_world

BEHIND = "www.behind.test"        # only the module's DNS (the world file) knows this name
DNS_BEHIND = "dns.behind.test"


class SocksProcess:
    def __init__(self, tmp_path, world_path, *args, stdin=None):
        self.log_path = tmp_path / f"socks-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")
        cmd = [sys.executable, "-m", "wizsock", "socks", "--listen", "127.0.0.1:0",
               "--world", str(world_path), "-vv", *args]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log)
        if stdin is not None:
            self.proc.stdin.write(stdin)
        self.proc.stdin.close()
        line = self._first_line(30)
        assert line.startswith("wizsock socks: listening on 127.0.0.1:"), (line, self.log())
        self.port = int(line.split()[4].rsplit(":", 1)[1])

    def _first_line(self, timeout):
        got = []
        reader = threading.Thread(target=lambda: got.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        assert got, f"no 'listening' line in {timeout} s: {self.log()}"
        return got[0].decode()

    def log(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._log.close()
        return code


@pytest.fixture(scope="module")
def behind(tmp_path_factory):
    """An HTTPS server whose certificate is for BEHIND, an echo server, and a world
    file in which the module resolves BEHIND to them (loopback)."""
    tmp = tmp_path_factory.mktemp("socks")
    with test_ca() as ca:
        ca.server_cert = ca.issue_cert(BEHIND)
        world = load_world(None)
        world["dns"] = {BEHIND: "127.0.0.1", DNS_BEHIND: "127.0.0.1"}
        path = tmp / "world.json"
        path.write_text(json.dumps(world))
        with https_server(ca) as web, tcp_echo_server() as echo, \
                udp_dns_server({"printer.office.test": "10.1.2.3"}) as dns:
            yield type("Behind", (), {"ca": ca, "web": web, "echo": echo, "dns": dns,
                                      "world": path, "tmp": tmp})


@pytest.fixture(scope="module")
def proxy(behind):
    p = SocksProcess(behind.tmp, behind.world, "--link-wait", "3", "--eof-grace", "0.5")
    yield p
    assert p.stop() == 0, p.log()


# ------------------------------------------------------------------ a raw SOCKS5 client

def greet(sock, methods=b"\x00"):
    sock.sendall(bytes([5, len(methods)]) + methods)
    return sock.recv(2)


def connect_request(sock, host, port, cmd=1):
    try:
        addr = b"\x01" + socket.inet_aton(host)
    except OSError:
        addr = b"\x03" + bytes([len(host)]) + host.encode()
    sock.sendall(bytes([5, cmd, 0]) + addr + struct.pack("!H", port))
    reply = recv_exactly(sock, 10)
    assert reply[:1] == b"\x05" and reply[3:4] == b"\x01", reply
    return reply[1]


def recv_exactly(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def socks_connect(proxy_port, host, port, timeout=20):
    s = socket.create_connection(("127.0.0.1", proxy_port), timeout=timeout)
    assert greet(s) == b"\x05\x00"
    return s, connect_request(s, host, port)


# ------------------------------------------------------------------ tests

def test_curl_fetches_https_through_the_module(behind, proxy):
    curl = shutil.which("curl")
    require(curl, "curl (apt-get install curl)")
    url = f"https://{BEHIND}:{behind.web.port}/"
    out = subprocess.run(
        [curl, "-sS", "--max-time", "60", "--socks5-hostname", f"127.0.0.1:{proxy.port}",
         "--cacert", behind.ca.ca_pem_path, url],
        capture_output=True, timeout=90)
    assert out.returncode == 0, (out.stderr, proxy.log()[-3000:])
    assert out.stdout == b"hello from the test server\n"
    # the name went to the module (CIPSTART with the name), not to the host's resolver
    assert f'CIPSTART=4,"TCP","{BEHIND}",{behind.web.port}' in proxy.log() \
        or f'"TCP","{BEHIND}",{behind.web.port}' in proxy.log(), proxy.log()[-3000:]


def test_connect_by_ipv4_carries_data_both_ways(behind, proxy):
    s, code = socks_connect(proxy.port, "127.0.0.1", behind.echo.port)
    with s:
        assert code == 0
        payload = os.urandom(50_000)
        threading.Thread(target=s.sendall, args=(payload,), daemon=True).start()
        assert recv_exactly(s, len(payload)) == payload
        # a half-close: what the remote still sends arrives, then (--eof-grace 0.5 s,
        # the module cannot pass the EOF on) the connection ends and frees its link
        s.sendall(b"last words")
        s.shutdown(socket.SHUT_WR)
        t0 = time.monotonic()
        assert recv_exactly(s, 10) == b"last words"
        assert s.recv(1) == b""
        assert 0.3 < time.monotonic() - t0 < 10


@pytest.mark.parametrize("host, port, cmd, expected", [
    ("nowhere.invalid", 80, 1, 0x04),        # the module's DNS fails: host unreachable
    ("127.0.0.1", None, 1, 0x05),            # nothing listens: connection refused
    ("127.0.0.1", 80, 2, 0x07),              # BIND: command not supported
])
def test_failures_get_their_reply_codes(proxy, host, port, cmd, expected):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=20) as s:
        assert greet(s) == b"\x05\x00"
        assert connect_request(s, host, port or free_port(), cmd) == expected
        assert s.recv(1) == b""                  # and the connection ends


def test_ipv6_and_bad_methods(proxy):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=20) as s:
        assert greet(s) == b"\x05\x00"
        s.sendall(b"\x05\x01\x00\x04" + bytes(16) + b"\x00\x50")
        assert recv_exactly(s, 10)[1] == 0x08     # address type not supported
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=20) as s:
        assert greet(s, b"\x02") == b"\x05\xff"    # only username/password offered: refused
        assert s.recv(1) == b""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=20) as s:
        s.sendall(b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00")   # SOCKS4
        assert s.recv(1) == b""


def test_beyond_five_links_waits_then_fails_clearly(behind, proxy):
    held = []
    try:
        for _ in range(5):
            s, code = socks_connect(proxy.port, "127.0.0.1", behind.echo.port)
            held.append(s)
            assert code == 0
        # a sixth waits for a link ...
        sixth = socket.create_connection(("127.0.0.1", proxy.port), timeout=20)
        held.append(sixth)
        assert greet(sixth) == b"\x05\x00"
        addr = b"\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", behind.echo.port)
        sixth.sendall(b"\x05\x01\x00" + addr)
        sixth.settimeout(1.0)
        with pytest.raises(socket.timeout):
            sixth.recv(1)
        # ... and gets one when a connection ends
        held.pop(0).close()
        sixth.settimeout(20)
        reply = recv_exactly(sixth, 10)
        assert reply[1] == 0, reply
        sixth.sendall(b"ping")
        assert recv_exactly(sixth, 4) == b"ping"
        # all five links busy again: a seventh gets 0x01 once --link-wait (3 s) is over
        t0 = time.monotonic()
        seventh, code = socks_connect(proxy.port, "127.0.0.1", behind.echo.port)
        waited = time.monotonic() - t0
        seventh.close()
        assert code == 0x01 and 2.5 < waited < 15, (code, waited)
    finally:
        for s in held:
            s.close()
    # every link comes back: a new connection works at once
    deadline = time.monotonic() + 15
    s, code = socks_connect(proxy.port, "127.0.0.1", behind.echo.port)
    with s:
        assert code == 0 and time.monotonic() < deadline


def test_username_password(behind):
    secret = "s3cret-Pa55"
    p = SocksProcess(behind.tmp, behind.world, "--user", "alice", "--password-stdin",
                     stdin=secret.encode() + b"\n")
    try:
        def login(user, password):
            s = socket.create_connection(("127.0.0.1", p.port), timeout=20)
            assert greet(s, b"\x00\x02") == b"\x05\x02"
            s.sendall(b"\x01" + bytes([len(user)]) + user + bytes([len(password)]) + password)
            return s, s.recv(2)

        s, status = login(b"alice", b"wrong")
        with s:
            assert status == b"\x01\x01" and s.recv(1) == b""
        with socket.create_connection(("127.0.0.1", p.port), timeout=20) as s:
            assert greet(s, b"\x00") == b"\x05\xff"      # no-auth is not accepted
        s, status = login(b"alice", secret.encode())
        with s:
            assert status == b"\x01\x00"
            assert connect_request(s, "127.0.0.1", behind.echo.port) == 0
            s.sendall(b"hello")
            assert recv_exactly(s, 5) == b"hello"
    finally:
        assert p.stop() == 0
    assert secret not in p.log() and "wrong" not in p.log()


def test_open_proxy_on_a_non_loopback_address_is_refused():
    out = subprocess.run([sys.executable, "-m", "wizsock", "socks", "--listen", "0.0.0.0:0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "refusing to run an open proxy" in out.stderr


def test_udp_associate_relays_datagrams_through_the_module(behind, proxy):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=20) as ctl, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(20)
        assert greet(ctl) == b"\x05\x00"
        ctl.sendall(b"\x05\x03\x00\x01" + bytes(4) + bytes(2))      # UDP ASSOCIATE, 0.0.0.0:0
        reply = recv_exactly(ctl, 10)
        assert reply[1] == 0, reply
        relay = (socket.inet_ntoa(reply[4:8]), struct.unpack("!H", reply[8:10])[0])
        assert relay[0] == "127.0.0.1" and relay[1] > 0
        port = behind.dns.port
        for qid, (atyp, addr) in enumerate([
                (b"\x01", socket.inet_aton("127.0.0.1")),                       # IPv4
                (b"\x03", bytes([len(DNS_BEHIND)]) + DNS_BEHIND.encode())]):     # a name the module resolves
            query = dns_query("printer.office.test", qid=qid + 1)
            udp.sendto(b"\x00\x00\x00" + atyp + addr + struct.pack("!H", port) + query, relay)
            data, src = udp.recvfrom(4096)
            assert src == relay
            # the answer comes back with its sender's address in the SOCKS header
            assert data[:4] == b"\x00\x00\x00\x01"
            assert data[4:10] == socket.inet_aton("127.0.0.1") + struct.pack("!H", port)
            assert parse_dns_response(data[10:]) == (qid + 1, 0, ["10.1.2.3"])
        # fragments are dropped (RFC 1928: a relay that does not reassemble drops them)
        udp.sendto(b"\x00\x00\x01\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", port)
                   + dns_query("printer.office.test", qid=9), relay)
        udp.settimeout(1.0)
        with pytest.raises(socket.timeout):
            udp.recvfrom(4096)
    # the association ended with its TCP connection, and so did its link
    def udp_part():
        log = proxy.log()
        return log[log.rindex("UDP ASSOCIATE relaying at"):]
    lid = re.search(r'AT\+CIPSTART=(\d),"UDP","127\.0\.0\.1",%d,\d+,2' % port, udp_part()).group(1)
    deadline = time.monotonic() + 10
    while f"AT+CIPCLOSE={lid}'" not in udp_part():
        assert time.monotonic() < deadline, udp_part()
        time.sleep(0.1)

