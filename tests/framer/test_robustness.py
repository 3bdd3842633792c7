"""Garbage, bounded memory, raw mode, reset, input types and the event objects."""
import gc
import os
import subprocess
import sys
import tracemalloc

import pytest

from wizsock.framer import astuple


def test_control_bytes_are_garbage_and_the_next_line_is_read(impl, run):
    assert run(impl, b"\x00\x13\xfe boot noise\x1b[0m\r\nready\r\n") == [
        ("Garbage", b"\x00\x13\xfe boot noise\x1b[0m", "control bytes"), ("Ready",)]
    # a CR that is not trailing is a control byte too
    assert run(impl, b"O\rK\r\n") == [("Garbage", b"O\rK", "control bytes")]


def test_over_long_line_is_cut_at_max_line(impl, run):
    stream = b"x" * 100 + b"\r\nOK\r\n"
    expected = [("Garbage", b"x" * 16, "line too long"), ("Result", "OK")]
    assert run(impl, stream, max_line=16) == expected
    assert run(impl, stream, [1], max_line=16) == expected
    assert run(impl, stream, [7, 3], max_line=16) == expected
    # exactly max_line bytes (trailing CRs count) is still a line
    assert run(impl, b"y" * 15 + b"\r\n", max_line=16) == [("Text", "y" * 15)]
    assert run(impl, b"y" * 16 + b"\r\n", max_line=16) == [("Garbage", b"y" * 16, "line too long")]


def test_wrong_baud_rate_noise_never_hangs_and_resyncs(impl):
    # bytes of a 74880-baud boot log read at 115200: everything but a LF
    noise = bytes(b for b in range(256) if b != 10) * 40
    f = impl.Framer(max_line=256)
    events = f.feed(noise)
    assert events and all(type(e).__name__ == "Garbage" for e in events)
    assert [astuple(e) for e in f.feed(b"\nOK\r\n")] == [("Result", "OK")]


def test_garbage_payload_is_never_waited_for_beyond_max_ipd(impl, run):
    # A corrupted length can not make the framer swallow more than max_ipd bytes.
    events = run(impl, b"+IPD,0,99999999:" + b"OK\r\n" * 3, max_ipd=8192)
    assert events == [("Garbage", b"+IPD,0,99999999:", "+IPD length > max_ipd"),
                      ("Result", "OK"), ("Result", "OK")]


def _growth(impl, chunks, **kwargs):
    f = impl.Framer(**kwargs)
    tracemalloc.start()
    try:
        f.feed(chunks[0])
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        peak = 0
        for chunk in chunks:
            f.feed(chunk)
            peak = max(peak, tracemalloc.get_traced_memory()[0] - base)
        return peak
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", ["no-lf", "ipd-header", "payload", "lines"])
def test_memory_is_bounded(impl, kind):
    chunk = {
        "no-lf": b"z" * 4096,                      # one endless line
        "ipd-header": b"+IPD," + b"9" * 4091,      # an endless header, resent
        "payload": b"+IPD,0,8192:" + b"p" * 4084,  # frames that keep arriving
        "lines": b"+CWLAP:(3,\"x\",-50)\r\n" * 200,
    }[kind]
    # 1 MiB through the framer may not hold more than its bounds (+ one chunk's events)
    growth = _growth(impl, [chunk] * 256, max_line=1024, max_ipd=8192)
    assert growth < 64 * 1024, growth


def test_raw_mode_every_byte_is_data(impl):
    f = impl.Framer()
    f.raw = True
    assert f.raw is True
    stream = b"+IPD,0,5:\r\nOK\r\n> \x00"
    assert [astuple(e) for e in f.feed(stream)] == [("Data", 0, stream, None)]
    assert [astuple(e) for e in f.feed(bytearray(b"\n"))] == [("Data", 0, b"\n", None)]
    assert f.feed(b"") == []
    f.raw = False
    assert [astuple(e) for e in f.feed(b"OK\r\n")] == [("Result", "OK")]


def test_switching_mode_is_a_frame_boundary(impl):
    f = impl.Framer()
    f.feed(b"+IPD,0,10:abc")        # a frame left half done ...
    f.raw = True
    assert [astuple(e) for e in f.feed(b"defghij")] == [("Data", 0, b"defghij", None)]
    f.feed(b"half a li")
    f.raw = False                   # ... and a raw tail are both forgotten
    assert [astuple(e) for e in f.feed(b"OK\r\n")] == [("Result", "OK")]


def test_reset_forgets_partial_frames(impl):
    for partial in (b"+IPD,0,10:abc", b"+IPD,0,1", b"+IP", b"OK", b">", b"\x00garbage"):
        f = impl.Framer()
        f.feed(partial)
        f.reset()
        assert [astuple(e) for e in f.feed(b"\r\nready\r\n")] == [("Ready",)], partial


@pytest.mark.parametrize("make", [bytes, bytearray, memoryview,
                                  lambda b: memoryview(b"--" + b + b"--")[2:-2],
                                  lambda b: memoryview(bytearray(b))],
                         ids=["bytes", "bytearray", "memoryview", "memoryview-slice", "mv-bytearray"])
