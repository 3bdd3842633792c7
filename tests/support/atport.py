"""A plain pyserial AT-command client for tests (no wizsock host code).

    from support.atport import AtPort
    with AtPort("wizemu://name") as at:          # any pyserial URL: wizemu://, socket://, /dev/pts/N
        at.sync()                                # AT until OK (skips the boot banner)
        lines = at.ok('AT+CWJAP_CUR="ssid","pw"')    # -> response lines; AssertionError unless OK
        lines, result = at.command("AT+CIPSTATUS")   # -> ([lines], "OK" | "ERROR" | ...)
        at.command_with_data("AT+CIPSEND=5", b"hello")  # waits for ">" then sends the data
        at.wait_line(rb"t/x -> hello", timeout=5)        # a URC (regex on the whole line)

Lines are bytes without CR LF; the command's own echo (ATE1) is skipped.
Unsolicited lines that can never belong to a response (``<topic> -> <data>``,
``+STA_CONNECTED:...``) are set aside for `wait_line` even in the middle of a
command.  Every line read is also kept in ``at.transcript``.
"""
from __future__ import annotations

import re
import time
from typing import List, Optional, Tuple, Union

import serial

FINAL = {b"OK", b"ERROR", b"FAIL", b"SEND OK", b"SEND FAIL", b"CLOSE"}
#: lines that are never part of a command's response: MQTT subscription messages, SoftAP station events
URC = re.compile(rb".+ -> .*|\+STA_(?:CONNECTED|DISCONNECTED):.*|\+DIST_STA_IP:.*")

Pattern = Union[bytes, "re.Pattern[bytes]"]


class AtPort:
    def __init__(self, url: str, baudrate: int = 115200, **kw):
        import wizsock  # noqa: F401  registers wizemu:// with pyserial

        self.ser = serial.serial_for_url(url, baudrate=baudrate, timeout=0.02, **kw)
        self.buf = bytearray()
        self.pending: List[bytes] = []     # lines read while waiting for something else (URCs)
        self._early: List[bytes] = []      # response lines that came before a `>` prompt
        self.transcript: List[bytes] = []

    # -- low level
    def close(self):
        self.ser.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def write(self, data: Union[bytes, str]):
        if isinstance(data, str):
            data = data.encode()
        self.ser.write(data)
        self.ser.flush()

    def _fill(self) -> bool:
        chunk = self.ser.read(4096)
        if chunk:
            self.buf += chunk
            return True
        return False

    def read_line(self, timeout: float = 10.0) -> Optional[bytes]:
        """The next non-empty line from the port (None at timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            i = self.buf.find(b"\n")
            while i >= 0:
                line = bytes(self.buf[:i]).rstrip(b"\r")
                del self.buf[:i + 1]
                if line:
                    self.transcript.append(line)
                    return line
                i = self.buf.find(b"\n")
            if time.monotonic() > deadline:
                return None
            self._fill()

    def _next(self, timeout: float) -> Optional[bytes]:
        if self._early:
            return self._early.pop(0)
        return self.read_line(timeout)

    # -- commands
    def sync(self, timeout: float = 10.0):
        """Send AT until OK (after a boot or a reset); drops what was read before."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.write(b"AT\r\n")
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                line = self.read_line(0.1)
                if line == b"OK":
                    self.pending.clear()
                    self._early.clear()
                    return
        raise TimeoutError("module does not answer AT")

    def command(self, cmd: Union[bytes, str], timeout: float = 15.0) -> Tuple[List[bytes], str]:
        """Send one command line; -> (lines before the final result, final result)."""
        if isinstance(cmd, str):
            cmd = cmd.encode()
        self.write(cmd + b"\r\n")
        return self.collect(timeout, echo=cmd)

    def collect(self, timeout: float = 15.0, echo: Optional[bytes] = None) -> Tuple[List[bytes], str]:
        deadline = time.monotonic() + timeout
        lines: List[bytes] = []
        while True:
            line = self._next(max(0.0, deadline - time.monotonic()))
            if line is None:
                raise TimeoutError(f"no final result for {echo!r}; got {lines!r}")
            if echo is not None and line == echo:
                echo = None
                continue
            if line in FINAL:
                return lines, line.decode()
            if URC.fullmatch(line):
                self.pending.append(line)      # unsolicited: kept for wait_line, not the response
                continue
            lines.append(line)

    def ok(self, cmd: Union[bytes, str], timeout: float = 15.0) -> List[bytes]:
        lines, result = self.command(cmd, timeout)
        assert result == "OK", f"{cmd!r} -> {lines!r} {result}"
        return lines

    def command_with_data(self, cmd: Union[bytes, str], data: bytes, timeout: float = 15.0):
        """A command answered by the `>` prompt: send it, wait for `>`, send `data`, collect."""
        if isinstance(cmd, str):
            cmd = cmd.encode()
        self.write(cmd + b"\r\n")
        deadline = time.monotonic() + timeout
        while b">" not in self.buf:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no prompt for {cmd!r}: {bytes(self.buf)!r}")
            if b"ERROR\r\n" in self.buf:
                return self.collect(timeout, echo=cmd)
            self._fill()
        before, _, after = bytes(self.buf).partition(b">")
        self.buf = bytearray(after)
        for line in before.split(b"\n"):
            line = line.strip(b"\r ")
            if line and line != cmd:
                self._early.append(line)
                self.transcript.append(line)
        self.write(data)
        return self.collect(timeout)

    def wait_line(self, pattern: Pattern, timeout: float = 10.0) -> bytes:
        """Wait for a line matching `pattern` (full match); other lines stay pending."""
        rx = re.compile(pattern) if isinstance(pattern, bytes) else pattern
        for i, line in enumerate(self.pending):
            if rx.fullmatch(line):
                return self.pending.pop(i)
        deadline = time.monotonic() + timeout
        skipped = []
        try:
            while True:
                line = self.read_line(max(0.0, deadline - time.monotonic()))
                if line is None:
                    raise TimeoutError(f"no line like {rx.pattern!r}; saw {skipped!r}")
                if rx.fullmatch(line):
                    return line
                skipped.append(line)
        finally:
            self.pending.extend(skipped)
