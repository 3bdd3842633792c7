"""UART traces: a timestamped record of both directions, secrets masked.

``open_module(port, trace="uart.jsonl")`` (or ``Module(..., trace=...)``, ``wizsock
run --trace FILE``) attaches a :class:`TraceWriter` to the engine's tap
(:meth:`Engine.add_tap`).  The file holds JSON lines: a header, then one record per
line the host wrote and per event the framer read.  It is meant to be attached to a
bug report, so it never holds a secret:

* command lines go through :func:`wizsock.protocol.redact` (passwords, keys);
* bytes written after a ``>`` are recorded by length only, and marked ``masked``
  when they are a certificate or key upload (AT+CASEND and friends);
* response lines are redacted knowing the command in flight (MQTTSET?'s bare
  password line, CWSAP?), PEM bodies are masked, echoed commands (ATE1) too;
* network data (``+IPD``, passthrough bytes) and MQTT messages by length only.

``wizsock trace FILE`` renders it (:mod:`wizsock.tools.trace`).
"""
from __future__ import annotations

import datetime
import json
import os
import time
from typing import IO, Any, Dict, Optional, Union, cast

from .. import protocol as P
from ..framer import (Busy, Data, Echo, Garbage, Info, LinkEvent, Prompt, Ready, Recv, Result,
                      SendBufAck, Subscription, Text, Wifi)

__all__ = ["TraceWriter", "event_line", "open_private", "FORMAT"]

#: the header's ``trace`` value; readers check it
FORMAT = "wizsock-uart-trace/1"

#: commands whose data after ``>`` is a certificate or a private key
PEM_COMMANDS = frozenset({"CASEND", "CLICASEND", "AWSPKSEND"})


def open_private(path: Union[str, "os.PathLike[str]"], mode: str = "w") -> IO[str]:
    """Open a text file for writing that only its owner can read (0600, also if it existed)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:  # pragma: no cover - filesystems without modes
        pass
    return os.fdopen(fd, mode, encoding="utf-8", buffering=1)


def event_line(ev: Any, command: Optional[str] = None, *, redact: bool = True) -> str:
    """The module's line an event came from, as text (network data summarised).

    ``command``: the command in flight, so that its bare response lines are masked
    (AT+MQTTSET? prints its password on a line of its own)."""
    cls = type(ev)
    if cls is Result:
        return str(ev.code)
    if cls is Info or cls is Text or cls is Echo:
        line = (f"+{ev.name}" + ("" if ev.value is None else ":" + ev.value) if cls is Info
                else ev.text)
        if not redact:
            return line
        raw = line.encode("utf-8", "surrogateescape")
        return P.redact(raw, None if cls is Echo else command).decode("utf-8", "replace")
    if cls is Prompt:
        return ">"
    if cls is Busy:
        return f"busy {ev.kind}..." if ev.kind else "busy"
    if cls is Recv:
        return f"Recv {ev.n} bytes"
    if cls is SendBufAck:
        return ("" if ev.link is None else f"{ev.link},") + f"{ev.segment},SEND OK"
    if cls is Ready:
        return "ready"
    if cls is LinkEvent:
        return str(ev.state) if ev.link is None else f"{ev.link},{ev.state}"
    if cls is Wifi:
        return "WIFI " + str(ev.state)
    if cls is Subscription:
        return f"{ev.topic} -> <{len(ev.data)} bytes>"
    if cls is Data:
        where = "" if ev.remote is None else f",{ev.remote[0]},{ev.remote[1]}"
        return f"+IPD,{ev.link},{len(ev.payload)}{where}:<{len(ev.payload)} bytes>"
    if cls is Garbage:
        return f"<{len(ev.data)} unreadable bytes: {ev.reason}>"
    return repr(ev)


class TraceWriter:
    """A tap (``engine.add_tap(writer)``) that writes the trace file.

    ``target``: a path (created 0600, truncated) or an open text file (left open)."""

    def __init__(self, target: Union[str, "os.PathLike[str]", IO[str]], *, port: Any = None,
                 baudrate: Optional[int] = None):
        self._file: Optional[IO[str]]
        if hasattr(target, "write"):
            self._file = cast(IO[str], target)
            self._owned = False
        else:
            self._file = open_private(target)   # (no write(): a path)
            self._owned = True
        self._t0 = time.monotonic()
        from .. import __version__
        self._put({"trace": FORMAT, "start": datetime.datetime.now(datetime.timezone.utc)
                   .isoformat(timespec="milliseconds"), "port": _port_name(port),
                   "baudrate": baudrate, "wizsock": __version__})

    def _put(self, record: Dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n")

    def _now(self) -> float:
        return round(time.monotonic() - self._t0, 6)

    def __call__(self, kind: str, item: Any, command: Optional[str]) -> None:
        rec: Dict[str, Any] = {"t": self._now()}
        if kind == "tx":
            rec["d"] = ">"
            rec["line"] = P.redact(bytes(item).rstrip(b"\r\n")).decode("utf-8", "replace")
        elif kind == "data":
            rec["d"] = ">"
            rec["data"] = len(item)
            if command is not None:
                rec["cmd"] = command
            if command in PEM_COMMANDS:
                rec["masked"] = True
        elif kind == "rx":
            rec["d"] = "<"
            rec["ev"] = type(item).__name__
            if type(item) is Data:
                rec["link"] = item.link
                rec["len"] = len(item.payload)
                if item.remote is not None:
                    rec["remote"] = list(item.remote)
            elif type(item) is Garbage:
                rec["len"] = len(item.data)
                rec["reason"] = item.reason
            else:
                rec["line"] = event_line(item, command)
            if command is not None:
                rec["cmd"] = command
        else:
            rec["d"] = "!"
            rec["note"] = str(item)
        self._put(rec)

    def note(self, text: str) -> None:
        """A line of the host's own (a reset declared, the baud rate changed)."""
        self("note", text, None)

    def close(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            if self._owned:
                f.close()
            else:
                f.flush()


def _port_name(port: Any) -> Optional[str]:
    if port is None or isinstance(port, str):
        return port
    return getattr(port, "port", None) or repr(port)