def test_any_bytes_like_input(impl, make):
    stream = b'OK\r\n+IPD,1,4,"1.2.3.4",5:ab\r\n+IPD,0,2:xy> '
    expected = [("Result", "OK"), ("Data", 1, b"ab\r\n", ("1.2.3.4", 5)),
                ("Data", 0, b"xy", None), ("Prompt",)]
    f = impl.Framer()
    got = []
    for i in range(0, len(stream), 3):
        got += f.feed(make(stream[i:i + 3]))
    assert [astuple(e) for e in got] == expected
    assert all(type(e.payload) is bytes for e in got if type(e).__name__ == "Data")


def test_caller_may_reuse_its_buffer_at_once(impl):
    # Nothing of the caller's buffer is held after feed(): a reused, resized
    # bytearray neither raises BufferError nor changes an event.
    f = impl.Framer()
    buf = bytearray(b"+IPD,0,6:abc")
    assert f.feed(buf) == []
    buf[:] = b"XYZ"                  # would raise BufferError if still exported
    buf.extend(b"\r\n")
    (ev,) = f.feed(buf[:3])
    buf[:] = b"\x00" * 6
    assert ev.payload == b"abcXYZ"
    f.raw = True
    buf[:] = b"raw"
    (ev,) = f.feed(buf)
    buf[:] = b"???"
    assert ev.payload == b"raw"


def test_events_are_values(impl):
    m = impl
    ev = m.Data(1, b"x", ("1.2.3.4", 80))
    assert ev == m.Data(1, b"x", ("1.2.3.4", 80)) and ev != m.Data(2, b"x", None)
    assert hash(ev) == hash(m.Data(1, b"x", ("1.2.3.4", 80)))
    assert ev != ("Data", 1, b"x", ("1.2.3.4", 80))
    assert repr(ev) == "Data(link=1, payload=b'x', remote=('1.2.3.4', 80))"
    assert repr(m.Prompt()) == "Prompt()" and m.Prompt() == m.Prompt()
    assert m.Result("OK") != m.Text("OK")
    with pytest.raises(AttributeError):
        ev.link = 3
    samples = [m.Data(0, b"", None), m.Prompt(), m.Result("OK"), m.Busy("p"), m.Recv(1),
               m.SendBufAck(None, 1), m.Ready(), m.LinkEvent(0, "CLOSED"), m.Wifi("GOT IP"),
               m.Info("X", None), m.Subscription("t", b"d"), m.Text("t"), m.Echo("AT"),
               m.Garbage(b"\x00", "control bytes")]
    assert [astuple(e)[0] for e in samples] == [
        "Data", "Prompt", "Result", "Busy", "Recv", "SendBufAck", "Ready", "LinkEvent", "Wifi",
        "Info", "Subscription", "Text", "Echo", "Garbage"]
    assert astuple(m.Info("CWJAP", "1")) == ("Info", "CWJAP", "1")


def test_bad_bounds_are_refused(impl):
    with pytest.raises(ValueError):
        impl.Framer(max_line=0)
    with pytest.raises(ValueError):
        impl.Framer(max_ipd=0)
    with pytest.raises(TypeError):
        impl.Framer(max_line=10.5)
    f = impl.Framer(max_ipd=100, max_line=200)
    assert (f.max_ipd, f.max_line) == (100, 200)
    with pytest.raises(AttributeError):
        f.max_line = 10**9      # the compiled line buffer is sized by it


@pytest.mark.parametrize("bad", ["OK\r\n", 5, None, [79, 75]])
def test_non_bytes_input_is_a_type_error(impl, bad):
    with pytest.raises(TypeError):
        impl.Framer().feed(bad)


def test_facade_exports_the_contract():
    import wizsock.framer as fr
    for name in ("Framer", "COMPILED", "astuple", "Data", "Prompt", "Result", "Busy", "Recv",
                 "SendBufAck", "Ready", "LinkEvent", "Wifi", "Info", "Subscription", "Text",
                 "Echo", "Garbage"):
        assert hasattr(fr, name), name
    impl = sys.modules["wizsock._framer" if fr.COMPILED else "wizsock._framer_py"]
    assert fr.Framer is impl.Framer and fr.Data is impl.Data


def _compiled_flag(env_value, prelude=""):
    env = dict(os.environ)
    env.pop("WIZSOCK_NO_EXTENSIONS", None)
    if env_value is not None:
        env["WIZSOCK_NO_EXTENSIONS"] = env_value
    code = prelude + "import wizsock.framer as f; print(f.COMPILED, f.Framer.__module__)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.split()


def test_env_switch_selects_the_twin(both):
    assert _compiled_flag("1") == ["False", "wizsock._framer_py"]
    assert _compiled_flag(None) == ["True", "wizsock._framer"]


def test_an_unbuilt_extension_falls_back_to_the_twin():
    # sys.modules[name] = None makes the import fail as if the .so were absent.
    blocked = "import sys; sys.modules['wizsock._framer'] = None; "
    assert _compiled_flag(None, blocked) == ["False", "wizsock._framer_py"]


def test_compiled_flag_matches_this_process():
    import wizsock.framer as fr
    assert fr.COMPILED == (not os.environ.get("WIZSOCK_NO_EXTENSIONS")
                           and sys.modules.get("wizsock._framer") is not None
                           and fr.Framer is sys.modules["wizsock._framer"].Framer)
