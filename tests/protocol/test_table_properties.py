"""Generic properties over the whole command table: round trips, injection
safety, ranges and lengths of every parameter."""
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from wizsock import protocol as p
from wizsock.protocol.grammar import Int, Str

from protocol.tablegen import all_sigs, record_strategy, sample, sample_values, sig_values

SIGS = list(all_sigs("set"))
IDS = [f"{n}-{i}" for n, _, i, _ in SIGS]
PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much,
                                                                       HealthCheck.too_slow])


def assert_one_line(wire: bytes):
    assert wire.endswith(b"\r\n")
    assert wire.count(b"\r") == 1 and wire.count(b"\n") == 1, wire
    assert b"\0" not in wire


@pytest.mark.parametrize("name,form,i,sig", SIGS, ids=IDS)
@PROPS
@given(data=st.data())
def test_every_signature_round_trips(name, form, i, sig, data):
    values = data.draw(sig_values(sig))
    spec = p.COMMANDS[name]
    try:
        req = spec.request(form, **values)
    except p.RequestError:
        assume(False)  # a cross-parameter rule (together, check) refused this combination
    wire = req.encode()
    assert_one_line(wire)
    back = p.parse_request(wire)
    assert back == req
    assert back.encode() == wire
    if "link" in spec.forms[form].names:
        assert p.parse_request(wire, mux=req.link is not None) == req
        with pytest.raises(p.RequestError):
            p.parse_request(wire, mux=req.link is None)


STRING_PARAMS = [(n, f, i, sig, q) for n, f, i, sig in SIGS for q in sig.params if isinstance(q, Str)]


@pytest.mark.parametrize("name,form,i,sig,param", STRING_PARAMS,
                         ids=[f"{n}-{i}-{q.name}" for n, _, i, _, q in STRING_PARAMS])
@PROPS
@given(data=st.data())
def test_no_injection_through_any_string(name, form, i, sig, param, data):
    """Whatever string a caller passes: refused with a ValueError naming the
    parameter, or encoded as one command that parses back to the same value."""
    evil = data.draw(st.lists(st.sampled_from(['"', ",", "\\", "\r", "\n", "\0", "\r\nAT+RST\r\n", "a", "\u00e9",
                                               "\x1b", "\x7f", " ", "?", "=", "1"]), max_size=12).map("".join))
    upto = sig.params.index(param)
    values = sample_values(sig, upto)
    values[param.name] = evil
    spec = p.COMMANDS[name]
    try:
        req = spec.request(form, **values)
    except ValueError as e:
        if any(c in evil for c in "\r\n\0\x1b\x7f"):
            assert repr(param.name) in str(e)
        return
    assert not any(c in evil for c in "\r\n\0\x1b\x7f")
    wire = req.encode()
    assert_one_line(wire)
    assert p.parse_request(wire).params[param.name] == evil


RANGED = [(n, f, i, sig, q) for n, f, i, sig in SIGS for q in sig.params
          if isinstance(q, Int) and (q.lo is not None or q.hi is not None or q.choices)]


@pytest.mark.parametrize("name,form,i,sig,param", RANGED, ids=[f"{n}-{i}-{q.name}" for n, _, i, _, q in RANGED])
def test_every_number_range(name, form, i, sig, param):
    spec = p.COMMANDS[name]
    values = sample_values(sig, len(sig.params))   # every optional one too: cross rules hold
    if param.choices:
        inside = list(param.choices)
        outside = [max(param.choices) + 1, min(param.choices) - 1]
    else:
        inside = [v for v in (param.lo, param.hi) if v is not None]
        outside = [v for v in (None if param.lo is None else param.lo - 1,
                               None if param.hi is None else param.hi + 1) if v is not None]
    for v in inside:
        spec.request(form, **{**values, param.name: v}).encode()
    for v in outside:
        with pytest.raises(ValueError, match=repr(param.name)):
            spec.request(form, **{**values, param.name: v})
        wire = spec.request(form, **{**values, param.name: sample(param)}).encode()
        bad = wire.replace(str(sample(param)).encode(), str(v).encode())
        if bad != wire and wire.count(str(sample(param)).encode()) == 1:
            with pytest.raises(p.RequestError):
                p.parse_request(bad)
    with pytest.raises(ValueError, match=repr(param.name)):
        spec.request(form, **{**values, param.name: True})   # bool is not a number here
    with pytest.raises(ValueError, match=repr(param.name)):
        spec.request(form, **{**values, param.name: "1"})


