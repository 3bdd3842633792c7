"""`wizsock emulator --log FILE` records the UART exactly: the log, parsed back with
`wizsock.emulator.uartlog.parse_log`, gives the byte streams the host really wrote and
read (design.md §5e), in wire order; secrets are masked and the records marked.

And `--bind-host`: a server the program opens on the module listens on that address.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import serial

from wizsock.emulator.uartlog import HOST_TO_MODULE, MODULE_TO_HOST, parse_log, streams

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECRET = b"uart-log-secret-9"
#: what the peer sends first: every byte value, CR and LF among them, and no line end last
BLOB = bytes(range(256)) + b"tail without a line end"
PAYLOAD = b"\x00\r\n\xff> x"           # what the host sends after the prompt


def start(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "wizsock", "emulator", "--pty", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    line = proc.stdout.readline().decode()
    m = re.search(r"on (/dev/\S+)", line)
    if m is None:
        proc.kill()
        raise AssertionError((line, proc.stderr.read()))
    return proc, m.group(1)


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


class Host:
    """The host's side of the wire, keeping every byte it wrote and read."""

    def __init__(self, path):
        self.port = serial.Serial(path, baudrate=115200, timeout=0.02)
        self.wrote = bytearray()
        self.read = bytearray()

    def write(self, data: bytes):
        self.port.write(data)
        self.port.flush()
        self.wrote += data

    def until(self, marker: bytes, timeout: float = 5.0, since: int = 0) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.read[since:]:
            assert time.monotonic() < deadline, (marker, bytes(self.read[since:]))
            self.read += self.port.read(4096)
        return bytes(self.read[since:])

    def command(self, line: bytes, final: bytes = b"\r\nOK\r\n") -> bytes:
        mark = len(self.read)
        self.write(line + b"\r\n")
        return self.until(final, since=mark)

    def drain(self, quiet: float = 0.5):
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            chunk = self.port.read(4096)
            if chunk:
                self.read += chunk
                last = time.monotonic()


@pytest.fixture
def peer():
    """A TCP server on loopback: sends BLOB on accept, then keeps what it receives."""
    srv = socket.create_server(("127.0.0.1", 0))
    got = bytearray()

    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.sendall(BLOB)
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                got.extend(data)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1], got
    srv.close()
    t.join(5)


