"""wizsock.protocol: the one grammar of the WizFi360 AT instruction set (sans-I/O).

The host engine builds commands and parses responses with it, the emulator
parses commands and formats responses with it; both read the same declarative
command table (`commands.py`), so they cannot disagree about a format::

    from wizsock import protocol as p

    spec = p.COMMANDS["CWJAP_CUR"]        # name after "AT+"; "" is AT, "E0"/"E1" are ATE0/ATE1;
                                          # spec spellings CWDHPCS_*, CIPSENDERBUF resolve too
    req = spec.set(ssid="x", pwd='p"w')   # also .query(), .execute(**kw), .test(), .request(form, **kw)
    req.encode()                          # b'AT+CWJAP_CUR="x","p\\"w"\\r\\n'
    req.name, req.form, req.params        # 'CWJAP_CUR', 'set', {'ssid': 'x', 'pwd': 'p"w', 'bssid': None}
    req.link                              # params['link'] (multi-connection commands), else None

    p.parse_request(b'AT+CWJAP_CUR="x","y"\\r\\n')   # emulator side -> Request; RequestError if malformed
                                                     # (UnknownCommand for a name not in the table)

    spec.parse_response(form, events)     # host: framer Info/Text events (or str/bytes lines)
                                          # before the final result -> record (records.py) or None
    spec.parse_response(form, events, expect=records.BufferStatus)   # the same, typed as that record
                                          # for a checker (ResponseError if the record is another type)
    spec.format_response(form, record)    # emulator: record -> [bytes lines] printed before the result
    # module-level equivalents: p.parse_response(name, form, events), p.format_response(name, form, record)
    # CWLAP takes mask=<CWLAPOPT mask> on both sides and sort=True when formatting.

    p.format_ipd(link, payload, remote=None, mux=True) -> bytes   # +IPD,<link>,<len>[,"ip",port]:data
    p.redact(line, command=None) -> bytes                          # secrets masked for logs
    r = p.Redactor(); r.line(line, from_host) -> bytes             # the same for a conversation (traffic
                                                                   # logs): bare answers, whole PEM blocks
    p.format_smartconfig(info) / p.parse_smartconfig(events)       # messages after CWSTARTSMART
    p.format_subscription(topic, data) -> bytes                    # `<topic> -> <data>` (MQTT/Azure/AWS)
    p.format_message(rec) / p.parse_message(event)                 # +STA_CONNECTED / +DIST_STA_IP / +STA_DISCONNECTED
    p.pem_upload("CASEND", pem) -> bytes                           # what to write after the `>` of AT+CASEND=1 etc.
    p.PEM_MARKERS[name] -> (begin, end); p.TRANSPARENT_ESCAPE == b"+++"
                                          # (PemError, a ValueError, for a bundle, a key where a
                                          # certificate goes, binary data, text after END; never
                                          # quoting the content); p.pem_blocks(text) -> [(label, lines)]
    p.request(name, form, **params)       # COMMANDS[name].request(form, **params)
    p.MAX_SEND                            # the longest payload of one CIPSEND/CIPSENDEX/CIPSENDBUF
    p.payload_for(request, payload) -> bytes  # what may follow `>` (PEM check, exact CIPSEND length)

    p.parse_request(line, mux=False)      # with the CIPMUX state known: `link=` forms only when mux
    req.args                              # values in wire order (what positional handlers want)

Multi-connection commands (CIPSTART, CIPSEND, CIPSENDEX, CIPSENDBUF, CIPBUFRESET,
CIPBUFSTATUS, CIPCHECKSEQ, CIPCLOSE, MQTTCON) take `link=` (None in single
mode); CIPCLOSE/CIPBUFRESET/CIPBUFSTATUS `.set(link=None)` give the plain
execute form. Parameters are validated when a request is built: a bad value
raises RequestError (a ValueError) naming the parameter. Strings are quoted
with `\\`, `"` and `,` backslash-escaped; CR, LF, NUL and other control
characters are refused, so nothing can end a command early.

Meaning tables: CWJAP_ERRORS (join failure codes 1-4), ECN, CIPSTATUS_STATES,
CIUPDATE_STAGES, CWLAP_MASK_BITS / CWLAP_MASK_ALL.
"""
from __future__ import annotations

from typing import Any, Iterable, List, Optional, Type, TypeVar, overload

from . import records
from .commands import ALIASES, COMMANDS, DOC_TYPOS, LEGACY, MAX_SEND
from .grammar import FORMS, CommandSpec, Request, RequestError, UnknownCommand, quote, tokenize
from .messages import (MESSAGES, PEM_LABELS, PEM_MARKERS, PEM_MAX, TRANSPARENT_ESCAPE, PemError, pem_blocks, format_ipd, format_message, format_smartconfig,
                       format_subscription, parse_message, parse_request, parse_smartconfig, pem_upload, redact, Redactor, payload_for)
from .records import (CIPSTATUS_STATES, CIUPDATE_STAGES, CWJAP_ERRORS, CWLAP_MASK_ALL, CWLAP_MASK_BITS, ECN)
from .lines import ResponseError, lines_of

__all__ = [
    "COMMANDS", "ALIASES", "MAX_SEND", "request", "DOC_TYPOS", "LEGACY", "FORMS", "CommandSpec", "Request", "RequestError", "UnknownCommand",
    "ResponseError", "parse_request", "parse_response", "format_response", "format_ipd", "redact", "Redactor",
    "format_smartconfig", "parse_smartconfig", "format_subscription",
    "format_message", "parse_message", "MESSAGES", "pem_upload", "PEM_MARKERS", "PEM_LABELS", "PEM_MAX", "PemError", "pem_blocks", "payload_for", "TRANSPARENT_ESCAPE", "quote", "tokenize", "lines_of", "records",
    "CWJAP_ERRORS", "ECN", "CIPSTATUS_STATES", "CIUPDATE_STAGES", "CWLAP_MASK_BITS", "CWLAP_MASK_ALL",
]


T = TypeVar("T")


@overload
def parse_response(name: str, form: str, events: Iterable[object], *, expect: Type[T], **opts: Any) -> Optional[T]: ...
@overload
def parse_response(name: str, form: str, events: Iterable[object], **opts: Any) -> object: ...


def parse_response(name: str, form: str, events: Iterable[object], *, expect: Optional[Type[T]] = None,
                   **opts: Any) -> object:
    """`COMMANDS[name].parse_response(form, events, expect=..., **opts)`."""
    if expect is None:
        return COMMANDS[name].parse_response(form, events, **opts)
    return COMMANDS[name].parse_response(form, events, expect=expect, **opts)


def request(name: str, form: str, **params: Any) -> Request:
    """`COMMANDS[name].request(form, **params)`: the only place AT text is made."""
    return COMMANDS[name].request(form, **params)


def format_response(name: str, form: str, record: object = None, **opts: Any) -> List[bytes]:
    """`COMMANDS[name].format_response(form, record, **opts)`."""
    return COMMANDS[name].format_response(form, record, **opts)
