"""Feedback on long work, on a terminal only: joins, scans, AT+CIUPDATE, PEM uploads.

``with progress_for(module, "joining 'lab'"):`` shows one status line on stderr
(elapsed time, what the module reported so far: ``WIFI CONNECTED``, the update
stage, the share of a certificate upload the UART has carried), redrawn in place
and erased at the end.  When stderr is not a terminal it does nothing at all, so
scripts and logs stay clean.  It watches the engine's tap, so it follows any
command, whoever issued it (the terminal uses it for what the user types).
"""
from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Any, Iterator, Optional, TextIO, Tuple

from wizsock.protocol import CIUPDATE_STAGES

__all__ = ["Progress", "progress_for", "LONG_COMMANDS"]

#: commands worth a status line, and what it says
LONG_COMMANDS = {
    "CWJAP_CUR": "joining", "CWJAP_DEF": "joining", "CWLAP": "scanning",
    "CIUPDATE": "updating the firmware", "CASEND": "uploading the CA certificate",
    "CLICASEND": "uploading the client certificate", "AWSPKSEND": "uploading the private key",
    "PING": "pinging", "CIPSTART": "connecting", "MQTTCON": "connecting to the broker",
    "AZCON": "connecting to Azure", "AWSCON": "connecting to AWS", "RST": "restarting",
}


class Progress:
    """A status line on ``stream`` driven by the engine's tap (see module doc)."""

    def __init__(self, module: Any, label: Optional[str] = None, *,
                 stream: Optional[TextIO] = None, min_seconds: float = 0.3):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _isatty(self.stream)
        self._module = module
        self._label = label
        self._min = min_seconds
        self._lock = threading.Lock()
        self._cmd: Optional[str] = None
        self._what: Optional[str] = None
        self._started = 0.0
        self._detail = ""
        self._upload: Optional[Tuple[int, float, float]] = None      # (bytes, start time, wire seconds)
        self._shown = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._remove: Any = None

    # -- the engine's tap (runs on the engine's loop: no blocking, no output)
    def __call__(self, kind: str, item: Any, command: Optional[str]) -> None:
        now = time.monotonic()
        with self._lock:
            if kind == "tx":
                name = _command_name(bytes(item))
                if name in LONG_COMMANDS:
                    self._cmd, self._started, self._detail, self._upload = name, now, "", None
                    self._what = self._label or LONG_COMMANDS[name]
                return
            if self._cmd is None:
                return
            if kind == "data" and command == self._cmd:
                baud = getattr(self._module.engine, "baudrate", 115200) or 115200
                self._upload = (len(item), now, len(item) * 10 / baud)
                return
            if kind != "rx":
                return
            cls = type(item).__name__
            if cls == "Wifi":
                self._detail = "WIFI " + item.state
            elif cls == "Info" and item.name == "CIUPDATE" and item.value:
                try:
                    stage = int(item.value.strip(" <>"))
                    self._detail = f"stage {stage}/4: {CIUPDATE_STAGES.get(stage, '?')}"
                except ValueError:
                    pass
            elif cls == "Result" and command == self._cmd and item.code in (
                    "OK", "ERROR", "FAIL", "SEND OK", "SEND FAIL"):
                self._cmd = None

    # -- the drawing thread
    def _line(self) -> Optional[str]:
        with self._lock:
            if self._cmd is None:
                return None
            now = time.monotonic()
            elapsed = now - self._started
            if elapsed < self._min:
                return None
            text = f"{self._what}... {elapsed:.1f} s"
            if self._upload is not None:
                n, t0, wire = self._upload
                share = min(1.0, (now - t0) / wire) if wire > 0 else 1.0
                text += f"  {int(share * n)}/{n} bytes" + (" (waiting for the module)"
                                                            if share >= 1.0 else "")
            if self._detail:
                text += "  " + self._detail
            return text

    def _draw(self) -> None:
        spin = "|/-\\"
        i = 0
        while not self._stop.wait(0.1):
            line = self._line()
            if line is None:
                if self._shown:
                    self._erase()
                continue
            i += 1
            self.stream.write(f"\r\x1b[2K{spin[i % 4]} {line}")
            self.stream.flush()
            self._shown = True
        if self._shown:
            self._erase()

    def _erase(self) -> None:
        self.stream.write("\r\x1b[2K")
        self.stream.flush()
        self._shown = False

    def start(self) -> "Progress":
        if self.enabled and self._thread is None:
            self._remove = self._module.engine.add_tap(self)
            self._thread = threading.Thread(target=self._draw, name="wizsock-progress",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(2)
            self._thread = None
            self._remove()

    def __enter__(self) -> "Progress":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@contextlib.contextmanager
def progress_for(module: Any, label: Optional[str] = None,
                 stream: Optional[TextIO] = None) -> Iterator[Progress]:
    """``with progress_for(m, "joining"):`` - a status line while long commands run."""
    p = Progress(module, label, stream=stream)
    with p:
        yield p


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _command_name(line: bytes) -> Optional[str]:
    if not line.startswith(b"AT+"):
        return None
    end = len(line)
    for sep in (b"=", b"?", b"\r"):
        i = line.find(sep, 3)
        if i != -1:
            end = min(end, i)
    return line[3:end].decode("ascii", "replace")
