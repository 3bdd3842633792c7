"""Command lines at the edges of the codec's table, for tests/emulator/test_one_validator.py.

For every set signature of every command in `wizsock.protocol.COMMANDS`, a valid
baseline line and, one parameter at a time, values at and just beyond its bounds
(ranges, choices, byte lengths, patterns), values of the wrong kind, and the
optional tail cut at each length. The lines are written by hand (not with the
encoder, which refuses the bad ones), so the codec's parser and encoder are judged
by the same lines the emulator reads.

Host names are short made-up names that the test's world file maps to loopback
(and `.test` names, answered locally): nothing generated here resolves or connects
off this machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

from wizsock import protocol as P
from wizsock.protocol.grammar import Host, Int, Ip, Mac, Param, Sig, Str

from protocol.tablegen import sample

#: the commands that reset the module, put it to sleep or change the UART rate when
#: they succeed: each accepted line of theirs gets a module of its own
DISRUPTIVE = frozenset({"RST", "GSLP", "RESTORE", "UART_CUR", "UART_DEF", "UART"})

#: a value of the wrong kind, as it appears on the wire
BARE_WORD = "x"
QUOTED_NUMBER = '"1"'


@dataclass(frozen=True)
class Case:
    name: str           # command name as in the table
    line: bytes         # the command line, no CR LF
    kw: Optional[Dict[str, Any]]   # the typed values for the encoder (None: not expressible)
    why: str            # what this line probes

    def __str__(self) -> str:
        return f"{self.line!r} ({self.why})"


def host_value(n: int) -> str:
    """A host name of exactly n bytes that the test world maps to loopback."""
    return ("h" * n) if n > 0 else ""


def _baseline(p: Param, sig: Sig) -> Any:
    """The table's own sample value, but hosts on loopback and a class C address (CIPAP)."""
    if isinstance(p, Host) and p.name not in sig.when:
        return "127.0.0.1"
    if isinstance(p, Ip):
        return "192.168.4.2"
    return sample(p, sig)


def _render(p: Param, v: Any) -> str:
    if isinstance(v, _Raw):
        return v.text
    return p.render(v)


