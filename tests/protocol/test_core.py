"""Core behaviour of the codec: builders, the request parser, quoting, errors."""
import pytest

from wizsock import protocol as p
from wizsock.protocol import records as R

C = p.COMMANDS


def test_design_doc_example():
    req = C["CWJAP_CUR"].set(ssid="x", pwd='p"w', bssid=None)
    assert req.encode() == b'AT+CWJAP_CUR="x","p\\"w"\r\n'
    assert (req.name, req.form, req.params) == ("CWJAP_CUR", "set", {"ssid": "x", "pwd": 'p"w', "bssid": None})
    assert p.parse_request(b'AT+CWJAP_CUR="x","p\\"w"') == req


@pytest.mark.parametrize("line,name,form", [
    (b"AT", "", "execute"), (b"ATE0", "E0", "execute"), (b"ATE1\r\n", "E1", "execute"),
    (b"AT+RST", "RST", "execute"), (b"AT+GMR", "GMR", "execute"), (b"AT+CWMODE_CUR?", "CWMODE_CUR", "query"),
    (b"AT+CWMODE_DEF=?", "CWMODE_DEF", "test"), (b"AT+CWLAP", "CWLAP", "execute"),
    (b"AT+CIPSTATUS", "CIPSTATUS", "execute"), (b"AT+CIFSR", "CIFSR", "execute"),
    (b"AT+UART_CUR?", "UART_CUR", "query"),
])
def test_parse_forms(line, name, form):
    req = p.parse_request(line)
    assert (req.name, req.form) == (name, form)
    assert req.encode() == line.rstrip(b"\r\n") + b"\r\n"


def test_builders_for_every_form():
    assert C[""].execute().encode() == b"AT\r\n"
    assert C["E0"].execute().encode() == b"ATE0\r\n"
    assert C["CWMODE_CUR"].set(mode=3).encode() == b"AT+CWMODE_CUR=3\r\n"
    assert C["CWMODE_CUR"].query().encode() == b"AT+CWMODE_CUR?\r\n"
    assert C["CWMODE_CUR"].test().encode() == b"AT+CWMODE_CUR=?\r\n"
    assert C["CIPMUX"].set(mode=1).encode() == b"AT+CIPMUX=1\r\n"
    assert C["CIPDINFO"].set(mode=1).encode() == b"AT+CIPDINFO=1\r\n"
    assert C["UART_CUR"].set(baudrate=921600, databits=8, stopbits=1, parity=0, flow_control=1).encode() \
        == b"AT+UART_CUR=921600,8,1,0,1\r\n"
    assert C["CIPDOMAIN"].set(domain="www.wiznet.io").encode() == b'AT+CIPDOMAIN="www.wiznet.io"\r\n'


@pytest.mark.parametrize("kw,wire", [
    (dict(type="TCP", remote="192.168.1.99", port=5000), b'AT+CIPSTART="TCP","192.168.1.99",5000'),
    (dict(link=1, type="TCP", remote="10.0.0.1", port=80, keepalive=10), b'AT+CIPSTART=1,"TCP","10.0.0.1",80,10'),
    (dict(link=None, type="SSL", remote="www.wiznet.io", port=443), b'AT+CIPSTART="SSL","www.wiznet.io",443'),
    (dict(link=4, type="UDP", remote="h", port=0, local_port=6000, mode=2), b'AT+CIPSTART=4,"UDP","h",0,6000,2'),
])
def test_cipstart_variants(kw, wire):
    req = C["CIPSTART"].set(**kw)
    assert req.encode() == wire + b"\r\n"
    back = p.parse_request(wire)
    assert back == req
    assert back.link == kw.get("link")


def test_cipstart_rules():
    with pytest.raises(ValueError, match="'mode'.*'local_port' must be set first"):
        C["CIPSTART"].set(type="UDP", remote="h", port=1, mode=1)
    with pytest.raises(ValueError, match="'port'"):
        C["CIPSTART"].set(type="TCP", remote="h", port=0)     # TCP: [1, 65535]
    with pytest.raises(ValueError, match="'type'"):
        C["CIPSTART"].set(type="FOO", remote="h", port=1)
    with pytest.raises(ValueError, match="'link'"):
        C["CIPSTART"].set(link=5, type="TCP", remote="h", port=1)
    with pytest.raises(TypeError):
        C["CIPSTART"].set(type="TCP", remote="h", port=1, bogus=1)


def test_link_variants():
    assert C["CIPSEND"].set(link=0, length=1220).encode() == b"AT+CIPSEND=0,1220\r\n"
    assert C["CIPSEND"].set(link=None, length=1220).encode() == b"AT+CIPSEND=1220\r\n"
    assert C["CIPSEND"].execute().encode() == b"AT+CIPSEND\r\n"
    assert C["CIPCLOSE"].set(link=None).encode() == b"AT+CIPCLOSE\r\n"
    assert C["CIPCLOSE"].set(link=5).encode() == b"AT+CIPCLOSE=5\r\n"
    assert p.parse_request(b"AT+CIPSEND=0,1220").params == {"link": 0, "length": 1220, "remote": None, "port": None}
    assert p.parse_request(b"AT+CIPSEND=1220").params == {"length": 1220, "remote": None, "port": None, "link": None}
    with pytest.raises(ValueError, match="together"):
        C["CIPSEND"].set(length=5, remote="1.2.3.4")


