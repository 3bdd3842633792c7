"""The emulator's view of the codec (`wizsock.protocol`, design.md §2).

Every command line is parsed by `protocol.parse_request` (a malformed or
out-of-range line is the module's ERROR) and handlers read the codec's typed
parameters from that Request: one validator for both sides. The module's
CIPMUX state decides whether a leading link id is taken (`net._link_id`).
"""
from __future__ import annotations

from wizsock import protocol as P

RequestError = P.RequestError
format_ipd = P.format_ipd
redact = P.redact
Redactor = P.Redactor


def parse(line: bytes) -> P.Request:
    """Line without CR LF -> codec Request (raises RequestError when malformed)."""
    return P.parse_request(line)
