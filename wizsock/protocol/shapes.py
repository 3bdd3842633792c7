"""Response shapes: how a record is printed by the module and parsed by the host.

Each shape has `parse(lines, ctx) -> record | None` and `format(record, ctx) ->
[str]`, both driven by the same parameter description (grammar.Param), so the
emulator's output and the engine's parser cannot drift apart.

`ctx` carries `name`/`names` (the command, its _CUR/_DEF twin, their base name
and aliases: the spec itself prints `+CIPSTA_CUR:` for AT+CIPSTA_DEF? in 3.2.21,
ESP-derived firmware prints `+CWJAP:<code>`, so a response head may name any of
them; formatting always writes the command's own name) and caller options (`mask=`, `sort=` for CWLAP).
"""
from __future__ import annotations

import re
from dataclasses import fields as dc_fields, is_dataclass
from typing import Any, Callable, Dict, Generic, Iterable, List, Optional, Protocol, Sequence, Tuple, Type, TypeVar, overload

from .grammar import Field, Param, Sig, tokenize
from .lines import ResponseError, encode_lines, lines_of

#: the record type a shape parses to and formats from
RecT = TypeVar("RecT")
ItemT = TypeVar("ItemT")


# `+NAME:rest`, tolerating the spec's typos: a leading "AT" (3.2.1 Example prints
# "AT+CWMODE_CUR:1"), "=" for ":" (3.2.3, 3.2.28 print "+CWJAP_CUR=..." and
# "+CWCOUNTRY_CUR=..."), and a space after "+" (3.3.5 "+ CIPSSLCONF:2").
_HEAD = re.compile(r"^(?:AT)?\+ ?([A-Z][A-Z0-9_]*) ?[:=](.*)$", re.S)


def _check_fields(record: type, names: Iterable[str], where: str) -> None:
    """A name of the table that is not a field of its record fails at import, not on the first response."""
    if not is_dataclass(record):
        raise TypeError(f"{where}: {record!r} is not a dataclass")
    unknown = sorted(set(names) - {f.name for f in dc_fields(record)})
    if unknown:
        raise TypeError(f"{where}: {record.__name__} has no field {', '.join(map(repr, unknown))}")


def _default_build(record: Type[RecT]) -> Callable[[Dict[str, Any]], RecT]:
    def build(values: Dict[str, Any]) -> RecT:
        return record(**values)
    return build


def _default_split(record: Type[RecT]) -> Callable[[RecT], Dict[str, Any]]:
    if not is_dataclass(record):
        raise TypeError(f"{record!r} is not a dataclass: give build= and split=")
    names = [f.name for f in dc_fields(record)]

    def split(rec: RecT) -> Dict[str, Any]:
        return {n: getattr(rec, n) for n in names}
    return split


class AnyShape:
    """A shape whatever its record type: what a Form holds.

    Not generic on purpose: as the context of a table entry `Shape[Any]` would
    make a checker infer every record as Any (and skip the build/split lambdas).
    """

    def parse(self, lines: List[str], ctx: Dict[str, Any]) -> object:  # pragma: no cover
        raise NotImplementedError

    def format(self, record: Any, ctx: Dict[str, Any]) -> List[str]:  # pragma: no cover
        raise NotImplementedError


class Shape(AnyShape, Generic[RecT]):
    def parse(self, lines: List[str], ctx: Dict[str, Any]) -> Optional[RecT]:  # pragma: no cover
        raise NotImplementedError

    def format(self, record: Optional[RecT], ctx: Dict[str, Any]) -> List[str]:  # pragma: no cover
        raise NotImplementedError


