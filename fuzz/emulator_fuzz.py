#!/usr/bin/env python3
"""Fuzz harness for the emulator's command-line path: parser and dispatch.

One input is up to 8 host lines (split at LF).  Each line goes through the
emulator's parser (``wizsock.emulator.atparse.parse``, the codec's
``parse_request``: it raises only ``RequestError``; handlers read the Request it
returns, nothing else of the line) and is then typed into a
running emulator (one per process, kept between inputs) through its public
byte interface, ``feed``/``attach``.  The emulator must answer every line with a
final result code within a few seconds: a line that wedges or kills the
command loop is a finding.

No real networking: commands that need a peer, DNS or time servers, or that
change the line itself (baud rate, sleep, reset, passthrough, PEM uploads,
multi-second scans and joins, echo on), are parsed but not dispatched, and an audit
hook refuses every socket connect, bind, send and name lookup while the
harness runs.
"""
from __future__ import annotations

import os
import queue
import sys
import tempfile
import threading
from typing import Any, List, Optional

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/", 1)[0])

# Parsed, never dispatched (see the docstring).
NOT_DISPATCHED = frozenset("""
    AWSCON AZCON MQTTCON MQTTDIS MQTTPUB CIPSTART CIPSEND CIPSENDBUF CIPSENDEX CIPSENDERBUF
    CIPSERVER CIPDOMAIN CIPSNTPTIME CIUPDATE PING SAVETRANSLINK UART_CUR UART_DEF GSLP SLEEP
    RST RESTORE CWSTARTSMART CWSTOPSMART WIZ_NETCONFIG WPS CASEND CLICASEND AWSPKSEND
    CWJAP_CUR CWJAP_DEF CWLAP CWQAP CIPMODE E1
""".split())
ANSWER_TIMEOUT = 10.0
_NET_EVENTS = frozenset({"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
                         "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
                         "socket.getnameinfo"})
_guard = threading.Event()


def _no_network(event: str, args: Any) -> None:
    if _guard.is_set() and event in _NET_EVENTS:
        raise PermissionError(f"emulator fuzz harness: no networking ({event} {args!r})")


class _Module:
    """One running emulator and the results it printed, read through the framer."""

    def __init__(self) -> None:
        from wizsock.emulator import Emulator
        from wizsock.framer import Framer

        self.dir = tempfile.mkdtemp(prefix="wizsock-fuzz-emu-")
        self.framer = Framer()
        self.results: "queue.Queue[str]" = queue.Queue()
        self.emu = Emulator(flash=os.path.join(self.dir, "flash.json"), seed=0, boot_delay=0.0)
        self.emu.attach(self._sink)
        self.emu.start()
        self.wait_result()  # the boot's "ready" ends like a result
        # Echo off: an echoed "OK" typed by the fuzzer would read as the answer.
        self.command(b"ATE0")

    def _sink(self, data: bytes, baud: int) -> None:
        for ev in self.framer.feed(data):
            name = type(ev).__name__
            if name in ("Result", "Ready"):
                self.results.put(getattr(ev, "code", "ready"))

    def wait_result(self) -> Optional[str]:
        try:
            return self.results.get(timeout=ANSWER_TIMEOUT)
        except queue.Empty:
            return None

    def command(self, line: bytes) -> None:
        while not self.results.empty():
            self.results.get_nowait()
        self.emu.feed(line + b"\r\n")
        got = self.wait_result()
        assert got is not None, f"no answer to {line!r} within {ANSWER_TIMEOUT} s"


_module: Optional[_Module] = None


def module() -> _Module:
    global _module
    if _module is None:
        sys.addaudithook(_no_network)
        _guard.set()
        try:
            _module = _Module()
        finally:
            _guard.clear()
    return _module


def close() -> None:
    """Stop the emulator (the replay tests call this; a fuzzing process just exits)."""
    global _module
    if _module is not None:
        _module.emu.stop()
        _module = None


def check_parser(line: bytes) -> Optional[Any]:
    from wizsock.emulator import atparse

    try:
        return atparse.parse(line)
    except atparse.RequestError:
        return None


def run(data: bytes) -> None:
    """One fuzz input (the atheris entry point, also used by the replay tests)."""
    lines: List[bytes] = [ln.rstrip(b"\r") for ln in data.split(b"\n")[:8]]
    m = module()
    _guard.set()
    try:
        for line in lines:
            req = check_parser(line)
            if not line.strip():
                continue  # the module answers no blank line
            if req is not None and req.name in NOT_DISPATCHED:
                continue
            if req is None and line.upper().lstrip().startswith(b"AT+") and _named(line) in NOT_DISPATCHED:
                continue
            m.command(line)
    finally:
        _guard.clear()


def _named(line: bytes) -> str:
    head = line.strip()[3:].split(b"=")[0].split(b"?")[0]
    return head.decode("ascii", "replace").upper()


def main() -> None:
    import atheris

    with atheris.instrument_imports(include=["wizsock"]):
        import wizsock.emulator  # noqa: F401
        import wizsock.emulator.atparse  # noqa: F401
    atheris.Setup(sys.argv, run)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
