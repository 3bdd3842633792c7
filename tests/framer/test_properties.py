"""Hypothesis: the framers against a model of what the module prints, and against each other.

Streams are built from items that each know the event they must produce, so
the expected events come from the generator, not from either implementation.
"""
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wizsock.framer import astuple

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

RESULTS = ["OK", "ERROR", "FAIL", "SEND OK", "SEND FAIL", "ALREADY CONNECTED", "DNS Fail",
           "CONNECT FAIL", "NOT GPIO MODE!", "NOT OUTPUT MODE!", "link is not valid", "CLOSE"]
SPECIALS = [b"\r\n", b"\n", b"\r", b"OK\r\n", b"+IPD,", b"+IPD,0,5:", b"> ", b">", b"\x00",
            b":", b",", b"\r\r\n", b"0,CLOSED", b'"', b" -> "]

endings = st.sampled_from([b"\r\n", b"\n", b"\r\r\n"])
# printable bytes (no control bytes, no DEL) incl. non-UTF-8 high bytes
safe_bytes = st.lists(st.integers(0x20, 0xFF).filter(lambda b: b != 0x7F), max_size=40).map(bytes)
upper = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789", min_size=1, max_size=12)
number = st.integers(0, 999_999_999)
link = st.integers(0, 4)


def _decode(b):
    return b.decode("utf-8", "surrogateescape")


def _line(text, event):
    return endings.map(lambda end: (text + end, [event]))


@st.composite
def ipd(draw):
    payload = draw(st.one_of(
        st.binary(max_size=300),
        st.lists(st.sampled_from(SPECIALS), max_size=8).map(b"".join)))
    mux = draw(st.booleans())
    lk = draw(link) if mux else 0
    info = draw(st.sampled_from([None, "quoted", "bare"]))
    head = b"+IPD,%d,%d" % (lk, len(payload)) if mux else b"+IPD,%d" % len(payload)
    remote = None
    if info:
        ip = ".".join(str(draw(st.integers(0, 255))) for _ in range(4))
        port = draw(st.integers(0, 65535))
        head += (b',"%s",%d' if info == "quoted" else b",%s,%d") % (ip.encode(), port)
        remote = (ip, port)
    lead = draw(st.sampled_from([b"", b"\r\n"]))  # URCs and frames may be glued
    return lead + head + b":" + payload, [("Data", lk, payload, remote)]


def _sendbuf(lk, seg):
    text = b"%d,SEND OK" % seg if lk is None else b"%d,%d,SEND OK" % (lk, seg)
    return _line(text, ("SendBufAck", lk, seg))


def _link_event(lk, state):
    if lk is None:
        return _line(state.encode(), ("LinkEvent", None, state))
    return _line(b"%d,%s" % (lk, state.encode()), ("LinkEvent", lk, state))


def _wifi(prefix, word):
    state = "DISCONNECT" if word == "DISCONNECTED" else word
    return _line(f"{prefix} {word}".encode(), ("Wifi", state))


def _info(name, value):
    raw = b"+" + name.encode() + (b"" if value is None else b":" + value)
    return _line(raw, ("Info", name, None if value is None else _decode(value)))


def _subscription(topic, data):
    return _line(topic.encode() + b" -> " + data, ("Subscription", topic, data))


def _text(body):
    return _line(b"txt:" + body, ("Text", _decode(b"txt:" + body)))