class Fields(Shape[RecT]):
    """One line of comma-separated fields.

    head    "+": `+<command>:` (any of ctx names); a literal like "STATUS" for `STATUS:`;
            None: a bare line (a `+<command>:` head is tolerated too)
    params  the fields, as grammar params (optional ones at the tail)
    record  a dataclass (fields = param names), or build/split functions
    paren   fields wrapped in parentheses (`+CWLAP:(...)`)
    fixed   extra record values not on the wire
    optional  parse returns None when no line matches instead of raising
    """

    def __init__(self, params: Sequence[Param], record: Optional[Type[RecT]] = None, *, head: Optional[str] = "+",
                 paren: bool = False, optional: bool = False, fixed: Optional[Dict[str, Any]] = None,
                 build: Optional[Callable[[Dict[str, Any]], RecT]] = None,
                 split: Optional[Callable[[RecT], Dict[str, Any]]] = None):
        self.sig = Sig(tuple(params))
        self.head = head
        self.paren = paren
        self.optional = optional
        self.fixed = dict(fixed or {})
        self.record = record
        if record is not None and (build is None or split is None):
            _check_fields(record, [p.name for p in params] + list(self.fixed), f"Fields{self.sig.names}")
        if build is None:
            build = _default_build(record) if record is not None else (lambda v: v[params[0].name])
        if split is None:
            split = _default_split(record) if record is not None else (lambda r: {params[0].name: r})
        self.build, self.split = build, split

    def params_for(self, ctx: Dict[str, Any]) -> Sig:
        return self.sig

    # -- matching a line's head
    def body(self, line: str, ctx: Dict[str, Any]) -> Optional[str]:
        if self.head == "+" or self.head is None:
            m = _HEAD.match(line)
            if m and m.group(1) in ctx["names"]:
                return m.group(2)
            return None if self.head == "+" else line
        lead = self.head + ":"
        return line[len(lead):] if line.startswith(lead) else None

    def values(self, body: str, ctx: Dict[str, Any]) -> Dict[str, Any]:
        sig = self.params_for(ctx)
        text = body.strip(" ")
        if self.paren:
            if not (text.startswith("(") and text.endswith(")")):
                raise ResponseError(f"expected (...), got {body!r}")
            text = text[1:-1]
        if len(sig.params) == 1 and sig.params[0].kind == "rest":
            return {sig.params[0].name: sig.params[0].parse(_whole(body), strict=False)}
        values = sig.parse(tokenize(text), strict=False)
        values.update(self.fixed)
        return values

    def parse_line(self, line: str, ctx: Dict[str, Any]) -> RecT:
        """The record of one line, or raise ResponseError/ValueError if it does not fit."""
        body = self.body(line, ctx)
        if body is None:
            raise ResponseError(f"not a {self.head or 'bare'} line: {line!r}")
        return self.build(self.values(body, ctx))

    def parse(self, lines: List[str], ctx: Dict[str, Any]) -> Optional[RecT]:
        for line in lines:
            try:
                return self.parse_line(line, ctx)
            except ValueError:
                continue
        if self.optional:
            return None
        raise ResponseError(f"AT+{ctx['name']}: no response line of the expected shape in {lines!r}")

    def format_line(self, record: RecT, ctx: Dict[str, Any]) -> str:
        values = self.split(record)
        sig = self.params_for(ctx)
        checked = {p.name: (None if values.get(p.name) is None else p.check(values[p.name])) for p in sig.params}
        missing = [p.name for p in sig.params if not p.optional and checked[p.name] is None]
        if missing:
            raise ResponseError(f"AT+{ctx['name']}: record field {missing[0]!r} is missing")
        text = sig.render(checked)
        if self.paren:
            text = "(" + text + ")"
        if self.head == "+":
            return "+" + str(ctx["name"]) + ":" + text
        if self.head is None:
            return text
        return self.head + ":" + text

    def format(self, record: Optional[RecT], ctx: Dict[str, Any]) -> List[str]:
        if record is None:
            if self.optional:
                return []
            raise ResponseError(f"AT+{ctx['name']}: a record is required")
        return [self.format_line(record, ctx)]


def _whole(text: str) -> Field:
    return Field(text[1:] if text.startswith(" ") else text, False)


