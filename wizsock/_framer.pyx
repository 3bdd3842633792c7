# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled framer: bytes from the WizFi360's UART in, events out.

Same grammar, same API and the same events (``astuple``) as the pure-Python
twin ``wizsock._framer_py``, which is the readable specification; read its
docstring first.  This one is a byte state machine over a
``const unsigned char*``: lines are found with ``memchr``, classified by
comparing bytes in C, and only the finished event becomes a Python object.

Copies: the input buffer is read in place (``bytes`` directly, anything else
through the buffer protocol, released before ``feed`` returns, so the caller
may reuse or resize its buffer at once).  Every payload is a fresh ``bytes``
made with exactly one copy: inside one chunk a ``PyBytes_FromStringAndSize``
of the slice; split over chunks a ``bytes`` of the final size allocated at the
header and filled in place as the pieces arrive.  A ``memoryview`` into the
caller's chunk would save that copy, but it would pin the whole chunk (up to
64 KiB) for a small payload and make every payload's type depend on the
caller's input type; a memcpy of at most ``max_ipd`` bytes costs less than the
event object around it.  Raw mode hands back the caller's ``bytes`` object
itself (immutable, so sharing is safe) and copies any other buffer once.
"""
cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdlib cimport free, malloc
from libc.string cimport memchr, memcmp, memcpy

import sys

from wizsock._framer_py import IPD_HEADER_MAX as _PY_IPD_HEADER_MAX, LIMIT_MAX, RESULT_CODES, check_limits

# Must equal the twin's bound, or over-long headers would be cut at different bytes.
cdef enum:
    HDR_MAX = 48
    N_RESULTS = 12
assert _PY_IPD_HEADER_MAX == HDR_MAX
IPD_HEADER_MAX = HDR_MAX

# The reasons are the twin's strings; interned so hot paths share one object.
cdef str R_CONTROL = sys.intern("control bytes")
cdef str R_LONG_LINE = sys.intern("line too long")
cdef str R_BAD_IPD = sys.intern("bad +IPD header")
cdef str R_LONG_IPD = sys.intern("+IPD header too long")
cdef str R_BIG_IPD = sys.intern("+IPD length > max_ipd")
cdef str S_CONNECT = sys.intern("CONNECT")
cdef str S_CLOSED = sys.intern("CLOSED")
cdef str S_CONNECT_FAIL = sys.intern("CONNECT FAIL")
cdef str S_CONNECTED = sys.intern("CONNECTED")
cdef str S_GOT_IP = sys.intern("GOT IP")
cdef str S_DISCONNECT = sys.intern("DISCONNECT")
cdef str S_EMPTY = sys.intern("")
cdef str S_P = sys.intern("p")
cdef str S_S = sys.intern("s")
cdef bytes B_IPD = b"+IPD,"
cdef const unsigned char* IPD = <const unsigned char*>b"+IPD,"

__all__ = [
    "Framer", "Data", "Prompt", "Result", "Busy", "Recv", "SendBufAck", "Ready",
    "LinkEvent", "Wifi", "Info", "Subscription", "Text", "Echo", "Garbage",
    "IPD_HEADER_MAX", "LIMIT_MAX", "RESULT_CODES", "check_limits",
]


# No @cython.freelist here: Cython lets only a base type manage a freelist, and
# the events differ in size, so it would serve none of them; @cython.no_gc
# measured ~3 % on stream (b), not worth events that could leak in a cycle.
# The hot events are instead built with Type.__new__ and direct field stores
# (no argument parsing), and fieldless/result events are shared singletons.
cdef class _Event:
    """Common behaviour; each subclass declares its fields and lists them in _fields."""
    _fields = ()

    def _values(self):
        return tuple([getattr(self, name) for name in self._fields])

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __ne__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._values() != other._values()

    def __hash__(self):
        return hash((type(self).__name__,) + self._values())

    def __repr__(self):
        args = ", ".join([f"{n}={getattr(self, n)!r}" for n in self._fields])
        return f"{type(self).__name__}({args})"




cdef class Data(_Event):
    cdef readonly object link, payload, remote
    _fields = ("link", "payload", "remote")

    def __init__(self, link, payload, remote):
        self.link = link
        self.payload = payload
        self.remote = remote


cdef class Prompt(_Event):
    _fields = ()


cdef class Result(_Event):
    cdef readonly str code
    _fields = ("code",)

    def __init__(self, code):
        self.code = code


cdef class Busy(_Event):
    cdef readonly str kind
    _fields = ("kind",)

    def __init__(self, kind):
        self.kind = kind


cdef class Recv(_Event):
    cdef readonly object n
    _fields = ("n",)

    def __init__(self, n):
        self.n = n


cdef class SendBufAck(_Event):
    cdef readonly object link, segment
    _fields = ("link", "segment")

    def __init__(self, link, segment):
        self.link = link
        self.segment = segment


cdef class Ready(_Event):
    _fields = ()


cdef class LinkEvent(_Event):
    cdef readonly object link
    cdef readonly str state
    _fields = ("link", "state")

    def __init__(self, link, state):
        self.link = link
        self.state = state


cdef class Wifi(_Event):
    cdef readonly str state
    _fields = ("state",)

    def __init__(self, state):
        self.state = state


cdef class Info(_Event):
    cdef readonly str name
    cdef readonly object value
    _fields = ("name", "value")

    def __init__(self, name, value):
        self.name = name
        self.value = value


cdef class Subscription(_Event):
    cdef readonly str topic
    cdef readonly bytes data
    _fields = ("topic", "data")

    def __init__(self, topic, data):
        self.topic = topic
        self.data = data


cdef class Text(_Event):
    cdef readonly str text
    _fields = ("text",)

    def __init__(self, text):
        self.text = text


cdef class Echo(_Event):
    cdef readonly str text
    _fields = ("text",)

    def __init__(self, text):
        self.text = text


cdef class Garbage(_Event):
    cdef readonly bytes data
    cdef readonly str reason
    _fields = ("data", "reason")

    def __init__(self, data, reason):
        self.data = data
        self.reason = reason


cdef Prompt PROMPT = Prompt()
cdef Ready READY = Ready()

# Result codes: the events are immutable, so one shared event per code.
assert len(RESULT_CODES) == N_RESULTS
cdef tuple _RESULT_BYTES = tuple([c.encode() for c in RESULT_CODES])
cdef list _RESULT_EVENTS = [Result(sys.intern(c)) for c in RESULT_CODES]
cdef const char* _RC[N_RESULTS]
cdef Py_ssize_t _RCL[N_RESULTS]
for _i in range(N_RESULTS):
    _RC[_i] = PyBytes_AS_STRING(_RESULT_BYTES[_i])
    _RCL[_i] = PyBytes_GET_SIZE(_RESULT_BYTES[_i])


cdef inline Data _data(object link, object payload, object remote):
    cdef Data ev = Data.__new__(Data)
    ev.link = link
    ev.payload = payload
    ev.remote = remote
    return ev


cdef inline str _decode(const unsigned char* p, Py_ssize_t n):
    return PyUnicode_DecodeUTF8(<const char*>p, n, "surrogateescape")


cdef inline bytes _bytes(const unsigned char* p, Py_ssize_t n):
    return PyBytes_FromStringAndSize(<const char*>p, n)


cdef inline bint _eq(const unsigned char* p, Py_ssize_t n, const char* s, Py_ssize_t sn) noexcept:
    return n == sn and memcmp(p, s, sn) == 0


cdef inline bint _starts(const unsigned char* p, Py_ssize_t n, const char* s, Py_ssize_t sn) noexcept:
    return n >= sn and memcmp(p, s, sn) == 0


cdef inline long _num(const unsigned char* p, Py_ssize_t n) noexcept:
    """1-9 ASCII digits -> value, else -1 (the twin's _number)."""
    cdef long v = 0
    cdef Py_ssize_t i
    if n < 1 or n > 9:
        return -1
    for i in range(n):
        if p[i] < 48 or p[i] > 57:
            return -1
        v = v * 10 + (p[i] - 48)
    return v


cdef inline Py_ssize_t _digits(const unsigned char* p, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i = 0
    while i < n and 48 <= p[i] <= 57:
        i += 1
    return i


cdef inline object _link_state(const unsigned char* p, Py_ssize_t n):
    if _eq(p, n, "CONNECT", 7):
        return S_CONNECT
    if _eq(p, n, "CLOSED", 6):
        return S_CLOSED
    if _eq(p, n, "CONNECT FAIL", 12):
        return S_CONNECT_FAIL
    return None


cdef object _numbered(const unsigned char* p, Py_ssize_t n):
    """`<id>,CONNECT|CLOSED|CONNECT FAIL`, `[<id>,]<seg>,SEND OK` -> event or None."""
    cdef Py_ssize_t k = _digits(p, n), k2, rn
    cdef long num = _num(p, k), seg
    cdef const unsigned char* r
    cdef SendBufAck ack
    cdef LinkEvent le
    if num < 0 or k >= n or p[k] != 44:
        return None
    r = p + k + 1
    rn = n - k - 1
    if _eq(r, rn, "SEND OK", 7):
        ack = SendBufAck.__new__(SendBufAck)
        ack.link = None
        ack.segment = num
        return ack
    # The spec's message table writes "<Link ID>, CONNECT"; firmware omits the space.
    state = _link_state(r + 1, rn - 1) if rn > 0 and r[0] == 32 else _link_state(r, rn)
    if state is not None:
        le = LinkEvent.__new__(LinkEvent)
        le.link = num
        le.state = state
        return le
    k2 = _digits(r, rn)
    seg = _num(r, k2)
    if seg >= 0 and _eq(r + k2, rn - k2, ",SEND OK", 8):
        ack = SendBufAck.__new__(SendBufAck)
        ack.link = num
        ack.segment = seg
        return ack
    return None


cdef object _classify(const unsigned char* p, Py_ssize_t n):
    """One complete line (LF removed) -> its event, or None for an empty line.

    The order of the tests is the twin's _classify; keep the two in step.
    """
    cdef Py_ssize_t i
    cdef unsigned char c, c0
    cdef const unsigned char* q
    cdef Text t
    cdef Info info
    cdef LinkEvent le
    cdef Recv rv
    while n > 0 and p[n - 1] == 13:
        n -= 1
    if n == 0:
        return None
    for i in range(n):
        c = p[i]
        if (c < 32 and c != 9) or c == 127:
            return Garbage(_bytes(p, n), R_CONTROL)
    c0 = p[0]
    for i in range(N_RESULTS):
        if _RCL[i] == n and <unsigned char>_RC[i][0] == c0 and memcmp(p, _RC[i], n) == 0:
            return _RESULT_EVENTS[i]
    if _eq(p, n, "ready", 5):
        return READY
    if _eq(p, n, "CONNECT", 7) or _eq(p, n, "CLOSED", 6):
        le = LinkEvent.__new__(LinkEvent)
        le.link = None
        le.state = S_CONNECT if n == 7 else S_CLOSED
        return le
    if c0 == 98:  # "b"
        if _eq(p, n, "busy", 4):
            return Busy(S_EMPTY)
        if _starts(p, n, "busy p", 6):
            return Busy(S_P)
        if _starts(p, n, "busy s", 6):
            return Busy(S_S)
    if 48 <= c0 <= 57:
        ev = _numbered(p, n)
        if ev is not None:
            return ev
    if n >= 12 and _starts(p, n, "Recv ", 5) and memcmp(p + n - 6, b" bytes", 6) == 0:
        i = _num(p + 5, n - 11)
        if i >= 0:
            rv = Recv.__new__(Recv)
            rv.n = i
            return rv
    if (n >= 5 and p[4] == 32 and (p[0] | 32) == 119 and (p[1] | 32) == 105
            and (p[2] | 32) == 102 and (p[3] | 32) == 105):  # "wifi " in any case
        if _eq(p + 5, n - 5, "CONNECTED", 9):
            return Wifi(S_CONNECTED)
        if _eq(p + 5, n - 5, "GOT IP", 6):
            return Wifi(S_GOT_IP)
        if _eq(p + 5, n - 5, "DISCONNECT", 10) or _eq(p + 5, n - 5, "DISCONNECTED", 12):
            return Wifi(S_DISCONNECT)
    if c0 == 43 and n > 1 and p[1] != 58:  # "+name[:value]"
        info = Info.__new__(Info)
        q = <const unsigned char*>memchr(p + 1, 58, n - 1)
        if q == NULL:
            info.name = _decode(p + 1, n - 1)
            info.value = None
        else:
            info.name = _decode(p + 1, q - p - 1)
            info.value = _decode(q + 1, n - (q - p) - 1)
        return info
    if n >= 2 and c0 == 65 and p[1] == 84 and (n == 2 or p[2] == 43 or 65 <= p[2] <= 90):
        return Echo(_decode(p, n))
    q = p
    while True:
        q = <const unsigned char*>memchr(q, 32, n - (q - p))
        if q == NULL or n - (q - p) < 4:
            break
        if q[1] == 45 and q[2] == 62 and q[3] == 32:  # " -> "
            if q > p:
                return Subscription(_decode(p, q - p), _bytes(q + 4, n - (q - p) - 4))
            break
        q += 1
    t = Text.__new__(Text)
    t.text = _decode(p, n)
    return t


cdef enum:
    S_LINE = 0
    S_AFTER_PROMPT = 1
    S_HEADER = 2
    S_PAYLOAD = 3
    S_SKIP = 4


cdef class Framer:
    """Sans-I/O framer for the WizFi360's UART output (see wizsock._framer_py)."""

    cdef readonly Py_ssize_t max_ipd, max_line
    cdef bint _raw
    cdef public bint raw_on_prompt   # the next Prompt switches to raw (see the twin)
    cdef int state
    cdef unsigned char* buf      # partial line, or partial +IPD header after "+IPD,"
    cdef Py_ssize_t blen
    cdef Py_ssize_t need, filled  # payload split over chunks: bytes to come, bytes in pay
    cdef bytes pay
    cdef object link, remote
    # Per-link cache of the last remote (ip, port) tuple, keyed by its header
    # bytes: with CIPDINFO=1 every frame repeats them, and decoding the ip to
    # a str and building the tuple would cost as much as the rest of the frame.
    cdef unsigned char rkey[8][32]
    cdef Py_ssize_t rklen[8]
    cdef list rval

    def __cinit__(self, max_ipd=8192, max_line=4096):
        self.max_ipd, self.max_line = check_limits(max_ipd, max_line)
        self.buf = <unsigned char*>malloc(max(self.max_line, HDR_MAX) + 1)
        if self.buf == NULL:
            raise MemoryError()
        self.rval = [None] * 8
        for i in range(8):
            self.rklen[i] = -1
        self._raw = False
        self.raw_on_prompt = False
        self.reset()

    def __dealloc__(self):
        free(self.buf)

    def reset(self):
        """Forget any partial frame (after a module reset)."""
        self.state = S_LINE
        self.blen = 0
        self.need = 0
        self.filled = 0
        self.pay = None
        self.link = 0
        self.remote = None

    @property
    def raw(self):
        return self._raw

    @property
    def ipd_pending(self):
        """``(link, bytes still to come)`` while inside a ``+IPD`` payload, else None (as the twin)."""
        if self.state == S_PAYLOAD:
            return (self.link, self.need)
        return None

    @property
    def mid_line(self):
        """True while the start of a line is buffered, waiting for its LF (as the twin)."""
        return self.state == S_LINE and self.blen > 0

    @raw.setter
    def raw(self, on):
        # A mode switch is a frame boundary (as in the twin).
        self._raw = bool(on)
        self.reset()

    def feed(self, data):
        """Consume one chunk (any bytes-like, any size); return the events it completed."""
        cdef Py_buffer view
        if type(data) is bytes:
            if self._raw:
                if self.state == S_AFTER_PROMPT:  # raw_on_prompt fired at the chunk's end
                    return self._raw_tail(<const unsigned char*>PyBytes_AS_STRING(data), 0,
                                          PyBytes_GET_SIZE(data))
                return [_data(0, data, None)] if PyBytes_GET_SIZE(data) else []
            return self._run(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            if self._raw:
                if self.state == S_AFTER_PROMPT:
                    return self._raw_tail(<const unsigned char*>view.buf, 0, view.len)
                return [_data(0, _bytes(<const unsigned char*>view.buf, view.len), None)] if view.len else []
            return self._run(<const unsigned char*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    cdef list _raw_tail(self, const unsigned char* p, Py_ssize_t pos, Py_ssize_t n):
        """After a Prompt that switched to raw: swallow one space, the rest is Data."""
        cdef list out = []
        self.state = S_LINE
        if pos < n and p[pos] == 32:
            pos += 1
        if pos < n:
            out.append(_data(0, _bytes(p + pos, n - pos), None))
        return out

    cdef list _run(self, const unsigned char* p, Py_ssize_t n):
        cdef list out = []
        cdef Py_ssize_t pos = 0, take
        cdef const unsigned char* q
        while pos < n:
            if self.state == S_LINE:
                pos = self._line(p, pos, n, out)
            elif self.state == S_PAYLOAD:
                take = self.need if self.need < n - pos else n - pos
                memcpy(PyBytes_AS_STRING(self.pay) + self.filled, p + pos, take)
                pos += take
                self.filled += take
                self.need -= take
                if self.need == 0:
                    out.append(_data(self.link, self.pay, self.remote))
                    self.pay = None
                    self.remote = None
                    self.state = S_LINE
            elif self.state == S_HEADER:
                pos = self._header(p, pos, n, out)
            elif self.state == S_AFTER_PROMPT:
                if self._raw:  # raw_on_prompt: the rest of the chunk is data
                    out.extend(self._raw_tail(p, pos, n))
                    return out
                if p[pos] == 32:
                    pos += 1
                self.state = S_LINE
            else:  # S_SKIP
                q = <const unsigned char*>memchr(p + pos, 10, n - pos)
                if q == NULL:
                    break
                pos = q - p + 1
                self.state = S_LINE
        return out

    cdef Py_ssize_t _line(self, const unsigned char* p, Py_ssize_t pos, Py_ssize_t n, list out) except -1:
        cdef Py_ssize_t L = self.blen, k, avail, room, j
        cdef const unsigned char* q
        if L == 0:
            if p[pos] == 62:  # ">"
                out.append(PROMPT)
                if self.raw_on_prompt:
                    self.raw_on_prompt = False
                    self._raw = True
                self.state = S_AFTER_PROMPT
                return pos + 1
            if p[pos] == 43:
                avail = 5 if 5 < n - pos else n - pos
                if memcmp(p + pos, IPD, avail) == 0:
                    if avail == 5:
                        self.state = S_HEADER
                        return pos + 5
                    # The chunk ends inside what may become "+IPD,": held, whatever
                    # max_line, until the bytes that decide it come (buf has >= HDR_MAX).
                    memcpy(self.buf, p + pos, avail)
                    self.blen = avail
                    return n
        elif L < 5 and memcmp(self.buf, IPD, L) == 0:
            # A held line start that may still become "+IPD," once more bytes come.
            k = 5 - L
            avail = k if k < n - pos else n - pos
            if memcmp(p + pos, IPD + L, avail) == 0:
                if avail == k:
                    self.blen = 0
                    self.state = S_HEADER
                    return pos + k
                memcpy(self.buf + L, p + pos, avail)
                self.blen = L + avail
                return n
            if L > self.max_line:
                # Not "+IPD," after all, and the held start is already longer than a
                # line may be (max_line < 4): cut it where one chunk would have.
                self.blen = 0
                out.append(Garbage(_bytes(self.buf, self.max_line), R_LONG_LINE))
                self.state = S_SKIP
                return pos
        # Invariant: L <= max_line, so room >= 0 (a negative room would overrun buf).
        room = self.max_line - L
        avail = room + 1 if room + 1 < n - pos else n - pos
        q = <const unsigned char*>memchr(p + pos, 10, avail)
        if q != NULL:
            j = q - p
            if L:
                memcpy(self.buf + L, p + pos, j - pos)
                self.blen = 0
                ev = _classify(self.buf, L + j - pos)
            else:
                ev = _classify(p + pos, j - pos)
            if ev is not None:
                out.append(ev)
            return j + 1
        if n - pos > room:
            memcpy(self.buf + L, p + pos, room)
            self.blen = 0
            out.append(Garbage(_bytes(self.buf, self.max_line), R_LONG_LINE))
            self.state = S_SKIP
            return pos + room
        memcpy(self.buf + L, p + pos, n - pos)
        self.blen = L + n - pos
        return n

    cdef Py_ssize_t _header(self, const unsigned char* p, Py_ssize_t pos, Py_ssize_t n, list out) except -1:
        cdef Py_ssize_t L = self.blen, room = HDR_MAX - L, end, i, hlen, start
        cdef const unsigned char* hdr
        end = pos + room + 1 if pos + room + 1 < n else n
        i = pos
        while i < end and p[i] != 58 and p[i] != 10:
            i += 1
        if i < end and p[i] == 10:
            self.blen = 0
            self.state = S_LINE
            out.append(Garbage((B_IPD + _bytes(self.buf, L) + _bytes(p + pos, i - pos)).rstrip(b"\r"),
                               R_BAD_IPD))
            return i + 1
        if i < end:  # ":"
            if L:
                memcpy(self.buf + L, p + pos, i - pos)
                hdr = self.buf
            else:
                hdr = p + pos
            hlen = L + i - pos
            self.blen = 0
            start = i + 1
            if self._parse_header(hdr, hlen) < 0:
                out.append(Garbage(B_IPD + _bytes(hdr, hlen) + b":", R_BAD_IPD))
                self.state = S_SKIP
                return start
            if self.need > self.max_ipd:
                out.append(Garbage(B_IPD + _bytes(hdr, hlen) + b":", R_BIG_IPD))
                self.remote = None
                self.state = S_SKIP
                return start
            if n - start >= self.need:
                # The common case: the whole payload is in this chunk.
                out.append(_data(self.link, _bytes(p + start, self.need), self.remote))
                self.remote = None
                self.state = S_LINE
                return start + self.need
            self.pay = PyBytes_FromStringAndSize(NULL, self.need)
            self.filled = 0
            self.state = S_PAYLOAD
            return start
        if end - pos > room:
            out.append(Garbage(B_IPD + _bytes(self.buf, L) + _bytes(p + pos, room), R_LONG_IPD))
            self.blen = 0
            self.state = S_SKIP
            return pos + room
        memcpy(self.buf + L, p + pos, end - pos)
        self.blen = L + end - pos
        return end

    cdef int _parse_header(self, const unsigned char* h, Py_ssize_t n) except -2:
        """`len` | `id,len` | `len,ip,port` | `id,len,ip,port` -> self.link/need/remote; -1 if malformed."""
        cdef Py_ssize_t fs[4]
        cdef Py_ssize_t fe[4]
        cdef int nf = 0, slot
        cdef Py_ssize_t i, a, b
        cdef long link, length, port
        fs[0] = 0
        for i in range(n):
            if h[i] == 44:
                if nf == 3:
                    return -1
                fe[nf] = i
                nf += 1
                fs[nf] = i + 1
        fe[nf] = n
        nf += 1
        if nf == 1 or nf == 3:
            link = 0
            length = _num(h, fe[0])
        else:
            link = _num(h, fe[0])
            length = _num(h + fs[1], fe[1] - fs[1])
            if link < 0:
                return -1
        if length < 0:
            return -1
        remote = None
        if nf >= 3:
            a = fs[nf - 2]
            b = fe[nf - 2]
            port = _num(h + fs[nf - 1], fe[nf - 1] - fs[nf - 1])
            if port < 0 or port > 65535:
                return -1
            if b > a and h[a] == 34:
                if b - a < 2 or h[b - 1] != 34:
                    return -1
                a += 1
                b -= 1
            if b - a < 1 or b - a > 15:
                return -1
            for i in range(a, b):
                if h[i] != 46 and (h[i] < 48 or h[i] > 57):
                    return -1
            slot = link & 7
            a = fs[nf - 2]
            if self.rklen[slot] == n - a and memcmp(self.rkey[slot], h + a, n - a) == 0:
                remote = self.rval[slot]
            else:
                if h[a] == 34:
                    remote = (PyUnicode_DecodeUTF8(<const char*>h + a + 1, b - a - 1, NULL), port)
                else:
                    remote = (PyUnicode_DecodeUTF8(<const char*>h + a, b - a, NULL), port)
                self.rval[slot] = remote
                memcpy(self.rkey[slot], h + a, n - a)
                self.rklen[slot] = n - a
        self.link = link
        self.need = length
        self.remote = remote
        return 0
