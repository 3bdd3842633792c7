"""raw_on_prompt: the Prompt of a passthrough AT+CIPSEND switches to raw mode in place.

Network bytes can share a UART read with the ``>``; switching ``raw`` after
seeing the event would parse them as lines.  Both framers, every split.
"""
import pytest

from wizsock.framer import astuple

# Bytes that would be lines, frames or a prompt if they were parsed.
PAYLOAD = b"OK\r\n+IPD,0,3:abc>ready\r\n\x00CLOSED\r\n> x\r\n"


def _events(framer, chunks):
    out = []
    for chunk in chunks:
        out += [astuple(ev) for ev in framer.feed(chunk)]
    return out


def _joined(events):
    """Merge consecutive Data(0) events (raw data may come in any number of pieces)."""
    out = []
    for ev in events:
        if ev[0] == "Data" and out and out[-1][0] == "Data":
            out[-1] = ("Data", 0, out[-1][2] + ev[2], None)
        else:
            out.append(ev)
    return out


def test_default_is_off_and_the_attribute_is_a_bool(impl):
    f = impl.Framer()
    assert f.raw_on_prompt is False
    f.raw_on_prompt = 1
    assert f.raw_on_prompt is True


@pytest.mark.parametrize("space", [b"", b" "])
def test_prompt_and_data_in_one_chunk(impl, space):
    f = impl.Framer()
    f.raw_on_prompt = True
    events = _events(f, [b"AT+CIPSEND\r\n\r\nOK\r\n>" + space + PAYLOAD])
    assert events == [("Echo", "AT+CIPSEND"), ("Result", "OK"), ("Prompt",),
                      ("Data", 0, PAYLOAD, None)]
    assert f.raw is True and f.raw_on_prompt is False


@pytest.mark.parametrize("space", [b"", b" "])
def test_split_at_every_point(impl, space):
    stream = b"OK\r\n>" + space + PAYLOAD
    expected = [("Result", "OK"), ("Prompt",), ("Data", 0, PAYLOAD, None)]
    for i in range(len(stream) + 1):
        for j in range(i, min(len(stream), i + 3) + 1):
            f = impl.Framer()
            f.raw_on_prompt = True
            events = _events(f, [c for c in (stream[:i], stream[i:j], stream[j:]) if c])
            assert _joined(events) == expected, (i, j)
            assert f.raw is True and f.raw_on_prompt is False


def test_raw_is_on_when_the_prompt_is_returned(impl):
    f = impl.Framer()
    f.raw_on_prompt = True
    assert _events(f, [b">"]) == [("Prompt",)]
    assert f.raw is True and f.raw_on_prompt is False
    # the optional space is swallowed in the next chunk, and only one
    assert _events(f, [b" "]) == []
    assert _events(f, [b" OK\r\n"]) == [("Data", 0, b" OK\r\n", None)]


def test_only_the_first_space_is_swallowed_in_one_chunk(impl):
    f = impl.Framer()
    f.raw_on_prompt = True
    assert _events(f, [b">  x"]) == [("Prompt",), ("Data", 0, b" x", None)]


def test_not_consumed_before_a_prompt(impl):
    # lines, frames and URCs before the prompt are parsed as usual
    f = impl.Framer()
    f.raw_on_prompt = True
    assert _events(f, [b"+IPD,0,2:>x", b"OK\r\n"]) == [("Data", 0, b">x", None), ("Result", "OK")]
    assert f.raw is False and f.raw_on_prompt is True
    assert _events(f, [b"> ", b"y"]) == [("Prompt",), ("Data", 0, b"y", None)]


def test_without_the_option_a_prompt_stays_a_prompt(impl):
    f = impl.Framer()
    assert _events(f, [b"> OK\r\n"]) == [("Prompt",), ("Result", "OK")]
    assert f.raw is False


def test_leaving_raw_after_the_switch(impl):
    # the +++ exit: the engine sets raw = False and the framer reads lines again
    f = impl.Framer()
    f.raw_on_prompt = True
    _events(f, [b">"])
    f.raw = False
    assert _events(f, [b"OK\r\n"]) == [("Result", "OK")]
    assert f.raw_on_prompt is False


def test_reset_and_raw_leave_the_option_alone(impl):
    f = impl.Framer()
    f.raw_on_prompt = True
    f.reset()
    f.raw = False
    assert f.raw_on_prompt is True
    f.raw_on_prompt = False
    assert _events(f, [b">x\r\n"]) == [("Prompt",), ("Text", "x")]


def test_other_buffer_types(impl):
    f = impl.Framer()
    f.raw_on_prompt = True
    assert _events(f, [bytearray(b"> ab")]) == [("Prompt",), ("Data", 0, b"ab", None)]
    f = impl.Framer()
    f.raw_on_prompt = True
    assert _events(f, [memoryview(b">"), memoryview(b" cd")]) == [("Prompt",), ("Data", 0, b"cd", None)]


def test_both_framers_agree(both):
    compiled, pure = both
    stream = b"busy p...\r\nOK\r\n> " + PAYLOAD
    for size in (1, 2, 3, 7, len(stream)):
        chunks = [stream[i:i + size] for i in range(0, len(stream), size)]
        results = []
        for mod in (compiled, pure):
            f = mod.Framer()
            f.raw_on_prompt = True
            results.append(_events(f, chunks))
        assert results[0] == results[1]
