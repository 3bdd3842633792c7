"""Issue 8 finding 3: no buffered line ever exceeds max_line, whatever max_line.

A line start that may still become "+IPD," is held across feeds (at most 4
bytes) until the next bytes decide it.  With max_line < 4 the held start used
to grow past max_line: the compiled framer then computed a negative room and
wrote past its line buffer (heap-buffer-overflow), the twin returned a line
longer than max_line.  Both now cut it where one chunk would have.
"""
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framer.conftest import compiled_module, feed

ISSUE_REPRO = """
import importlib, sys
m = importlib.import_module(sys.argv[1])
f = m.Framer(max_line=2)
events = f.feed(b"+") + f.feed(b"IPD") + f.feed(b"A" * 100000 + b"\\n") + f.feed(b"OK\\n")
print([(type(e).__name__,) + tuple(getattr(e, n) for n in e._fields) for e in events])
"""


def test_the_issue_reproducer_is_cut_at_max_line(impl):
    # In a child process: a regression of the compiled framer is a memory error
    # that could take the test run down with it.
    proc = subprocess.run([sys.executable, "-c", ISSUE_REPRO, impl.__name__],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[('Garbage', b'+I', 'line too long'), ('Result', 'OK')]"


@pytest.mark.parametrize("max_line", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("stream", [
    b"+IPX" + b"A" * 50 + b"\nOK\n",     # not +IPD after all: a long line
    b"+IPD\nOK\n",                       # ends before the comma
    b"+I\nOK\n",
    b"+IPD,3:abc\r\nOK\r\n",             # a header even with a tiny max_line
    b"+IPD,1,2:xy+IPD,0:\nready\n",
])
def test_held_ipd_start_gives_the_same_events_under_every_split(impl, max_line, stream):
    whole = feed(impl.Framer(max_line=max_line), stream)
    for size in (1, 2, 3, 4):
        assert feed(impl.Framer(max_line=max_line), stream, [size]) == whole, size
    for ev in whole:
        if ev[0] == "Garbage" and ev[2] == "line too long":
            assert len(ev[1]) == max_line
        if ev[0] in ("Text", "Echo"):
            assert len(ev[1].encode("utf-8", "surrogateescape")) <= max_line


def test_a_header_is_recognised_whatever_max_line(impl):
    for split in (None, [1], [2], [3]):
        got = feed(impl.Framer(max_line=1, max_ipd=3), b"+IPD,0,3:abc", split)
        assert got == [("Data", 0, b"abc", None)], split


_token = st.sampled_from([b"+", b"I", b"P", b"D", b",", b"1", b":", b"\n", b"\r", b"A", b">",
                          b"+IPD,", b"OK", b"\x00"])


@settings(max_examples=300, deadline=None)
@given(tokens=st.lists(_token, max_size=40),
       cuts=st.lists(st.integers(1, 6), min_size=1, max_size=8),
       max_line=st.integers(1, 6), max_ipd=st.integers(1, 4))
def test_tiny_bounds_split_invariant_and_twins_agree(tokens, cuts, max_line, max_ipd):
    compiled = compiled_module()
    import wizsock._framer_py as pure
    stream = b"".join(tokens)
    whole = feed(pure.Framer(max_ipd=max_ipd, max_line=max_line), stream)
    assert feed(pure.Framer(max_ipd=max_ipd, max_line=max_line), stream, cuts) == whole
    assert feed(compiled.Framer(max_ipd=max_ipd, max_line=max_line), stream, cuts) == whole
    assert feed(compiled.Framer(max_ipd=max_ipd, max_line=max_line), stream) == whole
    for ev in whole:
        if ev[0] == "Garbage" and ev[2] in ("line too long", "control bytes"):
            assert len(ev[1]) <= max_line
        if ev[0] == "Data":
            assert len(ev[2]) <= max_ipd


@pytest.mark.parametrize("kw, exc", [
    ({"max_line": 0}, ValueError), ({"max_ipd": 0}, ValueError),
    ({"max_line": -1}, ValueError), ({"max_ipd": -(1 << 63)}, ValueError),
    ({"max_line": (1 << 30) + 1}, ValueError), ({"max_ipd": 1 << 64}, ValueError),
    ({"max_line": 1.5}, TypeError), ({"max_ipd": "8"}, TypeError), ({"max_line": None}, TypeError),
])
def test_constructor_limits_are_checked(impl, kw, exc):
    with pytest.raises(exc) as info:
        impl.Framer(**kw)
    if exc is ValueError:
        assert f"in 1..{impl.LIMIT_MAX}" in str(info.value)


def test_the_extremes_of_the_limits_are_accepted(impl):
    f = impl.Framer(max_ipd=impl.LIMIT_MAX, max_line=1)
    assert (f.max_ipd, f.max_line) == (1 << 30, 1)
    assert feed(f, b"x\nyy\n") == [("Text", "x"), ("Garbage", b"y", "line too long")]


def test_a_buffer_that_is_not_contiguous_is_refused_by_both(impl):
    with pytest.raises(BufferError):
        impl.Framer().feed(memoryview(b"O_K_\n_")[::2])
