"""The building blocks of the command table: parameter types, the field
tokenizer, signatures, forms, command specs and requests.

One description serves both directions: a `Param` validates and renders a
value for the wire (host side: `CommandSpec.set(...).encode()`) and parses it
back from the wire (emulator side: `parse_request`); response shapes
(`shapes.py`) reuse the same params for the lines the module prints.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Type,
                    TypeVar, overload)

from .lines import CONTROL, ResponseError, encode_lines, lines_of

if TYPE_CHECKING:
    from .shapes import AnyShape

T = TypeVar("T")

__all__ = [
    "RequestError", "UnknownCommand", "Param", "Int", "Str", "Host", "Ip", "Mac", "Word", "Rest",
    "Sig", "Form", "CommandSpec", "Request", "Field", "tokenize", "quote", "FORMS",
]

FORMS = ("test", "query", "set", "execute")

_CONTROL = CONTROL   # (the name this module's neighbours import)


class RequestError(ValueError):
    """A command line (or a parameter for one) that the grammar refuses."""

    #: how far `Sig.parse` got before this error: the error of the signature that
    #: fitted furthest is the one reported
    depth: int = 99


class UnknownCommand(RequestError):
    """`parse_request` met a command name that is not in the table."""


# ----------------------------------------------------------------------------
# quoting and tokenizing

def quote(text: str) -> str:
    """Quote a string parameter, escaping `\\`, `"` and `,` with a backslash (spec 3.2.3 note)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace(",", "\\,") + '"'


@dataclass(frozen=True)
class Field:
    """One comma-separated field of a parameter list as it was on the wire."""
    text: str            # unescaped content (quoted) or stripped text (bare)
    quoted: bool
    start: int = 0       # span of the raw field in the tokenized string
    end: int = 0


def tokenize(s: str) -> List[Field]:
    """Split a parameter list into fields.

    Quoted fields honour backslash escapes and may contain unescaped commas
    (the spec's own examples, e.g. `"ab\\\\,c"` in 3.2.3, rely on that); spaces
    around fields are tolerated (`"WIZNETSZ", "", 12` in 3.2.6).
    Raises RequestError on an unterminated quote or text after a closing quote.
    """
    fields: List[Field] = []
    i, n = 0, len(s)
    if n == 0:
        return fields
    while True:
        while i < n and s[i] == " ":
            i += 1
        start = i
        if i < n and s[i] == '"':
            i += 1
            buf = []
            while True:
                if i >= n:
                    raise RequestError(f"unterminated quoted string in {s!r}")
                c = s[i]
                if c == "\\":
                    if i + 1 >= n:
                        raise RequestError(f"dangling backslash in {s!r}")
                    buf.append(s[i + 1])
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                buf.append(c)
                i += 1
            end = i
            while i < n and s[i] == " ":
                i += 1
            if i < n and s[i] != ",":
                raise RequestError(f"unexpected text after a quoted string in {s!r}")
            fields.append(Field("".join(buf), True, start, end))
        else:
            j = s.find(",", i)
            if j < 0:
                j = n
            fields.append(Field(s[i:j].strip(" "), False, start, j))
            i = j
        if i >= n:
            return fields
        i += 1  # the comma
        if i >= n:
            fields.append(Field("", False, i, i))
            return fields


# ----------------------------------------------------------------------------
# parameter types

