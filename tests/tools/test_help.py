"""What `help NAME`, the history and the +IPD display of `wizsock term` are made of."""
from wizsock.framer import Framer
from wizsock import protocol as P
from wizsock.tools.term import describe_command, ipd_text, lookup, mask_history_line, spec_section


def test_describe_from_the_table():
    text = describe_command("cwjap_cur")
    assert text.startswith("AT+CWJAP_CUR: Connects to an AP")
    assert "spec section 3.2.3" in text and "twin CWJAP_DEF" in text
    assert "AT+CWJAP_CUR=<ssid>,<pwd>[,<bssid>]   (set)" in text
    assert "AT+CWJAP_CUR?   (query)" in text
    assert "pwd    string (quoted), up to 64 bytes; secret" in text
    start = describe_command("AT+CIPSTART")
    assert "when type is TCP" in start and "<link>" in start
    assert "integer 0..4" in start               # the link id's range, from the table
    assert describe_command("AT").startswith("AT: ")
    assert lookup("ATE0").name == "E0"
    assert describe_command("NOPE") is None and lookup("") is None


def test_spec_section_is_the_body_not_the_contents(tmp_path):
    spec = tmp_path / "spec.txt"
    spec.write_text("3.2.3\tAT+CWJAP_CUR: Connects to an AP\t19\n"
                    "3.2.4\tAT+CWJAP_DEF: Connects\t19\n"
                    "...\n"
                    "3.2.3 AT+CWJAP_CUR: Connects to an AP\n"
                    "Commands\tAT+CWJAP_CUR?\n"
                    "Parameter\t<ssid>: string\n"
                    "3.2.4 AT+CWJAP_DEF: Connects\n"
                    "other\n")
    text = spec_section(str(spec), "3.2.3")
    assert text.splitlines() == ["3.2.3 AT+CWJAP_CUR: Connects to an AP",
                                 "Commands    AT+CWJAP_CUR?", "Parameter    <ssid>: string"]
    assert spec_section(str(spec), "9.9") is None
    assert spec_section(str(tmp_path / "missing.txt"), "3.2.3") is None
    assert spec_section(None, "3.2.3") is None


def test_history_lines_are_masked():
    assert mask_history_line('at+cwjap_cur="lab","s3cret"') == 'AT+CWJAP_CUR="lab","***"'
    assert "s3cret" not in mask_history_line('AT+CWJAP_CUR="lab","s3cret')     # unterminated
    assert "pw" not in mask_history_line('AT+MQTTSET="user","pw","id",60').split(",")[1]
    assert mask_history_line("AT+GMR") == "AT+GMR"


def _ipd(payload, remote=("10.0.0.2", 80)):
    (ev,) = Framer().feed(P.format_ipd(1, payload, remote))
    return ev


def test_ipd_text_preview_and_hexdump():
    assert ipd_text(_ipd(b"HTTP/1.1 200 OK\r\n")) == [
        "+IPD link 1: 17 bytes from 10.0.0.2:80: 'HTTP/1.1 200 OK\\r\\n'"]
    lines = ipd_text(_ipd(bytes(range(100))))
    assert lines[0] == "+IPD link 1: 100 bytes from 10.0.0.2:80"
    assert lines[1].startswith("0000  00 01 02 03")
    assert lines[-1] == "... 36 more bytes"
    full = ipd_text(_ipd(b"text"), full_hexdump=True)
    assert full[1] == "0000  74 65 78 74" + " " * 36 + "  |text|"
