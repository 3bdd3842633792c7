#!/usr/bin/env python3
"""Fuzz harness for the codec (wizsock.protocol), the host's and the emulator's one grammar.

One input picks a mode (fuzz/_reader.py decodes it) and checks properties, not
only "does not crash":

* request: ``parse_request`` on any line either returns a Request or raises
  ``RequestError``; a parsed request encodes to exactly one CR LF ended line
  (nothing smuggled), and that line parses back to the same request.
* redact: ``redact`` never raises on any line and any ``command``; a line whose
  request holds a secret (password, key) must not parse back to the same secret
  after ``redact``; and ``redact``'s output does not depend on the secret's
  value (two canaries in, the same line out), for requests and for the
  response lines formatted from a record that holds one.
* response: each command spec's ``parse_response`` on framer events made from
  the input either returns a record (or None) or raises a ``ValueError``
  (``ResponseError``/``RequestError``); a
  record formats to lines (``format_response``) that parse back to the same
  record.
* messages: ``format_ipd`` and ``format_subscription`` round-trip through the
  framer; ``parse_message`` / ``parse_smartconfig`` take any event.
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Any, List, Optional

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from _reader import Reader  # type: ignore[no-redef]
else:
    from ._reader import Reader

P: Any
Framer: Any
astuple: Any


def _imports() -> None:
    from wizsock import framer, protocol
    globals().update(P=protocol, Framer=framer.Framer, astuple=framer.astuple)


if __name__ == "__main__":
    # Only the codec is instrumented for coverage: instrumenting the framer that
    # makes its events, or the standard library (re, dataclasses), would cost
    # most of the speed for no guidance about the codec.
    import atheris
    import wizsock
    import wizsock.framer  # noqa: F401
    with atheris.instrument_imports(include=["wizsock.protocol"]):
        _imports()
else:
    _imports()

NAMES = sorted(P.COMMANDS)
CANARY_CHARS = "QZXJKVW"


def _events(data: bytes) -> List[Any]:
    return Framer().feed(data + b"\r\n")


def _secret_names(req: P.Request) -> List[str]:
    if req.sig is None:
        return []
    return [p.name for p in req.sig.params if p.secret and req.params.get(p.name) is not None]


def _canary(value: str, salt: int) -> str:
    """A value of the same length (so the same length checks pass), salted."""
    return "".join(CANARY_CHARS[(i + salt) % len(CANARY_CHARS)] for i in range(len(value)))


def _with(req: P.Request, secrets: List[str], salt: int) -> Optional[bytes]:
    params = {k: v for k, v in req.params.items() if v is not None}
    for name in secrets:
        params[name] = _canary(params[name], salt)
    try:
        return req.spec.request(req.form, **params).encode()  # type: ignore[union-attr]
    except P.RequestError:
        return None


def check_request(line: bytes, mux: Optional[bool], command: Optional[str]) -> None:
    assert isinstance(P.redact(line, command), bytes)
    try:
        req = P.parse_request(line, mux)
    except P.RequestError:
        return
    wire = req.encode()
    assert wire.endswith(b"\r\n") and b"\r" not in wire[:-2] and b"\n" not in wire[:-2], wire
    assert b"\x00" not in wire, wire
    again = P.parse_request(wire, mux)
    assert (again.name, again.form, again.params) == (req.name, req.form, req.params), (line, wire)
    secrets = _secret_names(req)
    if not secrets:
        return
    # The secret does not survive redact: the redacted line never parses to it again.
    for shown in (P.redact(line), P.redact(wire)):
        try:
            back = P.parse_request(shown, mux)
        except P.RequestError:
            continue
        for name in secrets:
            if req.params[name] != P.messages.MASK:
                assert back.params.get(name) != req.params[name], (line, shown)
    # redact's output does not depend on the secret's value.
    a, b = _with(req, secrets, 0), _with(req, secrets, 3)
    if a is not None and b is not None:
        assert P.redact(a) == P.redact(b), (a, b, P.redact(a), P.redact(b))


def _secret_fields(spec: Any, form: str, record: Any) -> List[str]:
    if not dataclasses.is_dataclass(record):
        return []
    names = {f.name for f in dataclasses.fields(record)}
    secret = set()
    for f in spec.forms.values():
        for s in f.sigs:
            secret.update(p.name for p in s.params if p.secret)
    return [n for n in secret & names if isinstance(getattr(record, n), str) and getattr(record, n)]


def check_response(name: str, form: str, data: bytes, mask: Optional[int]) -> None:
    spec = P.COMMANDS[name]
    opts = {"mask": mask} if mask is not None and name == "CWLAP" else {}
    events = _events(data)
    try:
        rec = spec.parse_response(form, events, **opts)
    except ValueError:
        # ResponseError, or RequestError for a field that fails its parameter's
        # check: both ValueErrors naming what is wrong.  Anything else is a bug.
        return
    if rec is None:
        return
    try:
        lines = spec.format_response(form, rec, **opts)
    except ValueError:
        # Parsing is lenient (the spec's typos), formatting strict: a record the
        # module could never print need not format.
        return
    for line in lines:
        assert isinstance(P.redact(line, name), bytes)
    events = _events(b"\r\n".join(lines))
    if P.lines_of(events) != [line.decode("utf-8", "surrogateescape") for line in lines]:
        # The framer reads a formatted line as another event (a bare AT+MQTTSET?
        # line whose client id holds " -> " is a subscription): the module's own
        # ambiguity, which the host cannot resolve either.  Found by this harness;
        # see docs/fuzzing.md.
        return
    rec2 = spec.parse_response(form, events, **opts)
    assert rec2 == rec, (name, form, rec, lines, rec2)
    secrets = _secret_fields(spec, form, rec)
    if secrets:
        shown = []
        for salt in (0, 3):
            r = dataclasses.replace(rec, **{n: _canary(getattr(rec, n), salt) for n in secrets})
            try:
                out = spec.format_response(form, r, **opts)
            except ValueError:
                return
            shown.append([P.redact(line, name) for line in out])
        assert shown[0] == shown[1], (name, form, shown)


def check_messages(r: Reader) -> None:
    mode = r.byte() % 4
    if mode == 0:
        link, mux = r.byte() % 6, bool(r.byte() & 1)
        remote = None
        if r.byte() & 1:
            remote = (r.take(r.byte() % 20).decode("latin-1"), r.u16() * (r.byte() % 3))
        payload = r.rest()
        try:
            wire = P.format_ipd(link, payload, remote, mux)
        except ValueError:
            return
        got = [astuple(e) for e in Framer(max_ipd=1 << 16).feed(wire)]
        want_remote = remote if remote is None else (remote[0], remote[1])
        # The framer takes only what the module can print as a remote: a dotted
        # quad and a port; format_ipd does not vet the address beyond the syntax.
        if remote is None or _plain_ip(remote[0]):
            assert got == [("Data", link if mux else 0, payload, want_remote)], (wire, got)
    elif mode == 1:
        topic = r.take(r.byte()).decode("utf-8", "surrogateescape")
        data = r.rest()
        try:
            wire = P.format_subscription(topic, data)
        except ValueError:
            return
        got = [astuple(e) for e in Framer(max_line=1 << 16).feed(wire + b"\r\n")]
        # A topic that makes the line read as something earlier in the grammar's
        # order (a "+name" line, a result code) is the module's ambiguity; a line
        # read as a subscription must carry exactly what was formatted.
        if b"\n" not in data and got and got[0][0] == "Subscription":
            assert got == [("Subscription", topic, data.rstrip(b"\r"))], (wire, got)
    elif mode == 2:
        for ev in _events(r.rest()):
            try:
                P.parse_message(ev)
            except ValueError:
                pass
    else:
        try:
            P.parse_smartconfig(_events(r.rest()))
        except ValueError:
            pass


def _plain_ip(ip: str) -> bool:
    return 0 < len(ip) <= 15 and all(c in "0123456789." for c in ip)


def run(data: bytes) -> None:
    """One fuzz input (the atheris entry point, also used by the replay tests)."""
    r = Reader(data)
    mode = r.byte() % 4
    if mode == 0:
        mux = r.pick((None, True, False))
        command = r.pick((None, None, "MQTTSET", "CWJAP_CUR", "AZSET", "CWSAP_CUR"))
        check_request(r.rest(), mux, command)
    elif mode == 1:
        name = r.pick(NAMES)
        form = r.pick(sorted(P.COMMANDS[name].forms))
        mask = r.byte() if r.byte() & 1 else None
        check_response(name, form, r.rest(), mask)
    elif mode == 2:
        check_messages(r)
    else:
        command = r.pick([None] + NAMES)
        out = P.redact(r.rest(), command)
        assert isinstance(out, bytes)


def main() -> None:
    import atheris

    atheris.Setup(sys.argv, run)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
