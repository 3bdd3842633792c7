"""Request parsing and response formatting for the emulator, through `wizsock.protocol`.

Every command line goes through `wizsock.protocol.parse_request` when the codec
provides it.  The emulator's handlers work on positional arguments (the module
decides by CIPMUX whether a leading number is a link id, which a context-free
grammar cannot), so `args(req)` gives the parameters in order.

Until the codec lands (it is written concurrently), `_split` below is the
stand-in tokenizer with the same Request shape; it goes away then.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

try:  # the ONE grammar (design.md §2)
    from wizsock import protocol as _P

    _parse_request = getattr(_P, "parse_request", None)
    _format_ipd = getattr(_P, "format_ipd", None)
    _redact = getattr(_P, "redact", None)
    RequestError = getattr(_P, "RequestError", ValueError)
except ImportError:  # pragma: no cover - codec not written yet
    _P = None
    _parse_request = _format_ipd = _redact = None
    RequestError = ValueError


@dataclass
class Request:
    name: str
    form: str
    params: dict = field(default_factory=dict)
    raw: bytes = b""


def _split(line: bytes) -> Request:
    s = line.decode("latin-1")
    if not s.startswith("AT"):
        raise RequestError("not an AT command")
    body = s[2:]
    if body in ("E0", "E1"):
        return Request(body, "execute", {}, line)
    if body == "":
        return Request("", "execute", {}, line)
    if not body.startswith("+"):
        raise RequestError("bad command")
    body = body[1:]
    if body.endswith("=?"):
        return Request(body[:-2], "test", {}, line)
    if body.endswith("?") and "=" not in body:
        return Request(body[:-1], "query", {}, line)
    if "=" not in body:
        if not body.replace("_", "").isalnum():
            raise RequestError("bad command name")
        return Request(body, "execute", {}, line)
    name, rest = body.split("=", 1)
    if not name.replace("_", "").isalnum():
        raise RequestError("bad command name")
    vals: List[Any] = []
    i, n = 0, len(rest)
    while True:
        while i < n and rest[i] == " ":
            i += 1
        if i < n and rest[i] == '"':
            i += 1
            buf = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                buf.append(rest[i])
                i += 1
            if i >= n:
                raise RequestError("unterminated string")
            i += 1
            vals.append("".join(buf))
        else:
            j = i
            while j < n and rest[j] != ",":
                j += 1
            tok = rest[i:j].strip()
            if tok == "":
                vals.append(None)
            else:
                try:
                    vals.append(int(tok))
                except ValueError:
                    vals.append(tok)  # bare word (e.g. an unquoted IP)
            i = j
        while i < n and rest[i] == " ":
            i += 1
        if i >= n:
            break
        if rest[i] != ",":
            raise RequestError("junk after parameter")
        i += 1
        if i >= n:
            vals.append(None)
            break
    return Request(name, "set", {f"p{k}": v for k, v in enumerate(vals)}, line)


def parse(line: bytes):
    """Line without CR LF -> Request (raises RequestError when malformed)."""
    if _parse_request is not None:
        try:
            return _parse_request(line)
        except RequestError:
            # the codec validates against its own table; commands it does not
            # know (or forms the module accepts loosely) still reach a handler
            pass
    return _split(line)


def args(req) -> List[Any]:
    """The request's parameters in order: a leading link of None and trailing Nones dropped."""
    raw = getattr(req, "raw", None)
    if isinstance(raw, (bytes, bytearray)) and raw and b"=" in raw and not raw.endswith(b"=?"):
        # positional view of what the host actually typed (the codec's names are for hosts)
        try:
            vals = list(_split(bytes(raw)).params.values())
        except RequestError:
            vals = list(req.params.values())
    else:
        vals = list(req.params.values())
        if "link" in req.params and req.params["link"] is None:
            vals = [v for k, v in req.params.items() if k != "link"]
    while vals and vals[-1] is None:
        vals.pop()
    return vals


def format_ipd(link: Optional[int], payload: bytes, remote=None, mux: bool = True) -> bytes:
    if _format_ipd is not None:
        return _format_ipd(link, payload, remote=remote, mux=mux)
    head = b"+IPD,"
    if mux:
        head += b"%d," % link
    head += b"%d" % len(payload)
    if remote is not None:
        head += b',"%s",%d' % (remote[0].encode(), remote[1])
    return head + b":" + bytes(payload)


def redact(line: bytes) -> bytes:
    if _redact is not None:
        return _redact(line)
    if line.startswith((b"AT+CWJAP", b"AT+CWSAP", b"AT+MQTTSET", b"AT+AZSET")):
        return line.split(b"=", 1)[0] + b"=<redacted>"
    return line
