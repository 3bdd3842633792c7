"""`wizsock term` driven through a real pseudo-terminal (pexpect), on the emulator."""
import os
import re
import socket
import stat
import sys
import threading
import time

import pytest

from conftest import require
from tools.conftest import CANARY_WIFI, ROOT, env

try:
    import pexpect
    import pyte
except ImportError:     # test dependencies: missing fails under CI (conftest.require)
    pexpect = pyte = None
SPEC = os.path.join(os.path.dirname(ROOT), "..", "shared", "spec",
                    "wizfi360-at-instruction-set-v1.1.1.7.txt")


@pytest.fixture(autouse=True)
def _terminal_test_tools():
    require(pexpect is not None, "pexpect (pip install '.[test]')")
    require(pyte is not None, "pyte (pip install '.[test]')")
    try:
        import prompt_toolkit  # noqa: F401
    except ImportError:
        require(False, "prompt_toolkit (pip install '.[test]')")


IDLE = "Tab: complete  help NAME"     # the toolbar of an empty prompt: ready for a line


class Screen:
    """`wizsock term` on a pty, its output rendered by a terminal emulator (pyte).

    Expectations look at what a user would see (prompt_toolkit redraws only what
    changed, so the byte stream alone does not say what is on the screen); pyte
    also answers prompt_toolkit's cursor-position requests, as a real terminal does."""

    def __init__(self, child, cols=200, rows=60):
        self.child = child
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.Stream(self.screen)
        self.screen.write_process_input = child.send
        self.seen = ""              # every line that was ever on the screen, for scrolled output
        self._last = None

    def text(self):
        return "\n".join(line.rstrip() for line in self.screen.display)

    def expect(self, pattern, timeout=30):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.text()) or rx.search(self.seen)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{pattern!r} not on the screen:\n{self.text()}")
            try:
                data = self.child.read_nonblocking(65536, timeout=min(left, 0.2))
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                raise AssertionError(f"{pattern!r}: the terminal ended:\n{self.text()}")
            self.stream.feed(data)
            self.seen = (self.seen + "\n" + self.text())[-200000:]

    def _idle(self):
        """A prompt is reading, with nothing typed, after the last line sent."""
        rows = [r.rstrip() for r in self.screen.display]
        y = self.screen.cursor.y
        if IDLE not in self.text() or rows[y] != "wizfi360>":
            return False
        return self._last is None or f"wizfi360> {self._last}" in rows[:y]

    def ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while not self._idle():
            if time.monotonic() > deadline:
                raise AssertionError(f"no prompt after {self._last!r}:\n{self.text()}")
            try:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=0.2))
            except pexpect.TIMEOUT:
                pass

    def sendline(self, line):
        self.ready()
        self.seen = ""
        self._last = line
        self.child.sendline(line)

    def send(self, text):
        self.child.send(text)

    def sendcontrol(self, c):
        self.child.sendcontrol(c)


def spawn(tmp_path, *extra):
    e = env(TERM="xterm", NO_COLOR="1")
    child = pexpect.spawn(sys.executable, ["-m", "wizsock", "term", "--history",
                                           str(tmp_path / "history"), *extra],
                          env=e, cwd=ROOT, encoding="utf-8", timeout=30, dimensions=(60, 200))
    screen = Screen(child)
    screen.expect("wizfi360>")
    return screen


def quit_(screen):
    screen.ready()
    screen.sendcontrol("d")
    screen.child.expect(pexpect.EOF, timeout=30)
    screen.child.close()
    assert screen.child.exitstatus == 0


