"""Response records beyond the spec's examples, the spec's cross-parameter
rules, and the codec fed by the real framer."""
from collections import namedtuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wizsock import protocol as p
from wizsock.protocol import records as R

Info = namedtuple("Info", "name value")   # stand-in for the framer's event

C = p.COMMANDS

APS = (
    R.AccessPoint(3, "weak", -80, "00:08:dc:00:00:01", 6, 0),
    R.AccessPoint(4, 'odd "name", with\\ specials', -40, "00:08:dc:00:00:02", 11, 1),
    R.AccessPoint(0, "open", -60, "00:08:dc:00:00:03", 1, 0),
)


# ---------------------------------------------------------------- CWLAP / CWLAPOPT

@pytest.mark.parametrize("mask", [p.CWLAP_MASK_ALL, 0b11111, 0b00010, 0b10000001000, 0b00101, 0])
def test_cwlap_mask_hides_fields(mask):
    shown = {f for f, bit in p.CWLAP_MASK_BITS.items() if mask >> bit & 1}
    visible = tuple(R.AccessPoint(**{f: (getattr(ap, f) if f in shown else None) for f in p.CWLAP_MASK_BITS})
                    for ap in APS)
    lines = C["CWLAP"].format_response("execute", visible, mask=mask)
    assert len(lines) == 3
    for line in lines:
        assert line.startswith(b"+CWLAP:(") and line.endswith(b")")
    assert C["CWLAP"].parse_response("execute", lines, mask=mask) == visible


def test_cwlap_mask_example_1055_is_everything():
    # 3.2.5: 1055 = 0b10000011111, "all Parameter will be shown"
    assert p.CWLAP_MASK_ALL == 1055
    lines = C["CWLAP"].format_response("execute", APS, mask=1055)
    assert lines[0] == b'+CWLAP:(3,"weak",-80,"00:08:dc:00:00:01",6,0)'


def test_cwlap_mask_ssid_and_rssi_only():
    lines = C["CWLAP"].format_response("execute", (R.AccessPoint(ssid="a", rssi=-3),), mask=0b110)
    assert lines == [b'+CWLAP:("a",-3)']
    assert C["CWLAP"].parse_response("execute", lines, mask=0b110) == (R.AccessPoint(ssid="a", rssi=-3),)


def test_cwlap_sort_by_rssi():
    lines = C["CWLAP"].format_response("execute", APS, sort=True)
    aps = C["CWLAP"].parse_response("execute", lines)
    assert [ap.rssi for ap in aps] == [-40, -60, -80]
    unsorted = C["CWLAP"].parse_response("execute", C["CWLAP"].format_response("execute", APS))
    assert unsorted == APS


def test_cwlap_empty_and_blank_mac():
    assert C["CWLAP"].parse_response("execute", []) == ()
    req = C["CWLAP"].set(ssid="x", channel=3)
    assert req.encode() == b'AT+CWLAP="x","",3\r\n'
    assert p.parse_request(req.encode()) == req
    assert C["CWLAP"].set(ssid="x").encode() == b'AT+CWLAP="x"\r\n'


# ---------------------------------------------------------------- other records

def test_cipstatus_several_links():
    rec = R.ConnectionStatus(3, (R.LinkStatus(0, "TCP", "10.0.0.2", 80, 40000, 0),
                                 R.LinkStatus(4, "UDP", "10.0.0.3", 53, 1234, 0),
                                 R.LinkStatus(2, "SSL", "1.2.3.4", 443, 5555, 0)))
    lines = C["CIPSTATUS"].format_response("execute", rec)
    assert lines[0] == b"STATUS:3" and len(lines) == 4
    assert C["CIPSTATUS"].parse_response("execute", lines) == rec
    assert p.CIPSTATUS_STATES[5] == "not connected to an AP"


def test_cifsr_station_only_and_softap_only():
    sta = R.LocalAddresses(sta_ip="192.168.1.88", sta_mac="00:08:dc:11:12:13")
    lines = C["CIFSR"].format_response("execute", sta)
    assert lines == [b'+CIFSR:STAIP,"192.168.1.88"', b'+CIFSR:STAMAC,"00:08:dc:11:12:13"']
    assert C["CIFSR"].parse_response("execute", lines) == sta
    ap = R.LocalAddresses(ap_ip="192.168.4.1", ap_mac="02:08:dc:11:12:13")
    assert C["CIFSR"].parse_response("execute", C["CIFSR"].format_response("execute", ap)) == ap
    # ESP-style unquoted values parse too
    assert C["CIFSR"].parse_response("execute", ["+CIFSR:STAIP,192.168.1.88"]) == R.LocalAddresses(sta_ip="192.168.1.88")


