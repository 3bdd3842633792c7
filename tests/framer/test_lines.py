"""Line classification: every row of the event table in docs/design.md section 1."""
import pytest

# (what the module prints, the event it must become); every line is also fed
# with the other line ends the firmware uses.
LINES = [
    # final results
    *[(code.encode(), ("Result", code)) for code in (
        "OK", "ERROR", "FAIL", "SEND OK", "SEND FAIL", "ALREADY CONNECTED", "DNS Fail",
        "CONNECT FAIL", "NOT GPIO MODE!", "NOT OUTPUT MODE!", "link is not valid", "CLOSE")],
    (b"busy p...", ("Busy", "p")),
    (b"busy s...", ("Busy", "s")),
    (b"busy", ("Busy", "")),
    (b"busyness", ("Text", "busyness")),
    (b"Recv 5 bytes", ("Recv", 5)),
    (b"Recv 2048 bytes", ("Recv", 2048)),
    (b"Recv bytes", ("Text", "Recv bytes")),
    (b"Recv x bytes", ("Text", "Recv x bytes")),
    (b"Recv 1234567890 bytes", ("Text", "Recv 1234567890 bytes")),
    (b"3,SEND OK", ("SendBufAck", None, 3)),
    (b"1,3,SEND OK", ("SendBufAck", 1, 3)),
    (b"1,3,SEND FAIL", ("Text", "1,3,SEND FAIL")),
    (b"ready", ("Ready",)),
    (b"0,CONNECT", ("LinkEvent", 0, "CONNECT")),
    (b"4,CLOSED", ("LinkEvent", 4, "CLOSED")),
    (b"2,CONNECT FAIL", ("LinkEvent", 2, "CONNECT FAIL")),
    (b"1, CONNECT", ("LinkEvent", 1, "CONNECT")),  # as the spec's message table writes it
    (b"CONNECT", ("LinkEvent", None, "CONNECT")),
    (b"CLOSED", ("LinkEvent", None, "CLOSED")),
    (b"0,CONNECTED", ("Text", "0,CONNECTED")),
    (b"12", ("Text", "12")),
    (b"WIFI CONNECTED", ("Wifi", "CONNECTED")),
    (b"WIFI GOT IP", ("Wifi", "GOT IP")),
    (b"WIFI DISCONNECT", ("Wifi", "DISCONNECT")),
    (b"WiFi DISCONNECTED", ("Wifi", "DISCONNECT")),
    (b"wifi got ip", ("Text", "wifi got ip")),
    (b"WIFI LOST", ("Text", "WIFI LOST")),
    (b"+CWJAP:1", ("Info", "CWJAP", "1")),
    (b'+CIFSR:STAIP,"192.168.10.2"', ("Info", "CIFSR", 'STAIP,"192.168.10.2"')),
    (b"+STA_CONNECTED: 00:08:dc:00:00:01", ("Info", "STA_CONNECTED", " 00:08:dc:00:00:01")),
    (b'+DIST_STA_IP:"a:b",x:y', ("Info", "DIST_STA_IP", '"a:b",x:y')),
    (b"+CWJAP:", ("Info", "CWJAP", "")),
    (b"+52", ("Info", "52", None)),
    (b"+timeout", ("Info", "timeout", None)),
    (b"+IPD", ("Info", "IPD", None)),
    (b"+", ("Text", "+")),
    (b"+:x", ("Text", "+:x")),
    (b"AT", ("Echo", "AT")),
    (b"ATE0", ("Echo", "ATE0")),
    (b'AT+CWJAP_CUR="ssid","pw"', ("Echo", 'AT+CWJAP_CUR="ssid","pw"')),
    (b"AT version:1.1.1.7(Jul 18 2022)", ("Text", "AT version:1.1.1.7(Jul 18 2022)")),
    (b"ATtiny", ("Text", "ATtiny")),
    (b"topic/a -> Hello Wiznet!", ("Subscription", "topic/a", b"Hello Wiznet!")),
    (b"devices/w/messages/devicebound/%24.mid=t &%24.to=x -> a -> b",
     ("Subscription", "devices/w/messages/devicebound/%24.mid=t &%24.to=x", b"a -> b")),
    (b" -> x", ("Text", " -> x")),
    (b"t -> ", ("Subscription", "t", b"")),
    (b"STATUS:3", ("Text", "STATUS:3")),
    (b"-----BEGIN CERTIFICATE-----", ("Text", "-----BEGIN CERTIFICATE-----")),
    (b"smartconfig type:ESPTOUCH", ("Text", "smartconfig type:ESPTOUCH")),
    (b"OK ", ("Text", "OK ")),
    (b"ok", ("Text", "ok")),
    (b"\tindented\t", ("Text", "\tindented\t")),
    # text is UTF-8, and anything else survives losslessly as surrogates
    ("caf\u00e9 \u2603".encode(), ("Text", "caf\u00e9 \u2603")),
    (b"\xff\xferaw", ("Text", "\udcff\udcferaw")),
    (b"+CWLAP:(3,\"\xc3\xa9\xff\")", ("Info", "CWLAP", "(3,\"\u00e9\udcff\")")),
]