items = st.one_of(
    ipd(),
    st.sampled_from(RESULTS).flatmap(lambda c: _line(c.encode(), ("Result", c))),
    st.sampled_from([(b"busy p...", "p"), (b"busy s...", "s"), (b"busy", "")]).flatmap(
        lambda b: _line(b[0], ("Busy", b[1]))),
    number.flatmap(lambda n: _line(b"Recv %d bytes" % n, ("Recv", n))),
    st.tuples(st.none() | link, number).flatmap(lambda a: _sendbuf(*a)),
    _line(b"ready", ("Ready",)),
    st.tuples(link, st.sampled_from(["CONNECT", "CLOSED", "CONNECT FAIL"])).flatmap(
        lambda a: _link_event(*a)),
    st.sampled_from(["CONNECT", "CLOSED"]).flatmap(lambda s: _link_event(None, s)),
    st.tuples(st.sampled_from(["WIFI", "WiFi", "wIfI"]),
              st.sampled_from(["CONNECTED", "GOT IP", "DISCONNECT", "DISCONNECTED"])).flatmap(
        lambda a: _wifi(*a)),
    st.tuples(upper, st.none() | safe_bytes).flatmap(lambda a: _info(*a)),
    st.tuples(st.sampled_from(["AT", "AT+", "ATE"]), upper.map(lambda u: "C" + u)).flatmap(
        lambda a: _line((a[0] + a[1]).encode(), ("Echo", a[0] + a[1]))),
    st.tuples(st.text("abcdefghijklmnopqrstuvwxyz/ %$.=&", min_size=1, max_size=30).map(
        lambda t: "t/" + t), safe_bytes).flatmap(lambda a: _subscription(*a)),
    safe_bytes.filter(lambda b: b" -> " not in b).flatmap(_text),
    st.sampled_from([b">", b"> "]).map(lambda p: (p, [("Prompt",)])),
    endings.map(lambda e: (e, [])),
)


@st.composite
def model_streams(draw):
    parts = draw(st.lists(items, max_size=40))
    return b"".join(p for p, _ in parts), [e for _, evs in parts for e in evs]


sizes = st.lists(st.integers(1, 80), min_size=1, max_size=8)


@SETTINGS
@given(stream=model_streams(), split=sizes)
def test_every_item_gives_its_event_under_any_split(impl, run, stream, split):
    data, expected = stream
    assert run(impl, data) == expected
    assert run(impl, data, split) == expected
    assert run(impl, data, [1]) == expected


# Random bytes, with the fragments that change the framer's state mixed in
# (header starts, prompts, LFs), and sometimes tight bounds so the cut-off
# paths run too.
noise = st.lists(st.one_of(st.binary(max_size=60), st.sampled_from(SPECIALS),
                           model_streams().map(lambda s: s[0])), max_size=30).map(b"".join)
bounds = st.sampled_from([{}, {"max_line": 8, "max_ipd": 8}, {"max_line": 33, "max_ipd": 300}])


@SETTINGS
@given(data=noise, split=sizes, kw=bounds)
def test_compiled_and_pure_agree_on_anything(both, run, data, split, kw):
    compiled, pure = both
    expected = run(pure, data, **kw)
    for sizes in (None, split, [1]):
        assert run(compiled, data, sizes, **kw) == expected
        assert run(pure, data, sizes, **kw) == expected


@SETTINGS
@example(junk=b"\x00\r\r", stream=(b"OK\n", [("Result", "OK")]), split=[1])
@given(junk=st.binary(max_size=400).map(lambda b: b"\x00" + b.replace(b"\n", b"")),
       stream=model_streams(), split=sizes)
def test_garbage_resyncs_at_the_next_lf(impl, run, junk, stream, split):
    # max_line 128: longer than any model line, shorter than some junk, so both
    # the control-byte and the over-long-line path lead into the resync.
    data, expected = stream
    got = run(impl, junk + b"\n" + data, split, max_line=128)
    if len(junk) > 128:
        assert got[0] == ("Garbage", junk[:128], "line too long")
    else:
        assert got[0] == ("Garbage", junk.rstrip(b"\r"), "control bytes")
    assert got[1:] == expected


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64])
def test_raw_stream_round_trips(impl, chunk):
    f = impl.Framer()
    f.raw = True
    data = bytes(range(256)) * 3
    out = b"".join(e.payload for e in (ev for i in range(0, len(data), chunk)
                                       for ev in f.feed(data[i:i + chunk])))
    assert out == data
    assert all(astuple(e)[:2] == ("Data", 0) for e in f.feed(b"abc"))
