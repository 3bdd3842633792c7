"""The deprecated un-suffixed ESP8266-AT-1.x forms (sources: wizsock/protocol/commands.py LEGACY):
answered with the bare prefix, sets saved in the flash like _DEF, queries answer the current value."""
import json

import pytest

from wizsock import protocol as p

from emulator.conftest import open_at

WORLD = {"aps": [{"ssid": "lab", "password": "labpass123", "ecn": 3, "rssi": -40, "mac": "aa:bb:cc:00:00:01",
                  "channel": 6, "ip": "192.168.10.6"}]}


def test_every_legacy_form_is_in_the_codec_with_its_source():
    assert set(p.LEGACY) == {"UART", "CWMODE", "CWJAP", "CWSAP", "CWDHCP", "CIPSTAMAC", "CIPAPMAC",
                             "CIPSTA", "CIPAP"}
    for name, source in p.LEGACY.items():
        spec, dflt = p.COMMANDS[name], p.COMMANDS[name + "_DEF"]
        assert spec.legacy and not dflt.legacy and source in spec.doc
        assert set(spec.forms) == set(dflt.forms)
    # the host parses the bare heads, and the bare head only belongs to the bare form's family
    assert p.COMMANDS["CWMODE"].parse_response("query", [b"+CWMODE:1"]) == p.records.WifiMode(1)
    assert p.COMMANDS["CWMODE"].format_response("query", p.records.WifiMode(3)) == [b"+CWMODE:3"]
    assert p.COMMANDS["CWJAP"].set(ssid="a", pwd="b,c").encode() == b'AT+CWJAP="a","b\\,c"\r\n'
    assert p.parse_request(b"AT+CWDHCP=1,1").name == "CWDHCP"
    with pytest.raises(p.RequestError):
        p.parse_request(b"AT+CWMODE=4")       # the _DEF ranges hold
    with pytest.raises(p.UnknownCommand):
        p.parse_request(b"AT+CWDHCPS?")       # no known bare form


def test_bare_forms_answer_with_the_bare_prefix_and_save_to_flash(make_emu):
    emu = make_emu(world=WORLD)
    at = open_at(emu)
    assert b"+CWMODE:2" in at.ok(b"AT+CWMODE?")
    at.ok(b"AT+CWMODE=1")
    assert b"+CWMODE:1" in at.ok(b"AT+CWMODE?")
    assert b"+CWMODE_DEF:1" in at.ok(b"AT+CWMODE_DEF?")      # saved in the flash
    r = at.ok(b'AT+CWJAP="lab","labpass123"')
    assert b"WIFI CONNECTED" in r and b"WIFI GOT IP" in r
    assert b'+CWJAP:"lab","aa:bb:cc:00:00:01",6,-40' in at.ok(b"AT+CWJAP?")
    assert json.load(open(emu.flash_path))["jap"][:2] == ["lab", "labpass123"]
    failed = at.cmd(b'AT+CWJAP="lab","wrong-password"')
    assert b"+CWJAP:2" in failed and failed.endswith(b"FAIL\r\n")
    at.ok(b"AT+CWDHCP=1,1")
    assert b"+CWDHCP:3" in at.ok(b"AT+CWDHCP?")
    at.ok(b'AT+CIPSTA="192.168.10.200","192.168.10.1","255.255.255.0"')
    r = at.ok(b"AT+CIPSTA?")
    assert b'+CIPSTA:ip:"192.168.10.200"' in r and b'+CIPSTA:netmask:"255.255.255.0"' in r
    assert b'+CIPSTA_DEF:ip:"192.168.10.200"' in at.ok(b"AT+CIPSTA_DEF?")
    assert b"+CIPSTAMAC:" in at.ok(b"AT+CIPSTAMAC?")
    at.ok(b"AT+CWMODE=3")
    assert b'+CIPAP:ip:"192.168.36.1"' in at.ok(b"AT+CIPAP?")
    at.ok(b'AT+CWSAP="wiz-ap","password1",5,3')
    assert b'+CWSAP:"wiz-ap","password1",5,3,4,0' in at.ok(b"AT+CWSAP?")
    assert b'+CWSAP_DEF:"wiz-ap"' in at.ok(b"AT+CWSAP_DEF?")
    assert b"+CIPAPMAC:" in at.ok(b"AT+CIPAPMAC?")
    assert b"+UART:2000000,8,1,0,0" in at.ok(b"AT+UART?")
    assert at.cmd(b"AT+CWMODE=0").endswith(b"ERROR\r\n")
