"""Pure-Python twin of ``wizsock._framer``: bytes from the module in, events out.

This module is the executable specification of the framer; the Cython one must
produce the same events (``astuple``) for every stream under every split, and
the tests hold both to that.  It is written with ``bytes.find`` and slicing so
that the work per chunk happens inside CPython's C code; it never loops over
single bytes in Python.

Grammar (docs/design.md section 1):

* Lines end at LF; any number of trailing CR is stripped; empty lines give
  nothing.  A line is classified by :func:`_classify` in a fixed order.
* ``>`` at a line start is the send prompt, reported at once (the module sends
  no CR LF after it); one following space is swallowed.
* ``+IPD,`` at a line start starts a data header, ended by ``:``; then exactly
  ``len`` bytes of payload follow, whatever they contain, and the next byte is
  a line start again (firmware glues URCs to payloads without a CR LF).
* Anything malformed is a ``Garbage`` event, after which the framer skips to
  the next LF.  A line longer than ``max_line`` bytes and a header longer than
  ``IPD_HEADER_MAX`` bytes are cut there, so memory stays bounded.  A line
  start that may still become ``+IPD,`` (at most 4 bytes) is held whatever
  ``max_line`` until the next bytes decide it; if they don't make it a header,
  a held start longer than ``max_line`` is cut at ``max_line`` as the whole
  line would have been, so no event carries a line longer than ``max_line``
  and the events don't depend on the split even for a tiny ``max_line``.
* ``max_ipd`` and ``max_line`` are ints in 1..``LIMIT_MAX`` (``check_limits``).

Decisions the contract leaves open (both framers, tested):

* Numbers (link, length, segment, Recv count, port) are 1-9 ASCII digits, so
  they fit a C long; a port is at most 65535; the +IPD ip is 1-15 of
  ``0-9 .``, quoted or not.  A length of 0 gives an empty ``Data``.
* Control bytes are 0x00-0x1F except TAB, and DEL; a CR that is not trailing
  counts.  They make the whole line ``Garbage``, also a ``topic -> data`` line.
* Order of the tests: control bytes, result code, ``ready``, bare
  ``CONNECT``/``CLOSED``, ``busy``, ``<n>,...`` (link events, CIPSENDBUF
  acks), ``Recv``, ``WIFI``, ``+name``, echo, ``topic -> data``, text.  So an
  echoed ``AT+MQTTPUB`` containing `` -> `` stays an ``Echo``.
* Setting ``raw`` (either way) forgets any partial frame, like ``reset()``;
  ``reset()`` leaves ``raw`` as it is.
* ``raw_on_prompt = True`` (passthrough: ``AT+CIPSEND`` with CIPMODE=1) makes
  the next ``Prompt`` switch to raw mode at once, so network bytes that share
  a read with the ``>`` can not be taken for lines: ``raw`` is True when that
  ``Prompt`` is returned, the one optional space after ``>`` is still
  swallowed (also when it comes in the next chunk), every later byte is
  ``Data(0, ...)``, and ``raw_on_prompt`` clears itself.  Only a ``Prompt``
  consumes it; ``raw`` and ``reset()`` leave it as it is.  The check costs
  one test per prompt, nothing per line or byte.

Copies: a payload that lies inside one chunk is one slice (one copy).  A
payload split over chunks keeps zero-copy ``memoryview`` pieces of the
(immutable) chunks and joins them once at the end.  Inputs that are not
``bytes`` are turned into ``bytes`` first (one extra copy that only this twin
pays; the compiled framer reads any buffer in place, so both refuse a buffer
that is not C-contiguous with ``BufferError``).
"""
import operator
import re
from typing import TYPE_CHECKING, Optional, SupportsIndex

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "Framer", "Data", "Prompt", "Result", "Busy", "Recv", "SendBufAck", "Ready",
    "LinkEvent", "Wifi", "Info", "Subscription", "Text", "Echo", "Garbage",
    "IPD_HEADER_MAX", "LIMIT_MAX", "RESULT_CODES", "check_limits",
]