def test_at_shows_ok_and_history_is_private_and_masked(tmp_path):
    trace = tmp_path / "uart.jsonl"
    child = spawn(tmp_path, "--trace", str(trace))
    child.sendline("AT")
    child.expect(r"OK  \(\d+ ms\)")
    child.sendline(f'AT+CWJAP_CUR="wizsock-lab","{CANARY_WIFI}"')
    child.expect(r"wrong password|FAIL")
    child.sendline("AT+CWJAP_CUR?")             # the failed join left it unjoined
    child.expect(r"OK  \(\d+ ms\)")
    child.sendline('at+cwjap_cur="wizsock-lab","wizsock123"')
    child.expect("WIFI GOT IP")
    child.sendline("at+cwjap_cur?")
    child.expect(r'\+CWJAP_CUR:"wizsock-lab"')
    quit_(child)
    hist = tmp_path / "history"
    assert stat.S_IMODE(os.stat(hist).st_mode) == 0o600
    text = hist.read_text()
    assert CANARY_WIFI not in text
    assert 'AT+CWJAP_CUR="wizsock-lab","***"' in text and "AT+CWJAP_CUR?" in text
    assert "wizsock123" not in text
    recorded = trace.read_text()
    assert stat.S_IMODE(os.stat(trace).st_mode) == 0o600
    assert CANARY_WIFI not in recorded and "wizsock123" not in recorded
    assert 'AT+CWJAP_CUR=\\"wizsock-lab\\",\\"***\\"' in recorded   # (JSON-escaped quotes)


def test_completion_and_help(tmp_path):
    spec = os.path.abspath(SPEC) if os.path.exists(SPEC) else None
    child = spawn(tmp_path, *(["--spec", spec] if spec else []))
    # a command name: AT+CWJAP_CU<Tab> becomes AT+CWJAP_CUR, which the module then answers
    child.ready()
    child.send("AT+CWJAP_CU")
    child.expect("unknown command")                  # the toolbar, before completion
    child.send("\t")
    child.expect("Connects to an AP; not saved")     # the toolbar of the completed name
    child.send("?\r")
    child.expect(r'\+CWJAP_CUR:"wizsock-lab","00:08:dc:5a:1a:01",6,-45')
    # parameters: the toolbar names the one being typed, Tab offers the allowed values
    child.ready()
    child.send('AT+CWJAP_CUR="lab",')
    child.expect(r"pwd.*up to 64 bytes; secret")
    child.sendcontrol("u")
    child.send("AT+CIPSTART=0,")
    child.send("\t")
    child.expect(r'"TCP"')
    child.expect(r'"UDP"')
    child.sendcontrol("c")
    child.ready()
    child.send("help CWJAP_C")
    child.expect("help: no such command")
    child.send("\t")
    child.expect("help: Connects to an AP; not saved")
    child.send("\r")
    child.expect(r"AT\+CWJAP_CUR=<ssid>,<pwd>\[,<bssid>\]")
    child.expect(r"ssid\s+string \(quoted\), 1-32 bytes")
    if spec:
        child.expect("from the spec:")
        child.expect("2: wrong password")
    quit_(child)


class _LateSender:
    """A loopback server that sends to the connection it accepted when told to."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.go = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.sock.accept()
        with conn:
            self.go.wait(30)
            conn.sendall(b"hello from the server\n" + bytes(range(0, 40)))
            conn.recv(1)

    def close(self):
        self.go.set()
        self.sock.close()


def test_ipd_arriving_while_the_user_types_is_shown(tmp_path):
    server = _LateSender()
    try:
        child = spawn(tmp_path)
        child.sendline(f'AT+CIPSTART=0,"TCP","127.0.0.1",{server.port}')
        child.expect("0,CONNECT")
        child.expect("OK")
        child.ready()
        child.send("AT+GM")                 # half a command typed, not sent
        server.go.set()
        child.expect(r"\+IPD link 0: 62 bytes from 127\.0\.0\.1:\d+")
        child.expect(r"0000  68 65 6c 6c 6f")     # binary tail: a hex dump
        child.send("R\r")                   # the typed half survived the interruption
        child.expect(r"AT version:1\.1\.1\.7")
        child.sendline("AT+CIPCLOSE=0")
        child.expect("OK")
        quit_(child)
    finally:
        server.close()