def test_cwlif_unquoted_and_several():
    lines = ["192.168.4.2,18:cf:5e:c5:ce:76", '"192.168.4.3","18:cf:5e:c5:ce:77"']
    assert C["CWLIF"].parse_response("execute", lines) == (R.Station("192.168.4.2", "18:cf:5e:c5:ce:76"),
                                                           R.Station("192.168.4.3", "18:cf:5e:c5:ce:77"))


def test_cwjap_failure_codes():
    for code, meaning in p.CWJAP_ERRORS.items():
        lines = C["CWJAP_DEF"].format_response("set", R.JoinFailure(code))
        assert lines == [f"+CWJAP_DEF:{code}".encode()]
        rec = C["CWJAP_DEF"].parse_response("set", lines)
        assert rec.code == code and rec.meaning == meaning
    assert C["CWJAP_CUR"].format_response("set", None) == []
    # ESP-derived firmware prints the base name for both twins; accepted, never written
    assert C["CWJAP_CUR"].parse_response("set", ["+CWJAP:3"]) == R.JoinFailure(3)
    assert C["CWMODE_DEF"].parse_response("query", ["+CWMODE:2"]) == R.WifiMode(2)
    assert set(p.CWJAP_ERRORS) == {1, 2, 3, 4}
    assert R.JoinFailure(9).meaning == "unknown error 9"


def test_dhcp_bits_and_sntp_time():
    assert (R.DhcpStatus(3).softap, R.DhcpStatus(3).station) == (True, True)
    assert (R.DhcpStatus(2).softap, R.DhcpStatus(2).station) == (False, True)
    t = C["CIPSNTPTIME"].parse_response("query", ["+CIPSNTPTIME:Wed Jul 24 11:38:25 2019"])
    assert t.datetime().isoformat() == "2019-07-24T11:38:25"


def test_cipchecksequence_false_and_link_forms():
    assert C["CIPCHECKSEQ"].parse_response("set", ["3,7,FALSE"]) == R.SegmentCheck(3, 7, False)
    assert C["CIPCHECKSEQ"].format_response("set", R.SegmentCheck(None, 7, False)) == [b"7,FALSE"]
    assert C["CIPCHECKSEQ"].format_response("set", R.SegmentCheck(2, 7, True)) == [b"2,7,TRUE"]


def test_ping_and_update_and_pem():
    assert C["PING"].parse_response("set", ["+timeout"]).timeout
    assert C["PING"].parse_response("set", []) is None
    assert C["CIUPDATE"].parse_response("execute", ["+CIUPDATE:1", "+CIUPDATE:2"]).stages == (1, 2)
    pem = R.Pem("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----")
    lines = C["CASEND"].format_response("query", pem)
    assert len(lines) == 3 and C["CASEND"].parse_response("query", lines) == pem
    assert C["CASEND"].parse_response("query", []) is None       # Example2: ERROR, no certificate


def test_missing_response_line_is_an_error():
    with pytest.raises(p.ResponseError):
        C["CWMODE_CUR"].parse_response("query", [])
    with pytest.raises(p.ResponseError):
        C["CWMODE_CUR"].parse_response("query", ["+CIPMUX:1"])      # another command's line
    with pytest.raises(ValueError):
        C["CWMODE_CUR"].format_response("query", None)
    with pytest.raises(ValueError):
        C["RST"].format_response("execute", R.WifiMode(1))        # RST prints no record


def test_response_lines_cannot_carry_control_characters():
    with pytest.raises(ValueError):
        C["CWJAP_CUR"].format_response("query", R.JoinedAp("a\r\nOK", "00:08:dc:9c:ef:b6", 1, -3))
    with pytest.raises(ValueError):
        C["CIPSNTPTIME"].format_response("query", R.SntpTime("x\nOK"))


@settings(max_examples=60, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=32)
       .filter(lambda s: len(s.encode()) <= 32))
def test_joined_ap_with_any_ssid(ssid):
    rec = R.JoinedAp(ssid, "00:08:dc:9c:ef:b6", 12, -75)
    lines = C["CWJAP_CUR"].format_response("query", rec)
    assert len(lines) == 1 and b"\r" not in lines[0] and b"\n" not in lines[0]
    assert C["CWJAP_CUR"].parse_response("query", lines) == rec