def test_log_gives_back_both_byte_streams(tmp_path, peer):
    port, peer_got = peer
    log = tmp_path / "uart.log"
    world = json.loads(open(os.path.join(ROOT, "wizsock", "emulator", "default_world.json")).read())
    world["aps"] = [{"ssid": "log-lab", "password": SECRET.decode(), "ecn": 3, "rssi": -40,
                     "mac": "00:08:dc:00:10:01", "channel": 6, "ip": "192.168.60.2"}]
    (tmp_path / "world.json").write_text(json.dumps(world))
    proc, path = start("--log", str(log), "--boot-delay", "0.1", "--seed", "3",
                       "--world", str(tmp_path / "world.json"), "--flash", str(tmp_path / "flash.json"))
    try:
        host = Host(path)
        host.until(b"ready\r\n")
        host.command(b"AT")
        # a command line in two writes, far apart: the first part is a record of its own
        host.write(b"AT+GM")
        time.sleep(0.3)
        mark = len(host.read)
        host.write(b"R\r\n")
        host.until(b"\r\nOK\r\n", since=mark)
        host.command(b"AT+CWMODE_CUR=1")
        host.command(b'AT+CWJAP_CUR="log-lab","' + SECRET + b'"')
        host.command(b'AT+CIPSTART="TCP","127.0.0.1",%d' % port)
        host.until(b"+IPD,%d:" % len(BLOB) + BLOB)
        # the prompt ends without a line end; the payload carries CR LF and binary bytes
        mark = len(host.read)
        host.write(b"AT+CIPSEND=%d\r\n" % len(PAYLOAD))
        host.until(b"> ", since=mark)
        time.sleep(0.2)
        host.write(PAYLOAD)
        host.until(b"SEND OK\r\n", since=mark)
        host.command(b"AT+CIPCLOSE")
        host.drain()
        host.port.close()
    finally:
        stop(proc)
    assert bytes(peer_got) == PAYLOAD

    text = log.read_text(encoding="utf-8")
    assert text.startswith("# wizsock-uart-log 1 start=")
    assert SECRET not in text.encode()
    records = parse_log(text.splitlines())
    # the records of the join are marked: those bytes are not the wire's
    masked = [r for r in records if r.masked]
    assert [r.direction for r in masked] == [HOST_TO_MODULE, MODULE_TO_HOST]   # the line and its echo
    assert all(b'"log-lab","***"' in r.data for r in masked)
    with pytest.raises(ValueError, match="masked"):
        streams(records)
    to_module, to_host = streams(records, keep_masked=True)
    unmask = (b'"' + SECRET + b'"', b'"***"')
    assert to_module == bytes(host.wrote).replace(*unmask)
    assert to_host == bytes(host.read).replace(*unmask)

    # wire order and time: each command precedes its echo, the prompt the payload
    assert [r.t for r in records] == sorted(r.t for r in records)
    order = [(r.direction, r.data) for r in records]
    assert order.index((HOST_TO_MODULE, b"AT\r\n")) < order.index((MODULE_TO_HOST, b"AT\r\n"))
    prompt = next(i for i, (d, b) in enumerate(order) if d == MODULE_TO_HOST and b.endswith(b"> "))
    payload = next(i for i, (d, b) in enumerate(order) if d == HOST_TO_MODULE and b.startswith(b"\x00"))
    assert prompt < payload
    # lines without an ending are records of their own, not merged into the next line
    assert (HOST_TO_MODULE, b"AT+GM") in order and (HOST_TO_MODULE, b"R\r\n") in order
    assert any(d == MODULE_TO_HOST and b.endswith(b"tail without a line end") for d, b in order)


def test_bind_host_puts_the_modules_server_on_that_address(tmp_path):
    proc, path = start("--bind-host", "127.0.0.2", "--boot-delay", "0.1",
                       "--flash", str(tmp_path / "flash.json"))
    try:
        host = Host(path)
        host.until(b"ready\r\n")
        host.command(b"AT+CWMODE_CUR=1")
        host.command(b'AT+CWJAP_CUR="wizsock-lab","wizsock123"')
        host.command(b"AT+CIPMUX=1")
        # the port held (bound, not listening) on 127.0.0.1, so nothing else answers there
        with socket.socket() as held:
            held.bind(("127.0.0.1", 0))
            free = held.getsockname()[1]
            host.command(b"AT+CIPSERVER=1,%d" % free)
            with socket.create_connection(("127.0.0.2", free), timeout=5) as client:
                host.until(b"0,CONNECT\r\n")
                client.sendall(b"through 127.0.0.2")
                host.until(b"+IPD,0,17:through 127.0.0.2")
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", free), timeout=5).close()
        host.port.close()
    finally:
        stop(proc)


def test_bind_host_takes_an_ip_address_only():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # a name is refused (it would need a DNS lookup), and so is a malformed address
    for addr in ("localhost", "127.0.0.256"):
        out = subprocess.run([sys.executable, "-m", "wizsock", "emulator", "--pty", "--bind-host", addr],
                             capture_output=True, env=env, cwd=ROOT, timeout=30)
        assert out.returncode == 2
        assert f"--bind-host {addr}: not an IP address".encode() in out.stderr


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _log():
    import io

    from wizsock.emulator.uartlog import UartLog

    out, clock = io.StringIO(), FakeClock()
    return UartLog(out, clock=clock), out, clock