LENGTHS = [(n, f, i, sig, q) for n, f, i, sig in SIGS for q in sig.params
           if isinstance(q, Str) and q.max_len is not None and q.pattern is None and not q.choices]


@pytest.mark.parametrize("name,form,i,sig,param", LENGTHS, ids=[f"{n}-{i}-{q.name}" for n, _, i, _, q in LENGTHS])
def test_every_string_length(name, form, i, sig, param):
    spec = p.COMMANDS[name]
    values = sample_values(sig, len(sig.params))
    spec.request(form, **{**values, param.name: "y" * param.max_len}).encode()
    with pytest.raises(ValueError, match=repr(param.name)):
        spec.request(form, **{**values, param.name: "y" * (param.max_len + 1)})
    with pytest.raises(ValueError, match=repr(param.name)):   # bytes, not characters
        spec.request(form, **{**values, param.name: "\u00e9" * (param.max_len // 2 + 1)})


def test_spec_bounds_are_the_documented_ones():
    C = p.COMMANDS

    def param(name, pname, form="set"):
        return next(q for s in C[name].forms[form].sigs for q in s.params if q.name == pname)

    assert param("CWJAP_CUR", "ssid").max_len == 32
    assert param("CWJAP_DEF", "pwd").max_len == 64
    assert param("CWSAP_CUR", "ssid").max_len == 32
    assert param("CIPDOMAIN", "domain").max_len == 63                 # "less than 64 bytes"
    assert param("CWHOSTNAME", "hostname").max_len == 32
    assert param("CWCOUNTRY_CUR", "country_code").max_len == 3
    for pname in ("username", "password", "client_id"):
        assert param("MQTTSET", pname).max_len == 50
    assert (param("MQTTSET", "alive_time").lo, param("MQTTSET", "alive_time").hi) == (30, 300)
    assert (param("GSLP", "time").lo, param("GSLP", "time").hi) == (1000, 65535)
    assert (param("CIPSSLSIZE", "size").lo, param("CIPSSLSIZE", "size").hi) == (2048, 4096)
    assert (param("CIPSTO", "time").lo, param("CIPSTO", "time").hi) == (0, 7200)
    assert (param("CWDHCPS_CUR", "lease_time").lo, param("CWDHCPS_CUR", "lease_time").hi) == (1, 2880)
    assert (param("CIPSNTPCFG", "timezone").lo, param("CIPSNTPCFG", "timezone").hi) == (-11, 13)
    assert param("CIPSEND", "length").hi == 2048
    assert param("CIPCLOSE", "link").hi == 5 and param("CIPSTART", "link").hi == 4
    assert 115200 in param("UART_CUR", "baudrate").choices and 2000000 in param("UART_DEF", "baudrate").choices


# ---------------------------------------------------------------------------- responses

RESPONSES = [(n, f, form.response) for n, spec in p.COMMANDS.items() for f, form in spec.forms.items()
             if form.response is not None]


@pytest.mark.parametrize("name,form,shape", RESPONSES, ids=[f"{n}-{f}" for n, f, _ in RESPONSES])
@PROPS
@given(data=st.data())
def test_every_response_round_trips(name, form, shape, data):
    """Any record the module can print is printed as safe lines and parses back equal."""
    opts = {}
    record = data.draw(record_strategy(shape, opts))
    spec = p.COMMANDS[name]
    lines = spec.format_response(form, record, **opts)
    for line in lines:
        assert b"\r" not in line and b"\n" not in line and b"\0" not in line
    assert spec.parse_response(form, lines, **opts) == record