@pytest.mark.parametrize("bad", [
    b"AT+NOPE", b"at+rst", b"AT+CWMODE_CUR=4", b"AT+CWMODE_CUR=1,2", b'AT+CWMODE_CUR="1"', b"AT+CWMODE_CUR=",
    b'AT+CWJAP_CUR="x', b'AT+CWJAP_CUR=x,y', b"ATE2", b"AT+RST\r\nAT+RST", b"XAT", b"AT+CIPSTART=1",
])
def test_malformed_requests(bad):
    with pytest.raises(p.RequestError):
        p.parse_request(bad)


def test_unknown_is_request_error():
    with pytest.raises(p.UnknownCommand):
        p.parse_request(b"AT+FOO=1")
    assert issubclass(p.RequestError, ValueError)


@pytest.mark.parametrize("kw,param", [
    (dict(ssid="a\rb", pwd="x"), "ssid"), (dict(ssid="a\nb", pwd="x"), "ssid"), (dict(ssid="a\0", pwd="x"), "ssid"),
    (dict(ssid="s", pwd="a\r\nAT+RST"), "pwd"), (dict(ssid="x" * 33, pwd=""), "ssid"),
    (dict(ssid="x", pwd="p" * 65), "pwd"), (dict(ssid="", pwd="x"), "ssid"),
    (dict(ssid="x", pwd="y", bssid="00:11"), "bssid"), (dict(ssid=5, pwd="y"), "ssid"),
    (dict(ssid="x", pwd="\udcff"), "pwd"),
])
def test_unsafe_values_name_the_parameter(kw, param):
    with pytest.raises(ValueError, match=repr(param)):
        C["CWJAP_DEF"].set(**kw)


def test_limits_in_bytes_not_characters():
    C["CWJAP_CUR"].set(ssid="é" * 16, pwd="")
    with pytest.raises(ValueError, match="'ssid'"):
        C["CWJAP_CUR"].set(ssid="é" * 17, pwd="")


def test_format_ipd():
    assert p.format_ipd(0, b"12345", mux=False) == b"+IPD,5:12345"
    assert p.format_ipd(1, b"12345", ("192.168.0.10", 50000)) == b'+IPD,1,5,"192.168.0.10",50000:12345'
    assert p.format_ipd(2, b"a\r\nOK\r\n") == b"+IPD,2,7:a\r\nOK\r\n"
    with pytest.raises(ValueError, match="link"):
        p.format_ipd(7, b"x")


def test_redact():
    assert p.redact(b'AT+CWJAP_CUR="x","secret"\r\n') == b'AT+CWJAP_CUR="x","***"\r\n'
    assert p.redact(b'AT+CWJAP_DEF="x","se\\"c,ret","00:08:DC:11:12:13"') == b'AT+CWJAP_DEF="x","***","00:08:DC:11:12:13"'
    assert p.redact(b'+CWSAP_CUR:"WizFi360","12345678",5,3,4,0') == b'+CWSAP_CUR:"WizFi360","***",5,3,4,0'
    assert p.redact(b'AT+MQTTSET="u","pw","id",60') == b'AT+MQTTSET="***","***","id",60'
    assert p.redact(b'AT+AZSET="hub","dev","SharedAccessKey"') == b'AT+AZSET="hub","dev","***"'
    assert p.redact(b"password:1234567890") == b"password:***"
    assert p.redact(b"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC") == b"***"
    assert p.redact(b'AT+CWJAP_CUR="x","unterminated') == b"AT+CWJAP_CUR=***"
    # AT+MQTTSET? prints a bare line: masked when the caller says which command it answers
    assert p.redact(b'"wiznet","12345678","wiznet-01",60', command="MQTTSET") == b'"***","***","wiznet-01",60'
    assert p.redact(b'"wiznet","12345678","wiznet-01",60') == b'"wiznet","12345678","wiznet-01",60'
    assert p.redact(b"+CWMODE_CUR:1", command="MQTTSET") == b"+CWMODE_CUR:1"
    # a known command is judged by the table, even when its letters could be base64
    for plain in (b"AT+CIPSTART=1,\"TCP\",\"h\",80", b"+IPD,1,5:hello", b"OK", b"+CWJAP_CUR:2",
                  b"AT+CIPSSLSIZE=4096"):
        assert p.redact(plain) == plain


def test_response_records():
    ap = C["CWJAP_CUR"].parse_response("query", ['+CWJAP_CUR:"WIZNETSZ","00:08:dc:9c:ef:b6",12,-75'])
    assert ap == R.JoinedAp("WIZNETSZ", "00:08:dc:9c:ef:b6", 12, -75)
    fail = C["CWJAP_CUR"].parse_response("set", ["+CWJAP_CUR:2"])
    assert fail == R.JoinFailure(2) and fail.meaning == "wrong password" == p.CWJAP_ERRORS[2]
    assert C["CWJAP_CUR"].parse_response("set", []) is None
    assert C["CWJAP_CUR"].parse_response("query", ["No AP"]) is None
