"""Whatever arrives, the codec answers with a value or a ValueError, never anything else."""
from hypothesis import given, settings
from hypothesis import strategies as st

from wizsock import protocol as p

NAMES = sorted(p.COMMANDS) + sorted(p.ALIASES)
PIECES = st.sampled_from(['"', ",", "\\", "?", "=", "AT", "AT+", "+", ":", "(", ")", "0", "1", "-1", "99999999999",
                          " ", "\r", "\n", "\0", "é", "\udcff", "TRUE", "ip", "APIP", "STATUS", "<1>", "\x1b"])


@st.composite
def command_lines(draw):
    name = draw(st.sampled_from(NAMES))
    tail = draw(st.lists(st.one_of(PIECES, st.text(max_size=3)), max_size=10).map("".join))
    return ("AT+" + name + tail).encode("utf-8", "surrogateescape")


@settings(max_examples=400, deadline=None)
@given(st.one_of(command_lines(), st.binary(max_size=40)))
def test_parse_request_total(line):
    try:
        req = p.parse_request(line)
    except ValueError:
        return
    wire = req.encode()
    assert wire.count(b"\r\n") == 1 and wire.endswith(b"\r\n")
    assert p.parse_request(wire) == req


RESPONSE_FORMS = [(n, f) for n, s in p.COMMANDS.items() for f, form in s.forms.items() if form.response is not None]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(RESPONSE_FORMS),
       st.lists(st.one_of(st.builds(lambda n, t: "+" + n + t, st.sampled_from(NAMES),
                                    st.lists(PIECES, max_size=8).map("".join)),
                          st.lists(PIECES, max_size=8).map("".join)), max_size=4),
       st.one_of(st.none(), st.integers(0, 2047)))
def test_parse_response_total(name_form, lines, mask):
    name, form = name_form
    try:
        p.COMMANDS[name].parse_response(form, lines, mask=mask)
    except ValueError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_redact_total(line):
    out = p.redact(line)
    assert isinstance(out, bytes)
    assert out.endswith(line[len(line.rstrip(b"\r\n")):])