class Repeat(Shape[RecT], Generic[ItemT, RecT]):
    """Zero or more lines of one shape -> a tuple (or record(**{attr: tuple}))."""

    @overload
    def __init__(self: Repeat[ItemT, Tuple[ItemT, ...]], line: Fields[ItemT]) -> None: ...
    @overload
    def __init__(self: Repeat[Any, RecT], line: Fields[Any], record: Type[RecT], attr: str) -> None: ...

    def __init__(self, line: Fields[ItemT], record: Optional[Type[RecT]] = None, attr: Optional[str] = None):
        if (record is None) != (attr is None):
            raise TypeError("Repeat: record and attr go together")
        if record is not None and attr is not None:
            _check_fields(record, [attr], "Repeat")
        self.line, self.record, self.attr = line, record, attr

    def items(self, lines: List[str], ctx: Dict[str, Any]) -> Tuple[ItemT, ...]:
        out: List[ItemT] = []
        for line in lines:
            try:
                out.append(self.line.parse_line(line, ctx))
            except ValueError:
                continue
        return tuple(out)

    def parse(self, lines: List[str], ctx: Dict[str, Any]) -> Optional[RecT]:
        items = self.items(lines, ctx)
        if self.record is not None and self.attr is not None:
            return self.record(**{self.attr: items})
        return items  # type: ignore[return-value]  # RecT is Tuple[ItemT, ...] (first __init__ overload)

    def format(self, record: Optional[RecT], ctx: Dict[str, Any]) -> List[str]:
        items: Optional[Iterable[ItemT]]
        if self.record is not None and self.attr is not None:
            items = getattr(record, self.attr)
        else:
            items = record  # type: ignore[assignment]  # RecT is Tuple[ItemT, ...] (first __init__ overload)
        return [self.line.format_line(item, ctx) for item in (items or ())]


class MaskedFields(Fields[RecT]):
    """A line whose fields are chosen by a bit mask in ctx `mask` (AT+CWLAPOPT):
    hidden fields are neither printed nor expected, and are None in the record."""

    def __init__(self, params: Sequence[Param], record: Type[RecT], *, bits: Dict[str, int], default_mask: int,
                 **kw: Any):
        super().__init__(params, record, **kw)
        self.bits, self.default_mask = bits, default_mask
        self._sigs: Dict[int, Sig] = {}

    def params_for(self, ctx: Dict[str, Any]) -> Sig:
        given: Optional[int] = ctx.get("mask")
        mask = self.default_mask if given is None else given
        sig = self._sigs.get(mask)
        if sig is None:
            params = tuple(p for p in self.sig.params if mask >> self.bits[p.name] & 1)
            sig = self._sigs[mask] = Sig(params)
        return sig


class _HasRssi(Protocol):
    @property
    def rssi(self) -> Optional[int]: ...


RssiT = TypeVar("RssiT", bound=_HasRssi)


class ApList(Repeat[RssiT, Tuple[RssiT, ...]]):
    """AT+CWLAP: `+CWLAP:(<ecn>,<ssid>,<rssi>,<mac>,<channel>,<wps>)` lines;
    ctx `sort=True` (AT+CWLAPOPT sort_enable) orders them by RSSI, strongest first."""

    def __init__(self, line: Fields[RssiT]):
        super().__init__(line)

    def format(self, record: Optional[Tuple[RssiT, ...]], ctx: Dict[str, Any]) -> List[str]:
        items = list(record or ())
        if ctx.get("sort"):
            items.sort(key=lambda ap: -(ap.rssi if ap.rssi is not None else -1000))
        return super().format(tuple(items), ctx)


class Keyed(Shape[RecT]):
    """Lines `<head><key><sep><value>`, one per record field (CIPSTA, CIFSR, GMR)."""

    def __init__(self, keys: Sequence[Tuple[str, Param]], record: Type[RecT], *, sep: str, head: Optional[str] = "+"):
        self.keys = tuple(keys)
        _check_fields(record, [p.name for _, p in self.keys], "Keyed")
        self.record, self.sep = record, sep
        self.line: Fields[None] = Fields((), head=head)

    def parse(self, lines: List[str], ctx: Dict[str, Any]) -> Optional[RecT]:
        values: Dict[str, Any] = {}
        for line in lines:
            body = self.line.body(line, ctx)
            if body is None:
                continue
            for key, p in self.keys:
                lead = key + self.sep
                if body.startswith(lead):
                    rest = body[len(lead):]
                    if p.kind == "rest":
                        values[p.name] = rest
                    else:
                        fs = tokenize(rest)
                        if len(fs) == 1:
                            values[p.name] = p.parse(fs[0], strict=False)
                    break
        if not values:
            return None
        try:
            return self.record(**values)
        except TypeError as e:
            raise ResponseError(f"AT+{ctx['name']}: incomplete response {lines!r}: {e}") from None

    def format(self, record: Optional[RecT], ctx: Dict[str, Any]) -> List[str]:
        if record is None:
            return []
        out: List[str] = []
        for key, p in self.keys:
            v = getattr(record, p.name)
            if v is None:
                continue
            text = key + self.sep + p.render(p.check(v))
            out.append(("+" + str(ctx["name"]) + ":" + text) if self.line.head == "+" else text)
        return out


