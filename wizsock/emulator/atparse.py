"""The emulator's view of the codec (`wizsock.protocol`, design.md §2).

Every command line is parsed by `protocol.parse_request` (a malformed or
out-of-range line is the module's ERROR).  Handlers also get the parameters
positionally (`args`), split by the codec's own `tokenize`: the module decides
by its CIPMUX state whether a leading number is a link id.
"""
from __future__ import annotations

import re
from typing import Any, List

from wizsock import protocol as P

RequestError = P.RequestError
format_ipd = P.format_ipd
redact = P.redact
Redactor = P.Redactor
_INT = re.compile(r"-?\d+$")


def parse(line: bytes):
    """Line without CR LF -> codec Request (raises RequestError when malformed)."""
    return P.parse_request(line)


def args(line: bytes) -> List[Any]:
    """The parameters as typed, in order: quoted -> str, bare integers -> int, empty -> None."""
    text = line.decode("utf-8", "surrogateescape")
    if "=" not in text or text.endswith("=?"):
        return []
    vals: List[Any] = []
    for f in P.tokenize(text.split("=", 1)[1]):
        if f.quoted:
            vals.append(f.text)
        elif f.text == "":
            vals.append(None)
        elif _INT.match(f.text):
            vals.append(int(f.text))
        else:
            vals.append(f.text)
    while vals and vals[-1] is None:
        vals.pop()
    return vals