def test_records_split_at_line_ends_direction_changes_idle_and_size():
    from wizsock.emulator.uartlog import IDLE, MAX_RECORD, Record

    log, out, clock = _log()
    log.feed(HOST_TO_MODULE, b"AT\r\nAT+G")          # a line and a partial one
    clock.now += 0.001
    log.feed(MODULE_TO_HOST, b"AT\r\n")              # the other direction ends the partial
    log.feed(HOST_TO_MODULE, b"MR\r\n")
    clock.now += 0.002
    log.feed(MODULE_TO_HOST, b"OK\r\n> ")
    log.flush_idle()                                  # not quiet long enough yet
    clock.now += IDLE
    log.flush_idle()                                  # now the prompt stands alone
    bulk = b"x y " * (MAX_RECORD // 4) + b"x y z"     # (spaces: not base64, see the next test)
    log.feed(HOST_TO_MODULE, bulk)
    log.close()
    lines = ["a warning on the same stderr"] + out.getvalue().splitlines()
    records = parse_log(lines)
    assert [Record(round(r.t, 6), r.direction, r.data, r.masked) for r in records] == [
        Record(0.0, HOST_TO_MODULE, b"AT\r\n"), Record(0.0, HOST_TO_MODULE, b"AT+G"),
        Record(0.001, MODULE_TO_HOST, b"AT\r\n"), Record(0.001, HOST_TO_MODULE, b"MR\r\n"),
        Record(0.003, MODULE_TO_HOST, b"OK\r\n"), Record(0.003, MODULE_TO_HOST, b"> "),
        Record(round(0.003 + IDLE, 6), HOST_TO_MODULE, bulk[:MAX_RECORD]),
        Record(round(0.003 + IDLE, 6), HOST_TO_MODULE, b"x y z")]
    assert streams(records) == (b"AT\r\nAT+GMR\r\n" + bulk, b"AT\r\nOK\r\n> ")


def test_a_secret_split_over_records_is_masked_in_each():
    log, out, clock = _log()
    log.feed(HOST_TO_MODULE, b'AT+CWJAP_CUR="ap","pa')
    log.feed(MODULE_TO_HOST, b"busy p...\r\n")         # output interleaves mid-line
    log.feed(HOST_TO_MODULE, b'ss-word"\r\n')
    log.feed(HOST_TO_MODULE, b"AT+MQTTSET?\r\n")
    log.feed(MODULE_TO_HOST, b'"user","mqtt-pw","id",60\r\n')   # a bare answer line
    log.feed(HOST_TO_MODULE, b"AT+CASEND=1\r\n")
    log.feed(HOST_TO_MODULE, b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq")
    log.feed(MODULE_TO_HOST, b"+IPD,2:hi")
    log.feed(HOST_TO_MODULE, b"hkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n")
    # a line that merely looks like a PEM body line (16+ base64 characters) is masked too
    log.feed(HOST_TO_MODULE, b"QUJDREVGR0hJSktMTU5P\r\n")
    log.close()
    text = out.getvalue()
    for secret in ("pa", "ss-word", "mqtt-pw", "MIIEvQ", "hkiG9w"):
        assert secret not in text.replace("PRIVATE", "").replace("CWJAP", ""), secret
    records = parse_log(text.splitlines())
    masked = [(r.direction, r.data) for r in records if r.masked]
    assert masked == [(HOST_TO_MODULE, b'AT+CWJAP_CUR=***'),       # unterminated quote: all masked
                      (HOST_TO_MODULE, b'AT+CWJAP_CUR="ap","***"\r\n'),   # the line so far
                      (MODULE_TO_HOST, b'"***","***","id",60\r\n'),
                      (HOST_TO_MODULE, b"***"), (HOST_TO_MODULE, b"***"),
                      (HOST_TO_MODULE, b"***\r\n")]
    assert (MODULE_TO_HOST, b"busy p...\r\n", False) in [(r.direction, r.data, r.masked) for r in records]
    with pytest.raises(ValueError, match="masked"):
        streams(records)
