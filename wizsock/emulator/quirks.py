"""Firmware variants of the emulated module: one switch per quirk, all off by default.

A quirk is a way real WizFi360 (or ESP8266-AT-derived) firmware is known to answer
differently from the emulator's reference behaviour. Each carries its evidence, so a
difference ``wizsock check`` reports on a user's module can become a tested variant:
``Emulator(quirks=["no_change"])``, ``wizsock emulator --quirk no_change``,
``wizemu://?quirks=no_change,overlong_discard``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterable, Optional, Union

__all__ = ["Quirk", "QUIRKS", "parse_quirks"]


@dataclass(frozen=True)
class Quirk:
    name: str
    command: str      # the command whose answer differs (as the check names it)
    section: str      # the spec section it concerns
    what: str         # the variant's behaviour
    evidence: str     # where it was seen


QUIRKS: Dict[str, Quirk] = {q.name: q for q in (
    Quirk("no_change", "AT+CIPSERVER=0", "3.3.16",
          "deleting a server when none runs answers `no change` before OK",
          "ESP8266 AT 1.3.0.0 (the firmware family WizFi360's AT set derives from), trace in "
          "MaJerle/ESP8266_AT_Commands_parser issue #50: `AT+CIPSERVER=0` -> `no change`, `OK`"),
    Quirk("overlong_discard", "AT+CIPSENDBUF=<link>,<length>", "3.3.9",
          "bytes sent after the announced <length> (in the same burst) are discarded and "
          "answered `busy s...`, instead of being read as the start of the next command",
          "the spec itself, 3.3.9 (AT+CIPSENDBUF): 'If the data length over the value of "
          "<length>, the data will be discarded, the system returns: busy'"),
)}


def parse_quirks(value: Union[None, str, Iterable[str]]) -> FrozenSet[str]:
    """``"a,b"`` or ``["a", "b"]`` -> the set of quirk names; ValueError for an unknown one."""
    if value is None:
        return frozenset()
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value)]
    names = [n for n in names if n]
    unknown = sorted(set(names) - set(QUIRKS))
    if unknown:
        raise ValueError(f"unknown quirk(s) {', '.join(unknown)} (known: {', '.join(sorted(QUIRKS))})")
    return frozenset(names)


def describe(name: str) -> Optional[Quirk]:
    return QUIRKS.get(name)