class Group(Shape[RecT]):
    """Several shapes over the same lines, each filling one record field (CIPSTATUS)."""

    def __init__(self, record: Type[RecT], **parts: AnyShape):
        _check_fields(record, parts, "Group")
        self.record, self.parts = record, parts

    def parse(self, lines: List[str], ctx: Dict[str, Any]) -> Optional[RecT]:
        return self.record(**{attr: shape.parse(lines, ctx) for attr, shape in self.parts.items()})

    def format(self, record: Optional[RecT], ctx: Dict[str, Any]) -> List[str]:
        out: List[str] = []
        for attr, shape in self.parts.items():
            out += shape.format(getattr(record, attr), ctx)
        return out


class Alt(Shape[RecT]):
    """The first of several line shapes that fits (CIPCHECKSEQ single vs multiple)."""

    def __init__(self, *shapes: Fields[RecT]):
        self.shapes = shapes

    def parse(self, lines: List[str], ctx: Dict[str, Any]) -> Optional[RecT]:
        for line in lines:
            for s in self.shapes:
                try:
                    return s.parse_line(line, ctx)
                except ValueError:
                    continue
        raise ResponseError(f"AT+{ctx['name']}: no response line of the expected shape in {lines!r}")

    def format(self, record: Optional[RecT], ctx: Dict[str, Any]) -> List[str]:
        err: Optional[Exception] = None
        for s in self.shapes:
            try:
                if any(record_get(record, k) != v for k, v in s.fixed.items()):
                    continue
                return s.format(record, ctx)
            except ValueError as e:
                err = err or e
        raise err or ResponseError(f"AT+{ctx['name']}: cannot format {record!r}")


def record_get(record: object, name: str) -> Any:
    return getattr(record, name, None)


class _HasText(Protocol):
    @property
    def text(self) -> str: ...


TextT = TypeVar("TextT", bound=_HasText)


class Lines(Shape[TextT]):
    """Free text lines joined by \\n into record(text) (PEM certificates and keys)."""

    def __init__(self, record: Callable[[str], TextT]):
        self.record = record

    def parse(self, lines: List[str], ctx: Dict[str, Any]) -> Optional[TextT]:
        return self.record("\n".join(lines)) if lines else None

    def format(self, record: Optional[TextT], ctx: Dict[str, Any]) -> List[str]:
        return [] if record is None else [l for l in record.text.split("\n") if l]


class Flag(Shape[RecT]):
    """A fixed line whose presence is a bool field (`wps started`)."""

    def __init__(self, text: str, record: Type[RecT], attr: str):
        _check_fields(record, [attr], "Flag")
        self.text, self.record, self.attr = text, record, attr

    def parse(self, lines: List[str], ctx: Dict[str, Any]) -> Optional[RecT]:
        return self.record(**{self.attr: any(l.strip().lower() == self.text for l in lines)})

    def format(self, record: Optional[RecT], ctx: Dict[str, Any]) -> List[str]:
        return [self.text] if record is not None and getattr(record, self.attr) else []


class Fixed(Shape[None]):
    """Fixed lines printed before the final result (`CONNECT` of MQTTCON); no record."""

    def __init__(self, *lines: str):
        self.lines = lines

    def parse(self, lines: List[str], ctx: Dict[str, Any]) -> None:
        return None

    def format(self, record: None, ctx: Dict[str, Any]) -> List[str]:
        return list(self.lines)


class _HasTimeMs(Protocol):
    @property
    def time_ms(self) -> Optional[int]: ...


PingT = TypeVar("PingT", bound=_HasTimeMs)


class Ping(Shape[PingT]):
    """AT+PING: `+<time>` then OK, or `+timeout` then ERROR."""

    def __init__(self, record: Callable[[Optional[int]], PingT]):
        self.record = record

    def parse(self, lines: List[str], ctx: Dict[str, Any]) -> Optional[PingT]:
        for line in lines:
            t = line.strip()
            if t == "+timeout":
                return self.record(None)
            m = re.fullmatch(r"\+ ?([0-9]{1,9})", t)
            if m:
                return self.record(int(m.group(1)))
        return None

    def format(self, record: Optional[PingT], ctx: Dict[str, Any]) -> List[str]:
        if record is None:
            return []
        return ["+timeout" if record.time_ms is None else f"+{int(record.time_ms)}"]
