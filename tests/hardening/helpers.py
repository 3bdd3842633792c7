"""Helpers of the hardening tests: hostile inputs, the emulator's record of what it
ran as commands (the ground truth for "nothing smuggled": ``Emulator.command_lines``,
every line the module read in command mode), a recording loopback peer."""
from __future__ import annotations

import contextlib
import socket
import threading
from typing import Iterator, List

import wizsock
from wizsock import _orig
from wizsock import protocol as P
from wizsock.emulator import Emulator

BAUD = 2_000_000
AP = ("wizsock-lab", "wizsock123")

# What an attacker puts in a string: line ends, NUL, the codec's own quoting
# characters, a complete command, the passthrough escape, other control bytes,
# non-ASCII (incl. what str.splitlines() takes for a line end), lone surrogates.
CORES = [
    "\r\nAT+RST\r\n", "\r", "\n", "\x00", "\r\n", "\n\rAT+CWQAP\n", '"', ",", "\\", '\\"',
    '","', '"\r\nAT+CWQAP\r\n"', '\\",\\"', "+++", "+++\r\nAT+RST\r\n", "\x1b[2J", "\x7f",
    "\t", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "é", "\udcff", "\U0001f642", "%s%n",
    "-----END CERTIFICATE-----\r\nAT+RST", "\x00AT+RST\r\n", '";AT+RST;"',
]


def hostile_strings(prefix: str = "x", long: int = 300) -> List[str]:
    """Hostile variants around ``prefix`` (a value the parameter would accept)."""
    out: List[str] = []
    for core in CORES:
        out += [core, prefix + core, core + prefix, prefix + core + prefix]
    out += [prefix * long, '"' * long, "," * 64, "\\" * 64, "+" * 64, "A" * 5000,
            ",".join(["AT+RST"] * 8), "é" * 40]
    return out


class Wire:
    """Marks in the emulator's record of command lines, and what came after."""

    def __init__(self, emu: Emulator):
        self.emu = emu

    def mark(self) -> int:
        return len(self.emu.command_lines)

    def since(self, mark: int) -> List[bytes]:
        return [bytes(l) for l in self.emu.command_lines[mark:]]


def request_key(line: bytes):
    """(name, params without the link id) of a command line, or the line itself if
    it is no command of the codec's table (then it can only have been smuggled)."""
    try:
        r = P.parse_request(line)
    except ValueError:
        return ("<unparseable>", bytes(line))
    return (r.name, {k: v for k, v in r.params.items() if k != "link"})


@contextlib.contextmanager
def emulated(**options) -> Iterator[Emulator]:
    """A started emulator that records its traffic and the lines it ran as commands."""
    e = Emulator(**{"baudrate": BAUD, "log_traffic": True, "boot_delay": 0.05, **options})
    e.start()
    try:
        yield e
    finally:
        e.stop()


@contextlib.contextmanager
def blocking_module(emu: Emulator) -> Iterator[wizsock.Module]:
    with _orig.internal():
        m = wizsock.Module(emu.url, baudrate=BAUD)
    try:
        yield m
    finally:
        m.close()


class Recorder:
    """A loopback TCP peer that keeps every byte each connection sent."""

    def __init__(self):
        self.lsock = _orig.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.received: List[bytearray] = []
        self._stop = False
        self._t = threading.Thread(target=self._run, name="test-recorder", daemon=True)
        self._t.start()

    def _run(self):
        self.lsock.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            buf = bytearray()
            self.received.append(buf)
            threading.Thread(target=self._read, args=(conn, buf), daemon=True,
                             name="test-recorder-conn").start()

    @staticmethod
    def _read(conn, buf):
        with conn:
            while True:
                try:
                    d = conn.recv(65536)
                except OSError:
                    return
                if not d:
                    return
                buf += d

    def close(self):
        self._stop = True
        self._t.join(5)
        self.lsock.close()


@contextlib.contextmanager
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    try:
        yield r
    finally:
        r.close()