@pytest.mark.parametrize("ending", [b"\r\n", b"\n", b"\r\r\n"], ids=["crlf", "lf", "crcrlf"])
@pytest.mark.parametrize("line,expected", LINES, ids=[repr(l[0])[:40] for l in LINES])
def test_line(impl, run, line, expected, ending):
    assert run(impl, line + ending) == [expected]


def test_every_line_in_one_stream_one_byte_at_a_time(impl, run):
    stream = b"".join(line + b"\r\n" for line, _ in LINES)
    assert run(impl, stream, [1]) == [expected for _, expected in LINES]


def test_result_codes_are_the_contract(impl):
    assert set(impl.RESULT_CODES) == {
        "OK", "ERROR", "FAIL", "SEND OK", "SEND FAIL", "ALREADY CONNECTED", "DNS Fail",
        "CONNECT FAIL", "NOT GPIO MODE!", "NOT OUTPUT MODE!", "link is not valid", "CLOSE"}


def test_empty_lines_and_bare_crs_give_nothing(impl, run):
    assert run(impl, b"\r\n\n\r\r\n\r\r\r\nOK\r\n\r\n") == [("Result", "OK")]


def test_a_line_waits_for_its_lf(impl):
    f = impl.Framer()
    assert f.feed(b"OK\r") == []
    assert f.feed(b"\r") == []
    assert [type(e).__name__ for e in f.feed(b"\n")] == ["Result"]


def test_ate1_session(impl, run):
    # With echo on the module repeats each command before answering it.
    stream = (b"AT+CIPMUX=1\r\r\n\r\nOK\r\n"
              b"AT+CIPSTART=0,\"TCP\",\"10.0.0.1\",80\r\r\n0,CONNECT\r\n\r\nOK\r\n"
              b"AT+CIPSEND=0,5\r\r\n\r\nOK\r\n> hello\r\nRecv 5 bytes\r\n\r\nSEND OK\r\n")
    assert run(impl, stream) == [
        ("Echo", "AT+CIPMUX=1"), ("Result", "OK"),
        ("Echo", 'AT+CIPSTART=0,"TCP","10.0.0.1",80'), ("LinkEvent", 0, "CONNECT"), ("Result", "OK"),
        ("Echo", "AT+CIPSEND=0,5"), ("Result", "OK"), ("Prompt",),
        # the echoed payload: the module repeats what the host typed after "> "
        ("Text", "hello"), ("Recv", 5), ("Result", "SEND OK"),
    ]


@pytest.mark.parametrize("stream,expected", [
    (b"> ", [("Prompt",)]),
    (b">", [("Prompt",)]),
    (b"\r\nOK\r\n> ", [("Result", "OK"), ("Prompt",)]),
    (b">  x\r\n", [("Prompt",), ("Text", " x")]),      # only one space is swallowed
    (b">>\r\n", [("Prompt",), ("Prompt",)]),
    (b"> OK\r\n", [("Prompt",), ("Result", "OK")]),
    (b"a>b\r\n", [("Text", "a>b")]),                    # not at a line start
    (b">+IPD,1:x", [("Prompt",), ("Data", 0, b"x", None)]),
])
def test_prompt(impl, run, stream, expected):
    for sizes in (None, [1]):
        assert run(impl, stream, sizes) == expected


def test_prompt_is_reported_before_its_line_would_end(impl):
    f = impl.Framer()
    assert [type(e).__name__ for e in f.feed(b"OK\r\n>")] == ["Result", "Prompt"]
    # the space after the prompt may come in the next read and is still swallowed
    assert f.feed(b" ") == []
    assert [type(e).__name__ for e in f.feed(b"Recv 1 bytes\r\n")] == ["Recv"]
