"""A raw AT session over a port: each answer's bytes, events and timing, nothing hidden.

``wizsock check`` needs what the engine deliberately hides: the exact lines a module
printed for one command, stray ones included, and when each arrived.  This session
writes a command, reads until its final result (or the ``>`` of a data command) and
returns an :class:`Answer`: the raw bytes, the framer's events (``wizsock.framer``, the
one that classifies module output for the engine too) with the time each was read,
and the times of the command's last byte, the first answer byte, the prompt and the
final result.  One thread, blocking reads with a short timeout; no engine.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple

from wizsock.framer import Data, Framer, Prompt, Ready, Result, SendBufAck

__all__ = ["Answer", "RawSession", "FINAL"]

#: the results that end an answer (SEND OK/FAIL end a data phase)
FINAL = frozenset({"OK", "ERROR", "FAIL", "SEND OK", "SEND FAIL", "ALREADY CONNECTED", "DNS Fail",
                   "link is not valid"})


@dataclass
class Answer:
    """What the module printed in answer to one thing the host wrote."""
    sent: bytes                                   # what was written (may hold a secret: never shown raw)
    raw: bytes = b""
    events: List[Tuple[float, Any]] = field(default_factory=list)   # (monotonic time read, event)
    t_written: float = 0.0                        # the host began writing it
    t_first: Optional[float] = None               # first byte of the answer read
    t_prompt: Optional[float] = None
    t_final: Optional[float] = None
    result: Optional[str] = None                  # final result code, ">" for a prompt, None: timed out
    reads: List[Tuple[float, int]] = field(default_factory=list)    # (time, bytes) of each read

    @property
    def turnaround(self) -> Optional[float]:
        end = self.t_final if self.t_final is not None else self.t_prompt
        return None if end is None else end - self.t_written

    def of(self, kind: type) -> List[Any]:
        return [ev for _, ev in self.events if isinstance(ev, kind)]


class RawSession:
    """AT commands over ``port`` (anything with pyserial's read/write/in_waiting)."""

    def __init__(self, port: Any, baudrate: int, *, max_ipd: int = 8192):
        self.port = port
        self.baudrate = baudrate
        self.framer = Framer(max_ipd=max_ipd, max_line=4096)
        self._held: List[Tuple[float, Any]] = []   # events read past the end of an answer
        try:
            port.timeout = 0.005
        except (AttributeError, ValueError):
            pass

    def wire_time(self, nbytes: int) -> float:
        """Seconds ``nbytes`` take on the line (8N1: 10 bits a byte)."""
        return nbytes * 10.0 / self.baudrate

    # -------------------------------------------------------------- reading
    def _read_some(self) -> Tuple[float, bytes]:
        n = 0
        try:
            n = self.port.in_waiting
        except (AttributeError, OSError):
            n = 0
        data = self.port.read(max(1, min(n, 65536)))
        return time.monotonic(), bytes(data)

    def _events(self, stop: Callable[[Answer, Any], bool], ans: Answer, timeout: float,
                quiet: float = 0.0) -> Answer:
        """Read into ``ans`` until ``stop(ans, event)`` is true (then, with ``quiet``, until
        that long passes with nothing read), or ``timeout``."""
        deadline = time.monotonic() + timeout
        done_at: Optional[float] = None
        held, self._held = self._held, []
        queue = list(held)
        while True:
            while queue:
                t, ev = queue.pop(0)
                if done_at is not None and not quiet:
                    self._held.append((t, ev))
                    continue
                ans.events.append((t, ev))
                if ans.t_first is None:
                    ans.t_first = t
                if isinstance(ev, Prompt) and ans.t_prompt is None:
                    ans.t_prompt = t
                if done_at is None and stop(ans, ev):
                    done_at = t
                    if isinstance(ev, Result):
                        ans.result, ans.t_final = ev.code, t
                    elif isinstance(ev, Prompt):
                        ans.result = ans.result or ">"
                    elif isinstance(ev, SendBufAck):
                        ans.result, ans.t_final = "SEND OK", t
                    elif isinstance(ev, Ready):
                        ans.result, ans.t_final = "ready", t
                    else:
                        ans.result, ans.t_final = "event", t
            now = time.monotonic()
            if done_at is not None and (not quiet or now >= max(done_at, ans.t_final or done_at) + quiet):
                return ans
            if now >= deadline:
                return ans
            t, chunk = self._read_some()
            if chunk:
                ans.raw += chunk
                ans.reads.append((t, len(chunk)))
                queue = [(t, ev) for ev in self.framer.feed(chunk)]
                if quiet and done_at is not None:
                    done_at = t    # something came: the quiet period starts again

    def write(self, data: bytes) -> float:
        """Write ``data``; the time it was handed over.  Taken before the write: a thread
        preempted after it would stamp late and make an answer look quicker than it was
        (the least of a command's samples, which a timing profile takes, would be too small);
        stamped before, the host can only add time."""
        t = time.monotonic()
        self.port.write(data)
        try:
            self.port.flush()
        except (AttributeError, OSError):
            pass
        return t

    # ------------------------------------------------------------- commands
    def command(self, line: bytes, *, timeout: float = 5.0, prompt: bool = False,
                quiet: float = 0.0) -> Answer:
        """Write ``line`` + CR LF; read until its final result (or ``>`` when ``prompt``)."""
        ans = Answer(line)
        ans.t_written = self.write(line + b"\r\n")

        def stop(a: Answer, ev: Any) -> bool:
            if prompt:   # a data command's OK comes before its `>`
                return isinstance(ev, Prompt) or (isinstance(ev, Result) and ev.code in FINAL and ev.code != "OK")
            return isinstance(ev, Result) and ev.code in FINAL
        return self._events(stop, ans, timeout, quiet)

    def data(self, payload: bytes, *, until: Callable[[Answer, Any], bool], timeout: float = 5.0,
             quiet: float = 0.0) -> Answer:
        """Write ``payload`` (after a ``>``); read until ``until(answer, event)``."""
        ans = Answer(payload)
        ans.t_written = self.write(payload)
        return self._events(until, ans, timeout, quiet)

    def collect(self, until: Callable[[Answer, Any], bool], *, timeout: float, quiet: float = 0.0) -> Answer:
        """Read what the module prints by itself (``+IPD``, ``CLOSED``) until ``until``."""
        ans = Answer(b"")
        ans.t_written = time.monotonic()
        return self._events(until, ans, timeout, quiet)

    def drain(self, seconds: float = 0.05) -> Answer:
        """Everything printed within ``seconds`` (at least that long of silence at the end)."""
        return self.collect(lambda a, ev: False, timeout=seconds)

    @staticmethod
    def received(answer: Answer, link: Optional[int] = None) -> bytes:
        return b"".join(bytes(ev.payload) for ev in answer.of(Data) if link is None or ev.link == link)
