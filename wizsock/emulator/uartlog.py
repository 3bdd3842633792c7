r"""The emulator's UART log (`wizsock emulator --log`, `Emulator(log_file=...)`): both
directions of the serial line, exact and in wire order (design.md §5e).

Format: UTF-8 text, one record a line, after a header line::

    # wizsock-uart-log 1 start=2026-12-07T09:30:00.123456+00:00
    0.512340 >> b'\r\nready\r\n'
    1.020071 << b'AT+CIPSEND=5\r\n'
    1.021002 >> b'OK\r\n> '
    1.030417 << b'hi\x00\xff\n'
    1.100003 << b'AT+CWJAP_CUR="lab","***"\r\n' masked

- the time: seconds (6 decimals) from `start` (the wall-clock time, UTC, of 0) to
  when the record's first byte crossed the wire;
- the direction: ``<<`` host to module, ``>>`` module to host;
- the bytes: a Python bytes literal (printable ASCII as is, every other byte escaped
  as ``\r``, ``\n``, ``\t``, ``\xNN``, a backslash or quote with a backslash before
  it), read back with `ast.literal_eval`;
- ``masked``: the record carried a secret (a password, a key, a PEM body; the rules of
  `wizsock.protocol.Redactor`), so its bytes are the line so far with the secret
  replaced by ``***``, not what crossed the wire.  That record alone is not recoverable:
  `streams` refuses it unless asked to keep the masked form.  The Redactor errs towards
  masking (a whole line of 16+ base64 characters is taken for a PEM body, payload or not).

A record ends after each line end (``\n``), when the other direction starts (so the
records are in the order the bytes crossed), after IDLE seconds without a byte in its
direction, after MAX_RECORD bytes, and when the log closes: a line without an ending
(the prompt ``b"> "``, a partial command) is a record of its own, and joining the records
of one direction gives its byte stream.  Lines that are not records (other messages on
the same stderr) are skipped by `parse_log`.
"""
from __future__ import annotations

import ast
import copy
import datetime
import re
import time
from dataclasses import dataclass
from typing import IO, Callable, Dict, Iterable, List, Optional, Tuple

from wizsock.protocol import Redactor

__all__ = ["HOST_TO_MODULE", "MODULE_TO_HOST", "Record", "UartLog", "parse_log", "streams"]

HOST_TO_MODULE = "<<"
MODULE_TO_HOST = ">>"
HEADER = "# wizsock-uart-log 1"
#: seconds without a byte after which a record without a line end is written
IDLE = 0.05
MAX_RECORD = 4096

_RECORD = re.compile(r"(\d+\.\d{6}) (<<|>>) (b'.*'|b\".*\")( masked)?")


@dataclass(frozen=True)
class Record:
    """One log record: `t` seconds from the log's start, `direction` (`HOST_TO_MODULE`
    or `MODULE_TO_HOST`), its bytes, and whether they are the masked form."""

    t: float
    direction: str
    data: bytes
    masked: bool = False


def parse_log(lines: Iterable[str]) -> List[Record]:
    """The records of a UART log, in order; lines that are not records are skipped."""
    out: List[Record] = []
    for line in lines:
        m = _RECORD.fullmatch(line.rstrip("\r\n"))
        if m is None:
            continue
        data = ast.literal_eval(m.group(3))
        if not isinstance(data, bytes):  # pragma: no cover - the pattern admits bytes only
            continue
        out.append(Record(float(m.group(1)), m.group(2), data, m.group(4) is not None))
    return out


def streams(records: Iterable[Record], keep_masked: bool = False) -> Tuple[bytes, bytes]:
    """(host-to-module bytes, module-to-host bytes) joined from the records.

    A masked record does not hold the wire's bytes: ValueError names the first one,
    unless `keep_masked`, which joins its masked form instead.
    """
    parts: Dict[str, List[bytes]] = {HOST_TO_MODULE: [], MODULE_TO_HOST: []}
    for r in records:
        if r.masked and not keep_masked:
            raise ValueError(f"record at t={r.t:.6f} ({r.direction}) is masked: its bytes are not the wire's")
        parts[r.direction].append(r.data)
    return b"".join(parts[HOST_TO_MODULE]), b"".join(parts[MODULE_TO_HOST])


class UartLog:
    """Writes the records of one UART to `file`; fed from the emulator's loop thread
    with every slice handed over in either direction (`feed`) and polled for idle
    partial records (`flush_idle`)."""

    def __init__(self, file: IO[str], clock: Callable[[], float] = time.monotonic) -> None:
        self._file = file
        self._clock = clock
        self._t0 = clock()
        self._redactor = Redactor()
        self._dir: Optional[str] = None     # direction of the open record
        self._data = bytearray()            # its bytes so far
        self._since = 0.0                   # when its first byte came
        self._last = 0.0                    # when its last byte came
        # per direction, what of the current line earlier records already wrote
        self._line = {HOST_TO_MODULE: b"", MODULE_TO_HOST: b""}
        start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=clock() - self._t0)
        self._write(f"{HEADER} start={start.isoformat()}")

    def feed(self, direction: str, data: bytes, now: Optional[float] = None) -> None:
        when = self._clock() if now is None else now
        if self._dir is not None and self._dir != direction:
            self._end_record()
        view = memoryview(bytes(data))
        while view:
            if self._dir is None:
                self._dir, self._since = direction, when
            room = MAX_RECORD - len(self._data)
            chunk = bytes(view[:room])
            nl = chunk.find(b"\n")
            if nl >= 0:
                chunk = chunk[:nl + 1]
            self._data += chunk
            view = view[len(chunk):]
            self._last = when
            if nl >= 0 or len(self._data) >= MAX_RECORD:
                self._end_record()

    def flush_idle(self, now: Optional[float] = None) -> None:
        """End the open record if its direction has been quiet for IDLE seconds."""
        when = self._clock() if now is None else now
        if self._dir is not None and when - self._last >= IDLE:
            self._end_record()

    def close(self) -> None:
        if self._dir is not None:
            self._end_record()
        try:
            self._file.flush()
        except (OSError, ValueError):
            pass

    def _end_record(self) -> None:
        direction, data = self._dir, bytes(self._data)
        assert direction is not None
        self._dir = None
        self._data = bytearray()
        before = self._line[direction]
        line = before + data
        from_host = direction == HOST_TO_MODULE
        if data.endswith(b"\n"):
            self._line[direction] = b""
            shown = self._redactor.line(line, from_host)
        else:
            self._line[direction] = line
            # a partial line is judged as it stands, without moving the conversation on
            # (its end is judged with the whole line); an unterminated quote masks it all
            shown = copy.deepcopy(self._redactor).line(line, from_host)
        masked = shown != line
        if not masked:
            shown = data
        self._write(f"{self._since - self._t0:.6f} {direction} {shown!r}" + (" masked" if masked else ""))

    def _write(self, text: str) -> None:
        try:
            print(text, file=self._file, flush=True)
        except (OSError, ValueError):   # a closed stderr must not stop the module
            pass