# Between "+IPD," and ":"; the longest well-formed header,
# 9-digit id and len, a quoted dotted quad and a 9-digit port, is 47 bytes.
IPD_HEADER_MAX = 48

# Largest max_ipd / max_line a Framer accepts (check_limits).
LIMIT_MAX = 1 << 30

RESULT_CODES = (
    "OK", "ERROR", "FAIL", "SEND OK", "SEND FAIL", "ALREADY CONNECTED", "DNS Fail",
    "CONNECT FAIL", "NOT GPIO MODE!", "NOT OUTPUT MODE!", "link is not valid", "CLOSE",
)

# Garbage reasons; the compiled framer uses the same strings.
R_CONTROL = "control bytes"
R_LONG_LINE = "line too long"
R_BAD_IPD = "bad +IPD header"
R_LONG_IPD = "+IPD header too long"
R_BIG_IPD = "+IPD length > max_ipd"


class _Event:
    __slots__ = ()
    _fields: "tuple[str, ...]" = ()

    def __init__(self, *args: object) -> None:
        if len(args) != len(self._fields):
            raise TypeError(f"{type(self).__name__} takes {len(self._fields)} arguments")
        for name, value in zip(self._fields, args):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        # Events are shared (the result singletons); they must not change.
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _values(self) -> "tuple[object, ...]":
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Event) or type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__name__,) + self._values())

    def __repr__(self) -> str:
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields)
        return f"{type(self).__name__}({args})"


def _event(name: str, fields: "tuple[str, ...]") -> "type[_Event]":
    return type(name, (_Event,), {"__slots__": fields, "_fields": fields, "__module__": __name__})


Data = _event("Data", ("link", "payload", "remote"))
Prompt = _event("Prompt", ())
Result = _event("Result", ("code",))
Busy = _event("Busy", ("kind",))
Recv = _event("Recv", ("n",))
SendBufAck = _event("SendBufAck", ("link", "segment"))
Ready = _event("Ready", ())
LinkEvent = _event("LinkEvent", ("link", "state"))
Wifi = _event("Wifi", ("state",))
Info = _event("Info", ("name", "value"))
Subscription = _event("Subscription", ("topic", "data"))
Text = _event("Text", ("text",))
Echo = _event("Echo", ("text",))
Garbage = _event("Garbage", ("data", "reason"))

