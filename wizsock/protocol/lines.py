"""Response lines: the plain text lines a command's answer is made of.

Both the command table (grammar.py, which turns events into lines before a shape reads
them) and the shapes (shapes.py) use these; a module of its own so that neither has to
import the other at run time.
"""
from __future__ import annotations

import re
from typing import Iterable, List, Sequence

# Every C0 control byte and DEL: CR/LF would end the command early, NUL truncates
# it in the firmware's C strings, the rest has no business in a parameter.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ResponseError(ValueError):
    """The module's lines do not have the shape this command's response has."""


def lines_of(events: Iterable[object]) -> List[str]:
    """Framer events (duck-typed) or str/bytes lines -> text lines.

    `Info(name, value)` becomes `+name:value` again (a value-less Info is `+name`),
    anything with `.text` (Text, Echo) its text; other events (Wifi, LinkEvent,
    Result, ...) are not response lines and are dropped.
    """
    out: List[str] = []
    for ev in events:
        if isinstance(ev, (bytes, bytearray, memoryview)):
            out.append(bytes(ev).decode("utf-8", "surrogateescape").rstrip("\r\n"))
        elif isinstance(ev, str):
            out.append(ev.rstrip("\r\n"))
        elif hasattr(ev, "name") and hasattr(ev, "value"):
            out.append("+" + ev.name + ("" if ev.value is None else ":" + ev.value))
        else:
            text = getattr(ev, "text", None)
            if isinstance(text, str):
                out.append(text)
    return out


def encode_lines(lines: Sequence[str]) -> List[bytes]:
    out: List[bytes] = []
    for line in lines:
        m = CONTROL.search(line)
        if m:
            raise ValueError(f"response line {line!r} contains control character {m.group()!r}")
        out.append(line.encode("utf-8", "surrogateescape"))
    return out