class _Raw:
    """Wire text that is no typed value (wrong kind of field)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"raw({self.text})"


def _variants(p: Param) -> Iterator[Tuple[Any, str]]:
    if isinstance(p, Int):
        vals: List[int] = []
        if p.choices:
            cs = sorted(p.choices)
            vals += [cs[0], cs[-1], cs[0] - 1, cs[-1] + 1]
            gaps = [c + 1 for c in cs if c + 1 not in cs and c + 1 < cs[-1]]
            vals += gaps[:2]
        for b in (p.lo, p.hi):
            if b is not None:
                vals += [b - 1, b, b + 1]
        if p.lo is None and p.hi is None and not p.choices:
            vals += [0, -1, 2 ** 31]
        for v in dict.fromkeys(vals):
            yield v, f"{p.name}={v}"
        yield _Raw(QUOTED_NUMBER), f"{p.name} quoted"
        yield _Raw(BARE_WORD), f"{p.name} not a number"
        yield _Raw(""), f"{p.name} empty"
        return
    assert isinstance(p, Str)
    if isinstance(p, Mac):
        for v in ("02:00:00:00:00:02", "0A:1b:2C:3d:4E:5f", "01:00:00:00:00:02", "03:00:00:00:00:02",
                  "02:00:00:00:00", "02:00:00:00:00:02:03", "02-00-00-00-00-02", "02:00:00:00:00:0g"):
            yield v, f"{p.name}={v}"
    elif isinstance(p, Ip):
        for v in ("192.168.4.2", "192.168.4.200", "191.255.255.255", "192.0.0.1", "223.255.255.254",
                  "224.0.0.1", "10.0.0.1", "0.0.0.0", "255.255.255.255", "256.1.1.1", "1.2.3", "01.2.3.4",
                  "a.b.c.d"):
            yield v, f"{p.name}={v}"
    elif isinstance(p, Host):
        for n in (1, 6, p.max_len, (p.max_len or 0) + 1):
            if n:
                yield host_value(n), f"{p.name} {n} bytes"
        for v in ("127.0.0.1", "localhost", "no.such.name.test", "h h", "h:1", "h/h"):
            yield v, f"{p.name}={v}"
    else:
        if p.choices:
            for c in p.choices:
                yield c, f"{p.name}={c}"
            yield p.choices[0].lower(), f"{p.name} lower case"
            yield "BOGUS", f"{p.name} not a choice"
        else:
            lens = {p.min_len, max(p.min_len, 1), p.min_len - 1}
            if p.max_len is not None:
                lens |= {p.max_len, p.max_len + 1}
            for n in sorted(lens):
                if n >= 0:
                    yield "a" * n, f"{p.name} {n} bytes"
            if p.max_len is not None and p.max_len >= 2:
                k = p.max_len // 2
                yield "é" * k, f"{p.name} {k} chars, {2 * k} bytes"
                yield "é" * (k + 1), f"{p.name} {k + 1} chars, {2 * k + 2} bytes"
            yield "a b,c\"d\\e", f"{p.name} with quote, comma, backslash"
            if p.pattern is not None:
                yield "a b", f"{p.name} outside its pattern"
    yield _Raw("5"), f"{p.name} not quoted"


def _line(spec: P.CommandSpec, fields: List[str]) -> bytes:
    return (spec.prefix + "=" + ",".join(fields)).encode("utf-8")


def set_cases(spec: P.CommandSpec) -> Iterator[Case]:
    form = spec.forms.get("set")
    if form is None:
        return
    for sig in form.sigs:
        base = {p.name: _baseline(p, sig) for p in sig.params}
        # optional parameters left out: the required ones alone, then the tail one more at a time
        nreq = max((i + 1 for i, p in enumerate(sig.params) if not p.optional), default=0)
        for k in range(nreq, len(sig.params) + 1):
            ps = sig.params[:k]
            yield Case(spec.name, _line(spec, [_render(p, base[p.name]) for p in ps]),
                       {p.name: base[p.name] for p in ps}, f"{k} of {len(sig.params)} parameters")
        full = [_render(p, base[p.name]) for p in sig.params]
        yield Case(spec.name, _line(spec, full + ["1"]), None, "one parameter too many")
        if nreq:
            yield Case(spec.name, _line(spec, full[: nreq - 1]), None, "one required parameter short")
        for i, p in enumerate(sig.params):
            for v, why in _variants(p):
                vals = dict(base)
                vals[p.name] = v
                fields = [_render(q, vals[q.name]) for q in sig.params]
                # a selector (CIPSTART's type) changes what the later fields are: no keywords then
                kw = None if isinstance(v, _Raw) or p.name in sig.when else vals
                yield Case(spec.name, _line(spec, fields), kw, why)


#: cross-parameter rules (the forms' `check`s, all-or-none groups) at their edges
def rule_cases() -> Iterator[Case]:
    def c(name: str, text: str, why: str) -> Case:
        return Case(name, f"AT+{name}={text}".encode("utf-8"), None, why)

    for name in ("CWSAP_CUR", "CWSAP_DEF", "CWSAP"):
        for pwd, why in (("", "open, no password"), ("1234567", "7 bytes"), ("12345678", "8 bytes"),
                         ("1" * 64, "64 bytes"), ("1" * 65, "65 bytes"), ("éééé", "4 chars, 8 bytes"),
                         ("ééééééé", "7 chars, 14 bytes")):
            for ecn in (0, 3):
                yield c(name, f'"ap",{P.quote(pwd)},1,{ecn}', f"ecn {ecn}, pwd {why}")
    for name in ("CWDHCPS_CUR", "CWDHCPS_DEF"):
        for text in ("0", "1", "0,100", "1,100", '0,100,"192.168.4.10"', '1,100,"192.168.4.10"',
                     '1,100,"192.168.4.10","192.168.4.20"', '1,100,"192.168.4.20","192.168.4.10"',
                     '1,100,"192.168.4.10","192.168.4.10"', '1,100,"192.168.5.10","192.168.5.20"',
                     '0,100,"192.168.4.10","192.168.4.20"'):
            yield c(name, text, "enable and the range")
    for name in ("CIPSTA_CUR", "CIPAP_CUR", "CIPAP_DEF", "CIPAP"):
        yield c(name, '"192.168.4.1","192.168.4.1"', "gateway without netmask")
        yield c(name, '"192.168.4.1","192.168.4.1","255.255.255.0"', "ip, gateway, netmask")
        yield c(name, '"10.0.0.1","10.0.0.254","255.255.255.0"', "class A address")
    for text in ("1", "1,8", "0", "0,8", '1,8,"127.0.0.1","127.0.0.1"', '1,8,"127.0.0.1","localhost"',
                 '1,-11', '1,13', '1,-12', '1,14'):
        yield c("CIPSNTPCFG", text, "enable needs a timezone")
    for name in ("CIPDNS_CUR", "CIPDNS_DEF"):
        for text in ('1,"8.8.8.8","8.8.8.8"', '1,"8.8.8.8","8.8.4.4"', "0", "1", '0,"8.8.8.8"'):
            yield c(name, text, "two servers differ")
    for text in ('5,"127.0.0.1"', '5,"127.0.0.1",0', '5,"127.0.0.1",1', '0,5,"127.0.0.1",1',
                 '0,5,"127.0.0.1",0'):
        yield c("CIPSEND", text, "remote and port together")
    for text in ("3", "1,3", "1,255", "1,256", "2,65535", "0,3", "4,3"):
        yield c("CWSTARTSMART", text, "type and try count")
    for text in ("0", '0,"127.0.0.1",0', '0,"127.0.0.1",1', '1,"127.0.0.1",80,"UDP",0',
                 '1,"127.0.0.1",80,"TCP",7200', '1,"127.0.0.1",80,"UDP",7200'):
        yield c("SAVETRANSLINK", text, "mode, port, type")


def all_cases() -> List[Case]:
    out: List[Case] = []
    for spec in P.COMMANDS.values():
        out.extend(set_cases(spec))
        for form in ("query", "execute"):
            text = spec.prefix + ("?" if form == "query" else "")
            if spec.bare and form == "query":
                continue
            out.append(Case(spec.name, text.encode(), {} if form in spec.forms else None, form))
    out.extend(rule_cases())
    seen = set()
    unique = []
    for case in out:
        if case.line not in seen:
            seen.add(case.line)
            unique.append(case)
    return unique


def codec_accepts(line: bytes) -> bool:
    try:
        P.parse_request(line)
        return True
    except P.RequestError:
        return False


def host_names() -> List[str]:
    """Every made-up host name the cases use (the world file maps them to loopback)."""
    names = set()
    for spec in P.COMMANDS.values():
        form = spec.forms.get("set")
        for sig in form.sigs if form else ():
            for p in sig.params:
                if isinstance(p, Host):
                    names |= {host_value(n) for n in range(1, (p.max_len or 64) + 2)}
    return sorted(names)
