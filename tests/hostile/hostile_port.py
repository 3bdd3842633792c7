"""A hostile module: a pyserial-compatible port in front of the emulator that lies.

``HostilePort(url)`` opens the emulator's in-process port (``wizemu://...``) and
passes every byte through, except where a test has armed a rule:

* ``on_write(pattern, inject)``: when the host writes bytes matching ``pattern``
  (a command line, or a payload), ``inject`` reaches the host *before* anything
  the module prints in answer: output at "after the echo", or, for a payload,
  while the host is writing it (mid-payload).
* ``on_output(pattern, inject=b"", replace=None)``: when the module's output
  matches ``pattern`` (a regex on the raw byte stream), ``inject`` follows the
  matched bytes (between response lines, after ``>``, inside a ``+IPD`` payload)
  or ``replace`` (bytes, or a function of the match) stands in for them (lengths
  that lie, answers that never come).
* ``inject(data)``: output now, whatever the module is doing.

Rules fire once unless ``times`` says otherwise; ``fired(rule)`` tells whether it
did, so a test can check that its attack really happened.  The engine sees a
port object like any other (``open_module(port_object)``); no engine internals
are touched.  Module output is scanned line by line: bytes are passed on up to
the last line end or ``>`` seen, the rest a moment later (``HOLD``), so patterns
that end at a line end or a prompt are never split between reads.
"""
from __future__ import annotations

import re
import threading
import time
from typing import Callable, List, Optional, Union

import serial

import wizsock  # noqa: F401  registers wizemu:// with pyserial

Pattern = Union[bytes, "re.Pattern[bytes]"]
Replacement = Union[bytes, Callable[["re.Match[bytes]"], bytes], None]

#: how long an unterminated tail of module output is held for pattern matching
HOLD = 0.01


class Rule:
    def __init__(self, pattern: Pattern, inject: bytes = b"", replace: Replacement = None,
                 times: int = 1, mute: float = 0.0):
        self.pattern = re.compile(pattern, re.S) if isinstance(pattern, bytes) else pattern
        self.inject = inject
        self.replace = replace
        self.mute = mute
        self.left = times
        self.hits = 0


class HostilePort:
    """Duck-typed pyserial port (what the engine uses of one)."""

    def __init__(self, url: str, baudrate: int):
        self.inner = serial.serial_for_url(url, baudrate=baudrate, timeout=0.01)
        self.port = "hostile+" + url
        self._timeout: Optional[float] = 0.02
        self._cond = threading.Condition()
        self._out = bytearray()          # what the host reads next
        self._scan = bytearray()         # module output not yet released (pattern matching)
        self._scan_since = 0.0
        self._write_rules: List[Rule] = []
        self._output_rules: List[Rule] = []
        self._cancel = False
        self._mute_until = 0.0
        self.is_open = True
        self.written = bytearray()       # everything the host wrote (for assertions)

    # ------------------------------------------------------------ scripting
    def on_write(self, pattern: Pattern, inject: bytes = b"", times: int = 1,
                 mute: float = 0.0) -> Rule:
        """``mute``: then drop everything the module prints for that many seconds."""
        rule = Rule(pattern, inject, times=times, mute=mute)
        with self._cond:
            self._write_rules.append(rule)
        return rule

    def on_output(self, pattern: Pattern, inject: bytes = b"", replace: Replacement = None,
                  times: int = 1) -> Rule:
        rule = Rule(pattern, inject, replace, times)
        with self._cond:
            self._output_rules.append(rule)
        return rule

    def inject(self, data: bytes) -> None:
        with self._cond:
            self._out += data
            self._cond.notify_all()

    def disarm(self) -> None:
        with self._cond:
            self._write_rules.clear()
            self._output_rules.clear()

    @staticmethod
    def fired(rule: Rule) -> bool:
        return rule.hits > 0

    # ------------------------------------------------------------ port surface
    @property
    def timeout(self):
        return self._timeout

    @timeout.setter
    def timeout(self, value):
        self._timeout = value

    @property
    def baudrate(self):
        return self.inner.baudrate

    @baudrate.setter
    def baudrate(self, value):
        self.inner.baudrate = value

    @property
    def rts(self):
        return self.inner.rts

    @rts.setter
    def rts(self, value):
        self.inner.rts = value

    @property
    def emulator(self):
        return self.inner.emulator

    @property
    def in_waiting(self) -> int:
        self._pump(0)
        with self._cond:
            return len(self._out)

    def read(self, size: int = 1) -> bytes:
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        self._cancel = False
        while True:
            with self._cond:
                if self._out:
                    out = bytes(self._out[:size])
                    del self._out[:size]
                    return out
                if self._cancel or not self.is_open:
                    self._cancel = False
                    return b""
            if deadline is not None and time.monotonic() >= deadline:
                return b""
            self._pump(0.005)

    def write(self, data) -> int:
        data = bytes(data)
        with self._cond:
            self.written += data
            for rule in self._write_rules:
                if rule.left and rule.pattern.search(data):
                    rule.left -= 1
                    rule.hits += 1
                    # before the bytes reach the module: nothing it prints in answer
                    # can overtake the injection
                    self._out += rule.inject
                    if rule.mute:
                        self._mute_until = time.monotonic() + rule.mute
                    self._cond.notify_all()
            self._write_rules = [r for r in self._write_rules if r.left]
        self.inner.write(data)
        return len(data)

    def cancel_read(self) -> None:
        self._cancel = True
        try:
            self.inner.cancel_read()
        except Exception:
            pass

    def flush(self) -> None:
        pass

    def reset_input_buffer(self) -> None:
        with self._cond:
            self._out.clear()
            self._scan.clear()

    def close(self) -> None:
        self.is_open = False
        self.inner.close()

    # ------------------------------------------------------------ the module's output
    def _pump(self, wait: float) -> None:
        """Move module output through the rules into ``_out``."""
        inner = self.inner
        if not inner.is_open:
            return
        old = inner.timeout
        n = inner.in_waiting
        if n:
            data = inner.read(n)
        elif wait:
            inner.timeout = wait
            data = inner.read(1)
            inner.timeout = old
        else:
            data = b""
        with self._cond:
            if data and time.monotonic() < self._mute_until:
                data = b""          # the module's answer never reaches the host
            if data:
                if not self._scan:
                    self._scan_since = time.monotonic()
                self._scan += data
            if not self._scan:
                return
            cut = max(self._scan.rfind(b"\n"), self._scan.rfind(b">")) + 1
            if time.monotonic() - self._scan_since >= HOLD or not self._output_rules:
                cut = len(self._scan)
            if cut <= 0:
                return
            chunk = bytes(self._scan[:cut])
            del self._scan[:cut]
            self._scan_since = time.monotonic()
            self._out += self._apply(chunk)
            self._cond.notify_all()

    def _apply(self, chunk: bytes) -> bytes:
        for rule in self._output_rules:
            if not rule.left:
                continue
            m = rule.pattern.search(chunk)
            if m is None:
                continue
            rule.left -= 1
            rule.hits += 1
            if rule.replace is None:
                middle = m.group(0)
            elif callable(rule.replace):
                middle = rule.replace(m)
            else:
                middle = rule.replace
            chunk = chunk[:m.start()] + middle + rule.inject + self._apply(chunk[m.end():])
            break
        self._output_rules = [r for r in self._output_rules if r.left]
        return chunk
