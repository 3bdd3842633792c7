"""Timing profiles: how long a module takes to answer, as ``wizsock check --profile`` measures it.

A profile is JSON (``FORMAT``)::

    {"format": "wizsock-timing-profile", "version": 1,
     "source": "where the numbers come from",
     "baudrate": 115200,                  # the rate they were measured at
     "turnaround": {"AT+GMR": 0.0031, "AT+CWMODE_CUR?": 0.0012, ...},
     "default_turnaround": 0.0,           # commands not listed
     "send_ok": 0.0,                      # AT+CIPSEND: data in -> data leaves (SEND OK that much later)
     "boot": 0.05,                        # AT+RST's OK -> "ready"
     "line_rate_ratio": 1.0,              # module output: bytes/s over the line rate (pauses between bytes)
     "measured": {...}}                   # the raw figures, for a bug report

Every time is the module's own share in seconds: the measured time minus the wire time of
the bytes both ways at ``baudrate`` (10 bits a byte), so a profile measured at one rate
replays at another.  Commands whose time is the radio's or the network's (scan, join,
connect, ping, name lookup, reset) are not in ``turnaround``: the emulator models those
from its world.  ``Emulator(profile=...)``, ``wizsock emulator --profile FILE`` and
``wizemu://?profile=FILE`` load one.

The default profile (``TimingProfile()``) is the emulator's reference timing: no
processing time (an answer starts when its command's last byte is in and goes at the
line rate), the data of AT+CIPSEND leaves at once (SEND OK one network round trip
later), output at the full line rate, and the boot time the emulator is given (0.05 s
for ``Emulator``, 0.3 s for ``wizsock emulator``).  These are a model, not a
measurement: no module has been measured here yet (docs/cookbook.md says how to send one).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

__all__ = ["FORMAT", "TimingProfile", "key_of", "NOT_PROFILED"]

FORMAT = "wizsock-timing-profile"
VERSION = 1
_FORM_SUFFIX = {"query": "?", "test": "=?", "set": "=", "execute": ""}
#: commands whose time is the radio's or the network's, modelled by the emulator's world
NOT_PROFILED = frozenset({"CWLAP", "CWJAP_CUR", "CWJAP_DEF", "CWJAP", "CIPSTART", "PING", "CIPDOMAIN",
                          "RST", "RESTORE", "CWQAP", "GSLP", "CWSTARTSMART", "WPS", "CIUPDATE",
                          "SNTPTIME", "MQTTCON", "AZCON", "AWSCON"})


def key_of(name: str, form: str) -> str:
    """The profile's key of a command: ``AT+NAME`` and its form's suffix (``?``, ``=?``, ``=``)."""
    head = "AT" + name if name in ("", "E0", "E1") else "AT+" + name
    return head + _FORM_SUFFIX.get(form, "")


def _seconds(value: Any, what: str) -> float:
    v = float(value)
    if not 0.0 <= v <= 60.0:
        raise ValueError(f"timing profile: {what} = {v} is not 0..60 seconds")
    return v


@dataclass
class TimingProfile:
    turnaround: Dict[str, float] = field(default_factory=dict)
    default_turnaround: float = 0.0
    send_ok: float = 0.0
    boot: Optional[float] = None          # None: the emulator's own boot_delay
    line_rate_ratio: float = 1.0
    baudrate: Optional[int] = None
    source: str = "the emulator's reference timing (no processing time)"
    measured: Dict[str, Any] = field(default_factory=dict)

    def delay(self, name: str, form: str) -> float:
        """Processing time before the module answers this command."""
        if name in NOT_PROFILED:
            return 0.0
        return self.turnaround.get(key_of(name, form), self.default_turnaround)

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"format": FORMAT, "version": VERSION, "source": self.source,
                               "baudrate": self.baudrate,
                               "turnaround": {k: round(v, 6) for k, v in sorted(self.turnaround.items())},
                               "default_turnaround": round(self.default_turnaround, 6),
                               "send_ok": round(self.send_ok, 6), "line_rate_ratio": round(self.line_rate_ratio, 4)}
        if self.boot is not None:
            out["boot"] = round(self.boot, 6)
        if self.measured:
            out["measured"] = self.measured
        return out

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "TimingProfile":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a timing profile (expected \"format\": \"{FORMAT}\")")
        if data.get("version", VERSION) > VERSION:
            raise ValueError(f"timing profile version {data.get('version')} is newer than this wizsock's ({VERSION})")
        turn = data.get("turnaround", {})
        if not isinstance(turn, dict):
            raise ValueError("timing profile: turnaround must be an object")
        ratio = float(data.get("line_rate_ratio", 1.0))
        if not 0.05 <= ratio <= 1.0:
            raise ValueError(f"timing profile: line_rate_ratio = {ratio} is not 0.05..1")
        boot = data.get("boot")
        return cls(turnaround={str(k): _seconds(v, f"turnaround[{k!r}]") for k, v in turn.items()},
                   default_turnaround=_seconds(data.get("default_turnaround", 0.0), "default_turnaround"),
                   send_ok=_seconds(data.get("send_ok", 0.0), "send_ok"),
                   boot=None if boot is None else _seconds(boot, "boot"),
                   line_rate_ratio=ratio,
                   baudrate=data.get("baudrate"), source=str(data.get("source", "")),
                   measured=dict(data.get("measured", {})))

    @classmethod
    def load(cls, path: "str | os.PathLike[str]") -> "TimingProfile":
        with open(path, "r", encoding="utf-8") as f:
            try:
                data = json.load(f)
            except ValueError as e:
                raise ValueError(f"timing profile {os.fspath(path)}: {e}") from None
        return cls.from_json(data)

    def save(self, path: "str | os.PathLike[str]") -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, indent=2)
            f.write("\n")