# ---------------------------------------------------------------- cross-parameter rules

def test_rules_from_the_spec_notes():
    # CWSAP: "<pwd> 8 ~ 64 bytes"; OPEN (ecn 0) takes an empty one (factory default "",...,0)
    C["CWSAP_CUR"].set(ssid="ap", pwd="", channel=1, ecn=0)
    with pytest.raises(ValueError, match="'pwd'"):
        C["CWSAP_CUR"].set(ssid="ap", pwd="short", channel=1, ecn=3)
    with pytest.raises(ValueError, match="'ecn'"):
        C["CWSAP_CUR"].set(ssid="ap", pwd="12345678", channel=1, ecn=1)     # WEP is not offered
    # "To use <ssid hidden>, <max conn> must be set first."
    with pytest.raises(ValueError, match="'ssid_hidden'.*'max_conn' must be set first"):
        C["CWSAP_DEF"].set(ssid="ap", pwd="12345678", channel=1, ecn=3, ssid_hidden=1)
    # CWDHCPS: enable=1 needs lease time and both IPs
    with pytest.raises(ValueError, match="'lease_time'"):
        C["CWDHCPS_CUR"].set(enable=1, lease_time=5)
    with pytest.raises(ValueError, match="'lease_time'"):
        p.parse_request(b"AT+CWDHCPS_CUR=1")
    # CIPSTA/CIPAP: gateway and netmask together
    with pytest.raises(ValueError, match="together"):
        C["CIPSTA_CUR"].set(ip="192.168.1.2", gateway="192.168.1.1")
    with pytest.raises(ValueError, match="'ip'"):
        C["CIPAP_CUR"].set(ip="192.168.1.256")
    # CIPSEND/CIPSENDEX: remote IP and port together
    with pytest.raises(ValueError, match="together"):
        p.parse_request(b'AT+CIPSENDEX=0,10,"1.2.3.4"')
    # CIPSTART UDP: "To use <UDP mode>, <UDP local port> must be set first"; TCP takes no UDP params
    with pytest.raises(ValueError):
        C["CIPSTART"].set(type="TCP", remote="h", port=1, local_port=5)
    # SNTP: "if SNTP is enabled, the <timezone> has to be set"
    with pytest.raises(ValueError, match="'timezone'"):
        C["CIPSNTPCFG"].set(enable=1)
    C["CIPSNTPCFG"].set(enable=0)
    # DNS: "<DNS server0> & <DNS server1> must be different"
    with pytest.raises(ValueError, match="'dns1'"):
        C["CIPDNS_CUR"].set(enable=1, dns0="8.8.8.8", dns1="8.8.8.8")
    # MAC: "Bit 0 of the WizFi360 MAC address CANNOT be 1"
    with pytest.raises(ValueError, match="'mac'"):
        C["CIPSTAMAC_CUR"].set(mac="01:08:DC:11:12:13")
    # SAVETRANSLINK: UDP form needs type, TCP form takes keep-alive, not a local port
    assert C["SAVETRANSLINK"].set(mode=1, remote="h", port=1).encode() == b'AT+SAVETRANSLINK=1,"h",1\r\n'
    assert p.parse_request(b'AT+SAVETRANSLINK=0,"h",1,"UDP"').params["type"] == "UDP"
    # CWSTARTSMART: both firmware generations' forms
    assert C["CWSTARTSMART"].set(type=3, try_count=2).encode() == b"AT+CWSTARTSMART=3,2\r\n"
    assert C["CWSTARTSMART"].set(try_count=2).encode() == b"AT+CWSTARTSMART=2\r\n"
    assert C["CWSTARTSMART"].set().encode() == b"AT+CWSTARTSMART\r\n"


def test_forms_a_command_does_not_have():
    with pytest.raises(p.RequestError):
        C["RST"].query()
    with pytest.raises(p.RequestError):
        p.parse_request(b"AT+CWLAPOPT?")          # set only
    with pytest.raises(p.RequestError):
        p.parse_request(b"AT+CIPSENDEX")          # no transparent form
    assert p.parse_request(b"AT+CIPSEND").form == "execute"
    assert p.parse_request(b"AT+CWLAPOPT=?").form == "test"