_PROMPT = Prompt()
_READY = Ready()
_RESULTS = {code.encode(): Result(code) for code in RESULT_CODES}
_LINK_STATES = {b"CONNECT": "CONNECT", b"CLOSED": "CLOSED", b"CONNECT FAIL": "CONNECT FAIL"}
_WIFI = {b"CONNECTED": "CONNECTED", b"GOT IP": "GOT IP",
         b"DISCONNECT": "DISCONNECT", b"DISCONNECTED": "DISCONNECT"}
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]").search
_UPPER_OR_PLUS = frozenset(b"+ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_IP_CHARS = frozenset(b"0123456789.")
_IPD = b"+IPD,"

# Parser states.
_LINE, _AFTER_PROMPT, _HEADER, _PAYLOAD, _SKIP = range(5)


def check_limits(max_ipd: SupportsIndex, max_line: SupportsIndex) -> "tuple[int, int]":
    """Validated (max_ipd, max_line) for a Framer; both framers call this one check.

    Each must be an int (``operator.index``: TypeError otherwise) in
    1..LIMIT_MAX (ValueError otherwise).  Any value in range works, also tiny
    ones: a line start that may become ``+IPD,`` is held (at most 4 bytes)
    until decided, whatever max_line.  The upper bound keeps the compiled
    framer's buffer arithmetic far from overflow and is above any ``+IPD``
    length (9 digits).
    """
    ipd = operator.index(max_ipd)
    line = operator.index(max_line)
    for name, value in (("max_ipd", ipd), ("max_line", line)):
        if not 1 <= value <= LIMIT_MAX:
            raise ValueError(f"{name} must be in 1..{LIMIT_MAX}, got {value}")
    return ipd, line


def _decode(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _number(b: bytes) -> Optional[int]:
    """1-9 ASCII digits -> int, else None (bounded so it fits a C long)."""
    if 0 < len(b) <= 9 and b.isdigit():
        return int(b)
    return None


def _digits_prefix(line: bytes) -> int:
    """Length of the leading run of ASCII digits."""
    return len(line) - len(line.lstrip(b"0123456789"))


def _classify(line: bytes, out: "list[_Event]") -> None:
    """One complete line (LF removed) -> at most one event appended to out."""
    line = line.rstrip(b"\r")
    if not line:
        return
    if _CONTROL(line):
        out.append(Garbage(line, R_CONTROL))
        return
    ev = _RESULTS.get(line)
    if ev is not None:
        out.append(ev)
        return
    first = line[0]
    if line == b"ready":
        out.append(_READY)
    elif line == b"CONNECT" or line == b"CLOSED":
        out.append(LinkEvent(None, _LINK_STATES[line]))
    elif line == b"busy":
        out.append(Busy(""))
    elif line.startswith(b"busy p"):
        out.append(Busy("p"))
    elif line.startswith(b"busy s"):
        out.append(Busy("s"))
    elif 0x30 <= first <= 0x39 and _numbered(line, out):
        pass
    elif line.startswith(b"Recv ") and line.endswith(b" bytes") and _number(line[5:-6]) is not None:
        out.append(Recv(int(line[5:-6])))
    elif line[4:5] == b" " and line[:4].lower() == b"wifi" and line[5:] in _WIFI:
        out.append(Wifi(_WIFI[line[5:]]))
    elif first == 0x2B and len(line) > 1 and line[1] != 0x3A:  # "+name[:value]"
        name, colon, value = line[1:].partition(b":")
        out.append(Info(_decode(name), _decode(value) if colon else None))
    elif line[:2] == b"AT" and (len(line) == 2 or line[2] in _UPPER_OR_PLUS):
        out.append(Echo(_decode(line)))
    else:
        i = line.find(b" -> ")
        if i > 0:
            out.append(Subscription(_decode(line[:i]), line[i + 4:]))
        else:
            out.append(Text(_decode(line)))


def _numbered(line: bytes, out: "list[_Event]") -> bool:
    """`<id>,CONNECT|CLOSED|CONNECT FAIL`, `[<id>,]<seg>,SEND OK`; False if neither."""
    k = _digits_prefix(line)
    num = _number(line[:k])
    if num is None or line[k:k + 1] != b",":
        return False
    rest = line[k + 1:]
    if rest == b"SEND OK":
        out.append(SendBufAck(None, num))
        return True
    # The spec's message table writes "<Link ID>, CONNECT"; firmware omits the space.
    state = _LINK_STATES.get(rest[1:] if rest[:1] == b" " else rest)
    if state is not None:
        out.append(LinkEvent(num, state))
        return True
    k = _digits_prefix(rest)
    seg = _number(rest[:k])
    if seg is not None and rest[k:] == b",SEND OK":
        out.append(SendBufAck(num, seg))
        return True
    return False


def _parse_ip(b: bytes) -> Optional[str]:
    if b[:1] == b'"':
        if len(b) < 2 or b[-1:] != b'"':
            return None
        b = b[1:-1]
    if not 0 < len(b) <= 15 or not _IP_CHARS.issuperset(b):
        return None
    return b.decode("ascii")


def parse_ipd_header(hdr: bytes) -> "Optional[tuple[int, int, Optional[tuple[str, int]]]]":
    """Bytes between "+IPD," and ":" -> (link, length, remote) or None if malformed.

    `len` | `id,len` | `len,ip,port` | `id,len,ip,port`; ip quoted or not.
    """
    fields = hdr.split(b",")
    nf = len(fields)
    link: Optional[int]
    if nf == 1 or nf == 3:
        link = 0
        length = _number(fields[0])
    elif nf == 2 or nf == 4:
        link = _number(fields[0])
        length = _number(fields[1])
        if link is None:
            return None
    else:
        return None
    if length is None:
        return None
    remote: "Optional[tuple[str, int]]" = None
    if nf >= 3:
        ip = _parse_ip(fields[-2])
        port = _number(fields[-1])
        if ip is None or port is None or port > 65535:
            return None
        remote = (ip, port)
    return link, length, remote


class Framer:
    """Sans-I/O framer for the WizFi360's UART output. See module docstring."""

    __slots__ = ("_max_ipd", "_max_line", "_raw", "_raw_on_prompt", "_state", "_buf",
                 "_need", "_pieces", "_link", "_remote")

    def __init__(self, max_ipd: SupportsIndex = 8192, max_line: SupportsIndex = 4096) -> None:
        self._max_ipd, self._max_line = check_limits(max_ipd, max_line)
        self._raw = False
        self._raw_on_prompt = False
        self.reset()

    # Fixed at construction, as in the compiled framer (its line buffer is sized by them).
    @property
    def max_ipd(self) -> int:
        return self._max_ipd

    @property
    def max_line(self) -> int:
        return self._max_line

    def reset(self) -> None:
        """Forget any partial frame (after a module reset)."""
        self._state = _LINE
        self._buf = b""          # partial line, or partial +IPD header (after "+IPD,")
        self._need = 0           # payload bytes still to come
        self._pieces: "list[memoryview]" = []
        self._link = 0
        self._remote: "Optional[tuple[str, int]]" = None

    @property
    def raw(self) -> bool:
        return self._raw

    @raw.setter
    def raw(self, on: bool) -> None:
        # A mode switch is a frame boundary: nothing half-parsed before it can
        # be completed by bytes of the other mode.
        self._raw = bool(on)
        self.reset()

    @property
    def raw_on_prompt(self) -> bool:
        return self._raw_on_prompt

    @raw_on_prompt.setter
    def raw_on_prompt(self, on: bool) -> None:
        self._raw_on_prompt = bool(on)

    @property
    def ipd_pending(self) -> "Optional[tuple[int, int]]":
        """``(link, bytes still to come)`` while inside a ``+IPD`` payload, else None.

        The module prints a ``+IPD`` unit in one go: a payload that stays
        incomplete while the UART is quiet announced more than it carried (the
        engine's stall check)."""
        if self._state == _PAYLOAD:
            return (self._link, self._need)
        return None

    @property
    def mid_line(self) -> bool:
        """True while the start of a line is buffered, waiting for its LF.

        Right after a ``+IPD`` payload this tells the engine whether the payload's
        end is confirmed by a clean start of the next unit yet."""
        return self._state == _LINE and bool(self._buf)

    def feed(self, data: "Buffer") -> "list[_Event]":
        """Consume one chunk (any bytes-like, any size); return the events it completed."""
        if type(data) is not bytes:
            # memoryview first: bytes(5) would be five NULs, not a TypeError.
            view = memoryview(data)
            if not view.c_contiguous:
                # As the compiled framer, which reads the buffer in place.
                raise BufferError("feed() needs a C-contiguous buffer")
            data = view.tobytes()
        n = len(data)
        if self._raw:
            if self._state == _AFTER_PROMPT:  # raw_on_prompt fired at the chunk's end
                self._state = _LINE
                if n and data[0] == 0x20:
                    data = data[1:]
                    n -= 1
            return [Data(0, data, None)] if n else []
        out: "list[_Event]" = []
        pos = 0
        while pos < n:
            state = self._state
            if state == _LINE:
                pos = self._line(data, pos, n, out)
            elif state == _PAYLOAD:
                need = self._need
                if not self._pieces and n - pos >= need:
                    out.append(Data(self._link, data[pos:pos + need], self._remote))
                    pos += need
                    self._state = _LINE
                else:
                    take = min(need, n - pos)
                    self._pieces.append(memoryview(data)[pos:pos + take])
                    pos += take
                    self._need = need - take
                    if self._need == 0:
                        out.append(Data(self._link, b"".join(self._pieces), self._remote))
                        self._pieces = []
                        self._state = _LINE
            elif state == _HEADER:
                pos = self._header(data, pos, n, out)
            elif state == _AFTER_PROMPT:
                if data[pos] == 0x20:
                    pos += 1
                self._state = _LINE
                if self._raw:  # raw_on_prompt: the rest of the chunk is data
                    if pos < n:
                        out.append(Data(0, data[pos:], None))
                    return out
            else:  # _SKIP
                j = data.find(b"\n", pos)
                if j < 0:
                    return out
                pos = j + 1
                self._state = _LINE
        return out

    def _line(self, data: bytes, pos: int, n: int, out: "list[_Event]") -> int:
        buf = self._buf
        if not buf:
            first = data[pos]
            if first == 0x3E:  # ">"
                out.append(_PROMPT)
                if self._raw_on_prompt:
                    self._raw_on_prompt = False
                    self._raw = True
                self._state = _AFTER_PROMPT
                return pos + 1
            if first == 0x2B:
                if data.startswith(_IPD, pos):
                    self._state = _HEADER
                    return pos + 5
                if n - pos < 5 and _IPD.startswith(data[pos:]):
                    # The chunk ends inside what may become "+IPD,": held, whatever
                    # max_line, until the bytes that decide it come.
                    self._buf = data[pos:]
                    return n
        elif len(buf) < 5 and _IPD.startswith(buf):
            # A held line start that may still become "+IPD," once more bytes come.
            k = 5 - len(buf)
            cand = buf + data[pos:pos + k]
            if cand == _IPD:
                self._buf = b""
                self._state = _HEADER
                return pos + k
            if _IPD.startswith(cand):
                self._buf = cand
                return n
            if len(buf) > self._max_line:
                # Not "+IPD," after all, and the held start is already longer than a
                # line may be (max_line < 4): cut it where one chunk would have.
                self._buf = b""
                out.append(Garbage(buf[:self._max_line], R_LONG_LINE))
                self._state = _SKIP
                return pos
        # Invariant: len(buf) <= max_line, so room >= 0.
        room = self._max_line - len(buf)
        j = data.find(b"\n", pos, pos + room + 1)
        if j >= 0:
            self._buf = b""
            _classify(buf + data[pos:j] if buf else data[pos:j], out)
            return j + 1
        if n - pos > room:
            self._buf = b""
            out.append(Garbage(buf + data[pos:pos + room], R_LONG_LINE))
            self._state = _SKIP
            return pos + room
        self._buf = buf + data[pos:]
        return n

    def _header(self, data: bytes, pos: int, n: int, out: "list[_Event]") -> int:
        buf = self._buf
        room = IPD_HEADER_MAX - len(buf)
        end = min(n, pos + room + 1)
        colon = data.find(b":", pos, end)
        lf = data.find(b"\n", pos, colon if colon >= 0 else end)
        if lf >= 0:
            self._buf = b""
            self._state = _LINE
            out.append(Garbage((_IPD + buf + data[pos:lf]).rstrip(b"\r"), R_BAD_IPD))
            return lf + 1
        if colon >= 0:
            hdr = buf + data[pos:colon]
            self._buf = b""
            parsed = parse_ipd_header(hdr)
            if parsed is None:
                out.append(Garbage(_IPD + hdr + b":", R_BAD_IPD))
                self._state = _SKIP
            elif parsed[1] > self._max_ipd:
                out.append(Garbage(_IPD + hdr + b":", R_BIG_IPD))
                self._state = _SKIP
            elif parsed[1] == 0:
                out.append(Data(parsed[0], b"", parsed[2]))
                self._state = _LINE
            else:
                self._link, self._need, self._remote = parsed
                self._state = _PAYLOAD
            return colon + 1
        if end - pos > room:
            out.append(Garbage(_IPD + buf + data[pos:pos + room], R_LONG_IPD))
            self._buf = b""
            self._state = _SKIP
            return pos + room
        self._buf = buf + data[pos:end]
        return end


def astuple(ev: _Event) -> "tuple[object, ...]":
    """(classname, *fields): how tests compare events across the two implementations."""
    return (type(ev).__name__,) + tuple(getattr(ev, name) for name in ev._fields)
