"""`wizsock term` driven through a real pseudo-terminal (pexpect), on the emulator."""
import os
import socket
import stat
import sys
import threading

import pytest

from conftest import require
from tools.conftest import CANARY_WIFI, ROOT, env

try:
    import pexpect
except ImportError:     # a test dependency: missing fails under CI (conftest.require)
    pexpect = None
SPEC = os.path.join(os.path.dirname(ROOT), "..", "shared", "spec",
                    "wizfi360-at-instruction-set-v1.1.1.7.txt")


@pytest.fixture(autouse=True)
def _pexpect_and_prompt_toolkit():
    require(pexpect is not None, "pexpect (pip install '.[test]')")
    try:
        import prompt_toolkit  # noqa: F401
    except ImportError:
        require(False, "prompt_toolkit (pip install '.[test]')")


class Screen:
    """The child on a pty, answering cursor-position requests as a real terminal does.

    prompt_toolkit asks for the cursor position each time it starts reading a line,
    in raw mode: counting those requests tells when the next line can be typed
    (keys sent between two prompts meet a cooked-mode tty, where Ctrl-D is EOF)."""

    def __init__(self, child):
        self.child = child
        self.prompts = 0
        self._mark = 0

    def expect(self, pattern, timeout=30):
        while True:
            i = self.child.expect([r"\x1b\[6n", pattern], timeout=timeout)
            if i == 1:
                return self.child.match
            self.prompts += 1
            self.child.send("\x1b[20;1R")

    def ready(self, timeout=30):
        """Wait until a prompt started after the last line sent."""
        while self.prompts <= self._mark:
            self.child.expect(r"\x1b\[6n", timeout=timeout)
            self.prompts += 1
            self.child.send("\x1b[20;1R")

    def sendline(self, line):
        self.ready()
        self._mark = self.prompts
        self.child.sendline(line)

    def send(self, text):
        if text.endswith("\r"):
            self.ready()
            self._mark = self.prompts
        self.child.send(text)

    def __getattr__(self, name):
        return getattr(self.child, name)


def spawn(tmp_path, *extra):
    e = env(TERM="xterm", NO_COLOR="1")
    child = pexpect.spawn(sys.executable, ["-m", "wizsock", "term", "--history",
                                           str(tmp_path / "history"), *extra],
                          env=e, cwd=ROOT, encoding="utf-8", timeout=30, dimensions=(40, 160))
    screen = Screen(child)
    screen.expect("wizfi360>")
    return screen


def quit_(child):
    child.ready()
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_at_shows_ok_and_history_is_private_and_masked(tmp_path):
    child = spawn(tmp_path)
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


def test_completion_and_help(tmp_path):
    spec = os.path.abspath(SPEC) if os.path.exists(SPEC) else None
    child = spawn(tmp_path, *(["--spec", spec] if spec else []))
    # a command name: AT+CWJAP_CU<Tab> becomes AT+CWJAP_CUR, which the module then answers
    child.send("AT+CWJAP_CU")
    child.send("\t")
    child.send("?\r")
    child.expect(r'\+CWJAP_CUR:"wizsock-lab","00:08:dc:5a:1a:01",6,-45')
    child.expect("OK")
    # parameters: the toolbar names the one being typed, Tab offers the allowed values
    child.send('AT+CWJAP_CUR="lab",')
    child.expect(r"pwd.*up to 64 bytes; secret")
    child.sendcontrol("u")
    child.send("AT+CIPSTART=0,")
    child.send("\t")
    child.expect(r'"TCP"')
    child.expect(r'"UDP"')
    child.sendcontrol("c")
    child.expect("wizfi360>")
    child.send("help CWJAP_C")
    child.send("\t")
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