class Param:
    """A positional parameter (or response field).

    name      the keyword of `CommandSpec.set(...)` and of the record field
    optional  may be omitted (only at the tail: "to use X, Y must be set first")
    blank     what to write in place of an omitted optional parameter when a
              later one is given (CWLAP's `""` for the MAC, spec 3.2.6 Example2)
    secret    masked by `redact`
    quoted    strings: written in double quotes
    """
    kind = "param"

    def __init__(self, name: str, *, optional: bool = False, blank: Optional[str] = None,
                 secret: bool = False, doc: str = ""):
        self.name = name
        self.optional = optional
        self.blank = blank
        self.secret = secret
        self.doc = doc

    def err(self, msg: str) -> RequestError:
        return RequestError(f"parameter {self.name!r}: {msg}")

    # validate a Python value; return the normalised value
    def check(self, value: object) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    # the wire text of a checked value
    def render(self, value: Any) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    # the value of a wire field; strict: as a request must look; else tolerant (responses)
    def parse(self, f: Field, strict: bool = True) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class Int(Param):
    kind = "int"

    def __init__(self, name: str, lo: Optional[int] = None, hi: Optional[int] = None, *,
                 choices: Optional[Sequence[int]] = None, **kw: Any):
        super().__init__(name, **kw)
        self.lo, self.hi = lo, hi
        self.choices = tuple(choices) if choices is not None else None

    def check(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.err(f"expected an int, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise self.err(f"{value} is not one of {', '.join(map(str, self.choices))}")
        if self.lo is not None and value < self.lo:
            raise self.err(f"{value} is below the minimum {self.lo}")
        if self.hi is not None and value > self.hi:
            raise self.err(f"{value} is above the maximum {self.hi}")
        return value

    def render(self, value: int) -> str:
        return str(int(value))

    def parse(self, f: Field, strict: bool = True) -> int:
        text = f.text
        if f.quoted and strict:
            raise self.err(f"expected a number, got a string {text!r}")
        if not strict:
            # tolerate the spec's "+CIUPDATE:<1>" (3.3.21 Example) and stray spaces
            text = text.strip(" <>")
        if not re.fullmatch(r"-?[0-9]{1,10}", text):
            raise self.err(f"expected a number, got {f.text!r}")
        value = int(text)
        return self.check(value) if strict else value


class Str(Param):
    """A string parameter: quoted and escaped on the wire.

    max_len/min_len count UTF-8 bytes (the spec's "MAX: 32 bytes").
    pattern, if given, is a regex the whole value must match.
    """
    kind = "str"

    def __init__(self, name: str, max_len: Optional[int] = None, min_len: int = 0, *,
                 pattern: Optional[str] = None, choices: Optional[Sequence[str]] = None,
                 quoted: bool = True, what: str = "", **kw: Any):
        super().__init__(name, **kw)
        self.max_len, self.min_len = max_len, min_len
        self.pattern = re.compile(pattern) if pattern else None
        self.choices = tuple(choices) if choices is not None else None
        self.quoted = quoted
        self.what = what

    def check(self, value: object) -> str:
        if not isinstance(value, str):
            raise self.err(f"expected a str, got {type(value).__name__}")
        m = _CONTROL.search(value)
        if m:
            raise self.err(f"control character {m.group()!r} (CR, LF, NUL, ...) cannot be sent")
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise self.err("not encodable as UTF-8") from None
        if self.max_len is not None and size > self.max_len:
            raise self.err(f"{size} bytes is longer than the maximum {self.max_len}")
        if size < self.min_len:
            raise self.err(f"{size} bytes is shorter than the minimum {self.min_len}")
        if self.choices is not None and value not in self.choices:
            raise self.err(f"{value!r} is not one of {', '.join(self.choices)}")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise self.err(f"{value!r} is not a valid {self.what or self.kind}")
        if not self.quoted and ("," in value or '"' in value):
            raise self.err(f"{value!r} cannot be written unquoted")
        return value

    def render(self, value: str) -> str:
        return quote(value) if self.quoted else value

    def parse(self, f: Field, strict: bool = True) -> str:
        if strict and self.quoted and not f.quoted:
            raise self.err(f"expected a quoted string, got {f.text!r}")
        return self.check(f.text) if strict else f.text


_IPV4 = r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"


class Ip(Str):
    kind = "ip"

    def __init__(self, name: str, **kw: Any):
        kw.setdefault("what", "IPv4 address")
        super().__init__(name, 15, 7, pattern=_IPV4, **kw)


class Host(Str):
    """An IP address or a domain name (at most 64 bytes unless told)."""
    kind = "host"

    def __init__(self, name: str, max_len: int = 64, **kw: Any):
        kw.setdefault("what", "host name or IP address")
        super().__init__(name, max_len, 1, pattern=r"[A-Za-z0-9_.\-]+", **kw)


class Mac(Str):
    kind = "mac"

    def __init__(self, name: str, unicast: bool = False, **kw: Any):
        kw.setdefault("what", "MAC address")
        super().__init__(name, 17, 17, pattern=r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}", **kw)
        self.unicast = unicast

    def check(self, value: object) -> str:
        mac = super().check(value)
        if self.unicast and int(mac[:2], 16) & 1:
            # spec 3.2.16: "Bit 0 of the WizFi360 MAC address CANNOT be 1"
            raise self.err(f"{mac}: bit 0 of the first octet must be 0")
        return mac


class Word(Str):
    """An unquoted keyword from a fixed set (TRUE/FALSE, APIP, ...)."""
    kind = "word"

    def __init__(self, name: str, choices: Sequence[str], **kw: Any):
        super().__init__(name, choices=choices, quoted=False, **kw)


class Bool(Param):
    """TRUE/FALSE on the wire (CIPDINFO query, CIPCHECKSEQ)."""
    kind = "bool"

    def check(self, value: object) -> bool:
        if not isinstance(value, bool):
            raise self.err(f"expected a bool, got {value!r}")
        return value

    def render(self, value: bool) -> str:
        return "TRUE" if value else "FALSE"

    def parse(self, f: Field, strict: bool = True) -> bool:
        t = f.text.strip().upper()
        if t not in ("TRUE", "FALSE"):
            raise self.err(f"expected TRUE or FALSE, got {f.text!r}")
        return t == "TRUE"


class Rest(Str):
    """Everything up to the end of the line, unquoted (SNTP time, hostname)."""
    kind = "rest"

    def __init__(self, name: str, **kw: Any):
        super().__init__(name, quoted=False, **kw)

    def check(self, value: object) -> str:
        if not isinstance(value, str):
            raise self.err(f"expected a str, got {type(value).__name__}")
        m = _CONTROL.search(value)
        if m:
            raise self.err(f"control character {m.group()!r} cannot be sent")
        return value


# ----------------------------------------------------------------------------
# signatures, forms, specs

@dataclass(frozen=True)
class Sig:
    """One parameter list of a form.

    when      {param: allowed values} that select this signature (CIPSTART TCP vs UDP)
    together  groups of optional params that are given all or none
    """
    params: Tuple[Param, ...]
    when: Mapping[str, Tuple[Any, ...]] = field(default_factory=dict)
    together: Tuple[Tuple[str, ...], ...] = ()

    @property
    def names(self) -> Tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def applies(self, values: Mapping[str, Any]) -> bool:
        return all(values.get(k) in allowed for k, allowed in self.when.items())

    def validate(self, values: Mapping[str, Any]) -> Dict[str, Any]:
        """Check every given value; return {name: value or None} for this signature."""
        out: Dict[str, Any] = {}
        for p in self.params:
            v = values.get(p.name)
            if v is None:
                if not p.optional:
                    raise p.err("missing")
                out[p.name] = None
            else:
                out[p.name] = p.check(v)
        for group in self.together:
            given = [n for n in group if out.get(n) is not None]
            if given and len(given) != len(group):
                missing = [n for n in group if out.get(n) is None]
                raise RequestError(f"parameter {missing[0]!r}: must be given together with {', '.join(given)}")
        return out

    def render(self, values: Mapping[str, Any]) -> str:
        """The comma-joined wire text of validated values (trailing omitted params dropped)."""
        last = -1
        for i, p in enumerate(self.params):
            if values.get(p.name) is not None:
                last = i
        parts = []
        for i, p in enumerate(self.params[: last + 1]):
            v = values.get(p.name)
            if v is None:
                if p.blank is None:
                    later = next(q.name for q in self.params[i + 1:] if values.get(q.name) is not None)
                    raise RequestError(f"parameter {later!r}: to use it, {p.name!r} must be set first")
                parts.append(p.blank)
            else:
                parts.append(p.render(v))
        return ",".join(parts)

    def parse(self, fields: Sequence[Field], strict: bool = True) -> Dict[str, Any]:
        if len(fields) > len(self.params):
            e = RequestError(f"too many parameters ({len(fields)} > {len(self.params)})")
            e.depth = -1
            raise e
        values: Dict[str, Any] = {}
        depth = 0   # how far the fields fitted, to report the error of the closest signature
        try:
            for p, f in zip(self.params, fields):
                if p.blank is not None and f.quoted == p.blank.startswith('"') and f.text == p.blank.strip('"'):
                    values[p.name] = None
                else:
                    values[p.name] = p.parse(f, strict)
                depth += 1
            for p in self.params[len(fields):]:
                if not p.optional:
                    raise p.err("missing")
                values[p.name] = None
            depth += 1
            if strict:
                if not self.applies(values):
                    depth = -1   # another signature's selector (CIPSTART "UDP" vs "TCP")
                    raise RequestError(f"parameters do not match {dict(self.when)}")
                values = self.validate(values)
        except RequestError as e:
            e.depth = depth
            raise
        return values


@dataclass(frozen=True)
class Form:
    """A form of a command: its signatures (empty for no parameters) and its response shape.

    empty   the form that a call with every parameter None turns into
            (CIPCLOSE: set(link=None) -> execute, i.e. plain `AT+CIPCLOSE`)
    check   cross-parameter rule on the validated values (raises RequestError)
    """
    sigs: Tuple[Sig, ...] = ()
    response: Optional[AnyShape] = None
    empty: Optional[str] = None
    check: Optional[Callable[[Dict[str, Any]], None]] = None

    @cached_property
    def names(self) -> Tuple[str, ...]:
        """Every parameter name of the form's signatures, in wire order (`link` first)."""
        seen: Dict[str, None] = {}
        for s in sorted(self.sigs, key=lambda s: "link" not in s.names):
            for n in s.names:
                seen.setdefault(n, None)
        return tuple(seen)


class CommandSpec:
    """The description of one AT command (one table entry).

    `name` is the command after `AT+` ("" for plain AT, "E0"/"E1" for ATE0/1).
    """

    def __init__(self, name: str, forms: Mapping[str, Form], *, section: str = "", doc: str = "",
                 aliases: Sequence[str] = (), twin: Optional[str] = None, bare: bool = False,
                 legacy: bool = False):
        self.name = name
        self.forms: Dict[str, Form] = dict(forms)
        self.section = section
        self.doc = doc
        self.aliases = tuple(aliases)
        self.twin = twin      # the _CUR/_DEF sibling
        self.bare = bare      # ATE0 / ATE1 / AT: no "+"
        self.since: Tuple[int, ...] = (1, 0, 1, 0)   # first firmware with it (spec 4)
        self.legacy = legacy  # a deprecated ESP8266-AT-1.x bare form (commands.LEGACY)

    def available(self, version: Optional[Sequence[int]]) -> bool:
        """Whether firmware `version` (e.g. VersionInfo.version) has this command; unknown: True."""
        return version is None or tuple(version) >= self.since

    def __repr__(self) -> str:
        return f"<CommandSpec AT{'' if self.bare else '+'}{self.name} {sorted(self.forms)}>"

    @property
    def prefix(self) -> str:
        return "AT" + self.name if self.bare else "AT+" + self.name

    def _form(self, form: str) -> Form:
        try:
            return self.forms[form]
        except KeyError:
            raise RequestError(f"AT+{self.name} has no {form} form") from None

    def _build(self, form: str, kw: Dict[str, Any]) -> "Request":
        f = self._form(form)
        known = f.names
        for k in kw:
            if k not in known:
                raise TypeError(f"AT+{self.name} {form}: unexpected parameter {k!r} (takes {', '.join(known) or 'none'})")
        if f.empty is not None and all(v is None for v in kw.values()):
            return self._build(f.empty, {})
        if not f.sigs:
            return Request(self.name, form, {}, self)
        given = {k for k, v in kw.items() if v is not None}
        candidates = [s for s in f.sigs if given <= set(s.names)]
        if not candidates:
            raise RequestError(f"AT+{self.name}: no {form} form takes {', '.join(sorted(given))} together")
        first_error: Optional[RequestError] = None
        for s in candidates:
            try:
                values = s.validate(kw)
                if not s.applies(values):
                    continue
                s.render(values)  # order rule ("to use X, Y must be set first")
                if f.check:
                    f.check(values)
            except RequestError as e:
                first_error = first_error or e
                continue
            params = dict.fromkeys(known)
            params.update(values)
            return Request(self.name, form, params, self, s)
        if first_error is None:
            first_error = RequestError(f"AT+{self.name}: no {form} signature matches {kw!r}")
        raise first_error

    def set(self, **kw: Any) -> "Request":
        return self._build("set", kw)

    def execute(self, **kw: Any) -> "Request":
        return self._build("execute", kw)

    def query(self) -> "Request":
        return self._build("query", {})

    def test(self) -> "Request":
        return self._build("test", {})

    def request(self, form: str, **kw: Any) -> "Request":
        return self._build(form, kw)

    # -- emulator side: the parameter text after "=" -> Request
    def parse_args(self, form: str, text: str, mux: Optional[bool] = None) -> "Request":
        """`text` (the parameters after "=") -> Request.

        mux: the module's AT+CIPMUX state, if known: True keeps only the `link=`
        signatures of a multi-connection command, False only the others.
        """
        f = self._form(form)
        fields = tokenize(text) if form == "set" else []
        if form != "set" or not f.sigs:
            return Request(self.name, form, {}, self)
        sigs = f.sigs
        if mux is not None and any("link" in s.names for s in sigs):
            sigs = tuple(s for s in sigs if ("link" in s.names) == bool(mux))
        first_error: Optional[RequestError] = None
        for s in sigs:
            try:
                values = s.parse(fields)
                if f.check:
                    f.check(values)
            except RequestError as e:
                if first_error is None or e.depth > first_error.depth:
                    first_error = e
                continue
            params = dict.fromkeys(f.names)
            params.update(values)
            return Request(self.name, form, params, self, s)
        if first_error is None:
            first_error = RequestError("no signature for this connection mode")
        raise RequestError(f"AT+{self.name}={text}: {first_error}")

    # -- responses (shapes.py)
    @overload
    def parse_response(self, form: str, events: Iterable[object], *, expect: Type[T], **opts: Any) -> Optional[T]: ...
    @overload
    def parse_response(self, form: str, events: Iterable[object], **opts: Any) -> object: ...

    def parse_response(self, form: str, events: Iterable[object], *, expect: Optional[Type[T]] = None,
                       **opts: Any) -> object:
        """Framer events (Info/Text, or plain str/bytes lines) before the final result -> record or None.

        expect: the record type the caller reads (`records.BufferStatus`, ...); the
        result is then typed as that record for a checker, and a record of another
        type raises ResponseError instead of reaching code that reads its fields.
        """
        shape = self._form(form).response
        if shape is None:
            return None
        record = shape.parse(lines_of(events), self._ctx(opts))
        if expect is not None and record is not None and not isinstance(record, expect):
            raise ResponseError(f"AT+{self.name} {form}: the response is a {type(record).__name__}, "
                                f"not a {expect.__name__}")
        return record

    def format_response(self, form: str, record: object = None, **opts: Any) -> List[bytes]:
        """A record -> the lines (bytes, no CR LF) the module prints before the final result."""
        shape = self._form(form).response
        if shape is None:
            if record is not None:
                raise ValueError(f"AT+{self.name} {form} has no response record")
            return []
        return encode_lines(shape.format(record, self._ctx(opts)))

    def _ctx(self, opts: Dict[str, Any]) -> Dict[str, Any]:
        ctx = dict(opts)
        # "+CWJAP:" for either twin, as ESP firmware prints; a legacy bare form's twin is its _DEF
        base = self.name[:-4] if self.name.endswith(("_CUR", "_DEF")) else None
        ctx["names"] = tuple(n for n in (self.name, self.twin, base, *self.aliases) if n)
        ctx["name"] = self.name
        return ctx


@dataclass(frozen=True)
class Request:
    """One command: `name`, `form` and `params` ({name: value or None})."""
    name: str
    form: str
    params: Dict[str, Any]
    spec: Optional[CommandSpec] = field(default=None, compare=False, repr=False)
    sig: Optional[Sig] = field(default=None, compare=False, repr=False)

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def get(self, key: str, default: Any = None) -> Any:
        v = self.params.get(key)
        return default if v is None else v

    @property
    def link(self) -> Optional[int]:
        return self.params.get("link")

    @property
    def args(self) -> Tuple[Any, ...]:
        """The parameter values in wire order of the signature used (trailing omitted ones dropped)."""
        if self.sig is None:
            return ()
        values = [self.params.get(n) for n in self.sig.names]
        while values and values[-1] is None:
            values.pop()
        return tuple(values)

    def text(self) -> str:
        prefix = self.spec.prefix if self.spec else "AT+" + self.name
        if self.form == "test":
            return prefix + "=?"
        if self.form == "query":
            return prefix + "?"
        if self.form == "execute":
            return prefix
        assert self.sig is not None
        return prefix + "=" + self.sig.render(self.params)

    def encode(self) -> bytes:
        """The command line as sent: `AT+...` and CR LF."""
        line = self.text()
        m = _CONTROL.search(line)
        if m:  # unreachable through the builders; belt and braces against hand-made Requests
            raise RequestError(f"control character {m.group()!r} in {line!r}")
        return line.encode("utf-8") + b"\r\n"

    @overload
    def parse_response(self, events: Iterable[object], *, expect: Type[T], **opts: Any) -> Optional[T]: ...
    @overload
    def parse_response(self, events: Iterable[object], **opts: Any) -> object: ...

    def parse_response(self, events: Iterable[object], *, expect: Optional[Type[T]] = None,
                       **opts: Any) -> object:
        assert self.spec is not None
        if expect is None:
            return self.spec.parse_response(self.form, events, **opts)
        return self.spec.parse_response(self.form, events, expect=expect, **opts)

    def format_response(self, record: object = None, **opts: Any) -> List[bytes]:
        assert self.spec is not None
        return self.spec.format_response(self.form, record, **opts)