def test_request_args_and_mux_hint():
    req = p.parse_request(b'AT+CIPSTART=2,"UDP","h",5,6')
    assert req.args == (2, "UDP", "h", 5, 6)
    assert p.parse_request(b'AT+CIPSTART="TCP","h",5').args == ("TCP", "h", 5)
    assert p.parse_request(b"AT+CIPCLOSE").args == ()
    with pytest.raises(p.RequestError):
        p.parse_request(b"AT+CIPCLOSE=1", mux=False)
    with pytest.raises(p.RequestError):
        p.parse_request(b"AT+CIPSEND=12", mux=True)
    assert p.parse_request(b"AT+CIPSEND=1,12", mux=True).link == 1
    assert p.parse_request(b"AT+CWMODE_CUR=1", mux=True).params == {"mode": 1}   # no link form: unaffected


# ---------------------------------------------------------------- through the real framer

def test_codec_reads_what_the_framer_makes():
    from wizsock import framer   # imported here: protocol itself never depends on the framer
    stream = (b'+CWJAP_CUR:"WIZ,\\"NET","00:08:dc:9c:ef:b6",12,-75\r\nOK\r\n'
              b"STATUS:3\r\n+CIPSTATUS:1,\"TCP\",\"192.168.4.2\",5000,6000,1\r\nOK\r\n"
              b'+CWLAP:(3,"a:b",-75,"00:08:dc:9c:ef:b6",12,1)\r\nOK\r\n'
              b"+52\r\nOK\r\n"
              b"AT+CWMODE_CUR:1\r\nOK\r\n")
    events = framer.Framer().feed(stream)
    groups, cur = [], []
    for ev in events:
        if type(ev).__name__ == "Result":
            groups.append(cur)
            cur = []
        else:
            cur.append(ev)
    assert len(groups) == 5
    assert C["CWJAP_CUR"].parse_response("query", groups[0]) == R.JoinedAp('WIZ,"NET', "00:08:dc:9c:ef:b6", 12, -75)
    assert C["CIPSTATUS"].parse_response("execute", groups[1]).links[0].remote_port == 5000
    assert C["CWLAP"].parse_response("execute", groups[2])[0].ssid == "a:b"
    assert C["PING"].parse_response("set", groups[3]) == R.PingResult(52)
    assert C["CWMODE_CUR"].parse_response("query", groups[4]) == R.WifiMode(1)   # 3.2.1's typo, as an Echo


# ---------------------------------------------------------------- messages and uploads

def test_station_messages():
    # spec 2.3: "+STA_CONNECTED: <mac>", "+DIST_STA_IP: <mac>, <ip addr>", "+STA_DISCONNECTED: <smac>"
    recs = [R.StationConnected("18:fe:34:00:00:01"), R.StationIp("18:fe:34:00:00:01", "192.168.4.2"),
            R.StationDisconnected("18:fe:34:00:00:01")]
    for rec in recs:
        line = p.format_message(rec)
        assert p.parse_message(line) == rec
        name, _, value = line[1:].decode().partition(":")
        assert p.parse_message(Info(name, value)) == rec
    assert p.parse_message("+DIST_STA_IP: 18:fe:34:00:00:01, 192.168.4.2") == recs[1]
    assert p.parse_message("+STA_CONNECTED: 18:fe:34:00:00:01") == recs[0]
    assert p.parse_message("+CWMODE_CUR:1") is None
    assert p.parse_message("+STA_CONNECTED:") is None


def test_pem_upload():
    pem = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n"
    assert p.pem_upload("CASEND", pem) == (b"-----BEGIN CERTIFICATE-----\r\nMAMCAQA=\r\n"
                                           b"-----END CERTIFICATE-----\r\n")
    assert p.pem_upload("CLICASEND", pem.encode()) == p.pem_upload("CASEND", pem)
    key = "-----BEGIN RSA PRIVATE KEY-----\r\nMAMCAQA=\r\n-----END RSA PRIVATE KEY-----"
    assert p.pem_upload("AWSPKSEND", key).endswith(b"-----END RSA PRIVATE KEY-----\r\n")
    for bad in ("", "MIIB", pem + pem, pem.replace("MAMC", "-----END CERTIFICATE-----\nAT+RST\nMAMC"),
                key, "-----BEGIN CERTIFICATE-----\n\x00\n-----END CERTIFICATE-----", pem.replace("MAMC", "é")):
        with pytest.raises(ValueError):
            p.pem_upload("CASEND", bad)
    assert p.PEM_MARKERS["AWSPKSEND"][1] == "-----END RSA PRIVATE KEY-----"
    assert p.TRANSPARENT_ESCAPE == b"+++"
