"""The radio world: joins and their failures, BSSID choice, scans, SoftAP, MACs, DHCP/static."""
import json
import time

from emulator.conftest import open_at

WORLD = {
    "aps": [
        {"ssid": "lab", "password": "labpass123", "ecn": 3, "rssi": -70, "mac": "00:08:dc:00:00:01",
         "channel": 6, "ip": "192.168.10.5"},
        {"ssid": "lab", "password": "labpass123", "ecn": 3, "rssi": -40, "mac": "00:08:dc:00:00:02",
         "channel": 11, "ip": "192.168.10.6"},
        {"ssid": "open", "password": "", "ecn": 0, "rssi": -80, "mac": "00:08:dc:00:00:03", "channel": 1},
        {"ssid": "slow", "password": "slowpass1", "ecn": 4, "rssi": -90, "mac": "00:08:dc:00:00:04",
         "channel": 1, "fail": 1},
        {"ssid": "broken", "password": "brokenpw1", "ecn": 2, "rssi": -60, "mac": "00:08:dc:00:00:05",
         "channel": 3, "fail": 4},
    ],
    "stations": [{"mac": "aa:bb:cc:00:00:01"}, {"mac": "aa:bb:cc:00:00:02", "ip": "192.168.36.77"}],
    "dns": {},
}


def test_join_codes_and_messages(make_emu):
    at = open_at(make_emu(world=WORLD))
    assert at.cmd(b'AT+CWJAP_CUR="lab","labpass123"').endswith(b"ERROR\r\n")  # SoftAP mode
    at.ok(b"AT+CWMODE_CUR=1")
    assert b"+CWJAP_CUR:3" in at.cmd(b'AT+CWJAP_CUR="nope","whatever1"')
    assert b"+CWJAP_CUR:2" in at.cmd(b'AT+CWJAP_CUR="lab","wrong"')
    assert b"+CWJAP_CUR:1" in at.cmd(b'AT+CWJAP_CUR="slow","slowpass1"')
    assert b"+CWJAP_CUR:4" in at.cmd(b'AT+CWJAP_CUR="broken","brokenpw1"')
    r = at.ok(b'AT+CWJAP_CUR="open",""')
    assert b"WIFI CONNECTED\r\nWIFI GOT IP" in r
    # joining elsewhere first disconnects
    r = at.ok(b'AT+CWJAP_CUR="lab","labpass123"')
    assert r.index(b"WIFI DISCONNECT") < r.index(b"WIFI CONNECTED")
    # strongest AP of the SSID without a BSSID; the named one with it
    assert b'"00:08:dc:00:00:02",11,-40' in at.ok(b"AT+CWJAP_CUR?")
    at.ok(b'AT+CWJAP_CUR="lab","labpass123","00:08:DC:00:00:01"')
    assert b'"00:08:dc:00:00:01",6,-70' in at.ok(b"AT+CWJAP_CUR?")
    assert b'STAIP,"192.168.10.5"' in at.ok(b"AT+CIFSR")
    assert b"WIFI DISCONNECT" in at.ok(b"AT+CWQAP")
    assert b"STATUS:5" in at.ok(b"AT+CIPSTATUS")
    assert b"+CWJAP_CUR:" not in at.ok(b"AT+CWJAP_CUR?")
    # too long SSID / password
    assert at.cmd(b'AT+CWJAP_CUR="%s","x"' % (b"s" * 33)).endswith(b"ERROR\r\n")
    assert at.cmd(b'AT+CWJAP_CUR="lab","%s"' % (b"p" * 65)).endswith(b"ERROR\r\n")


def test_cwlap_sort_mask_and_filters(make_emu):
    at = open_at(make_emu(world=WORLD))
    assert at.cmd(b"AT+CWLAP").endswith(b"ERROR\r\n")  # SoftAP-only mode cannot scan
    at.ok(b"AT+CWMODE_CUR=3")
    unsorted = [ln for ln in at.ok(b"AT+CWLAP").split(b"\r\n") if ln.startswith(b"+CWLAP:")]
    assert [b"00:00:01" in unsorted[0], len(unsorted)] == [True, 5]
    at.ok(b"AT+CWLAPOPT=1,2047")
    lines = [ln for ln in at.ok(b"AT+CWLAP").split(b"\r\n") if ln.startswith(b"+CWLAP:")]
    rssis = [int(ln.split(b",")[2]) for ln in lines]
    assert rssis == sorted(rssis, reverse=True)
    at.ok(b"AT+CWLAPOPT=0,6")  # SSID and RSSI only
    lines = [ln for ln in at.ok(b"AT+CWLAP").split(b"\r\n") if ln.startswith(b"+CWLAP:")]
    assert lines[0] == b'+CWLAP:("lab",-70)'
    at.ok(b"AT+CWLAPOPT=0,2047")
    r = at.ok(b'AT+CWLAP="lab","00:08:dc:00:00:02"')
    assert r.count(b"+CWLAP:") == 1 and b"00:08:dc:00:00:02" in r
    r = at.ok(b'AT+CWLAP="lab","",11')
    assert r.count(b"+CWLAP:") == 1 and b"00:08:dc:00:00:02" in r
    assert at.cmd(b"AT+CWLAPOPT=2,2047").endswith(b"ERROR\r\n")
    assert at.cmd(b"AT+CWLAPOPT=1,2048").endswith(b"ERROR\r\n")


def test_softap_defaults_limits_and_stations(make_emu):
    emu = make_emu(world=WORLD)
    at = open_at(emu)
    mac = emu.state.flash["stamac"]
    tail = mac.replace(":", "")[-6:].upper().encode()
    assert b'+CWSAP_CUR:"WizFi360_%s","",1,0,4,0' % tail in at.ok(b"AT+CWSAP_CUR?")
    assert b'APIP,"192.168.36.1"' in at.ok(b"AT+CIFSR")
    r = at.ok(b"AT+CWLIF")
    assert b'"192.168.36.2","aa:bb:cc:00:00:01"' in r and b'"192.168.36.77","aa:bb:cc:00:00:02"' in r
    at.ok(b'AT+CWSAP_CUR="mine","12345678",6,3,1,1')
    assert at.ok(b"AT+CWLIF").count(b'","') == 1  # max conn 1
    assert at.cmd(b'AT+CWSAP_CUR="","12345678",6,3').endswith(b"ERROR\r\n")
    assert at.cmd(b'AT+CWSAP_CUR="x","12345678",6,1').endswith(b"ERROR\r\n")  # WEP not allowed
    at.ok(b"AT+CWMODE_CUR=1")
    assert at.cmd(b'AT+CWSAP_CUR="mine","12345678",6,3').endswith(b"ERROR\r\n")
    assert b"+CWDHCPS_CUR:120," in at.ok(b"AT+CWDHCPS_CUR?")
    assert b'+CWDHCPS_DEF:120,"192.168.36.2","192.168.36.101"' in at.ok(b"AT+CWDHCPS_DEF?")
    # defaults of 1.1.x
    assert b"+CWDHCP_DEF:3" in at.ok(b"AT+CWDHCP_DEF?")
    assert b'+CIPSTA_DEF:ip:"192.168.1.1"' in at.ok(b"AT+CIPSTA_DEF?")
    assert b'+CIPAP_DEF:ip:"192.168.36.1"' in at.ok(b"AT+CIPAP_DEF?")
    assert b"+CIPSSLSIZE:2048" in at.ok(b"AT+CIPSSLSIZE?")
    assert b"+CWAUTOCONN:1" in at.ok(b"AT+CWAUTOCONN?")
    assert b"+CWMODE_DEF:2" in at.ok(b"AT+CWMODE_DEF?")
    assert b"+CIPDNS_DEF:208.67.220.220" in at.ok(b"AT+CIPDNS_DEF?")


def test_dhcp_static_interplay(make_emu):
    at = open_at(make_emu(world=WORLD))
    at.ok(b"AT+CWMODE_CUR=1")
    at.ok(b'AT+CWJAP_CUR="lab","labpass123"')
    assert b'STAIP,"192.168.10.6"' in at.ok(b"AT+CIFSR")
    at.ok(b'AT+CIPSTA_CUR="192.168.10.200","192.168.10.1","255.255.255.0"')
    assert b"+CWDHCP_CUR:1" in at.ok(b"AT+CWDHCP_CUR?")
    assert b'STAIP,"192.168.10.200"' in at.ok(b"AT+CIFSR")
    at.ok(b"AT+CWDHCP_CUR=1,1")  # DHCP back on: the static address goes
    assert b"+CWDHCP_CUR:3" in at.ok(b"AT+CWDHCP_CUR?")
    assert b'STAIP,"192.168.10.6"' in at.ok(b"AT+CIFSR")
    assert at.cmd(b'AT+CIPSTA_CUR="192.168.10.300"').endswith(b"ERROR\r\n")
    assert b"+CWDHCP_DEF:3" in at.ok(b"AT+CWDHCP_DEF?")  # _CUR changes left flash alone


def test_sleep_needs_station_mode(at):
    assert at.cmd(b"AT+SLEEP=1").endswith(b"ERROR\r\n")
    at.ok(b"AT+CWMODE_CUR=1")
    at.ok(b"AT+SLEEP=0")
    assert b"+SLEEP:0" in at.ok(b"AT+SLEEP?")
    assert at.cmd(b"AT+SLEEP=3").endswith(b"ERROR\r\n")


def test_gpio_pin_table(at):
    assert at.cmd(b"AT+SYSIOSETCFG=4,1,0").endswith(b"ERROR\r\n")  # not in the pin table
    assert at.cmd(b"AT+SYSIOSETCFG=12,2,0").endswith(b"ERROR\r\n")
    for pin in (3, 6, 7, 9, 10, 11, 12, 13, 14, 16, 19, 20):
        at.ok(b"AT+SYSIOSETCFG=%d,1,0" % pin)
        assert b"+SYSIOGETCFG:%d,1,0" % pin in at.ok(b"AT+SYSIOGETCFG=%d" % pin)


def test_autoconnect_off_no_rejoin(make_emu, tmp_path):
    emu = make_emu(world=WORLD)
    at = open_at(emu)
    at.ok(b"AT+CWMODE_DEF=1")
    at.ok(b'AT+CWJAP_DEF="lab","labpass123"')
    at.ok(b"AT+CWAUTOCONN=0")
    at.port.write(b"AT+RST\r\n")
    at.wait_ready()
    time.sleep(0.2)
    assert b"WIFI" not in at.buf
    assert b"STATUS:5" in at.ok(b"AT+CIPSTATUS")
    saved = json.load(open(emu.flash_path))
    assert saved["jap"][0] == "lab" and saved["autoconn"] == 0


def test_savetranslink_enters_passthrough_on_boot(make_emu, echo_server):
    emu = make_emu(world=dict(WORLD, dns={"echo.test": "127.0.0.1"}))
    at = open_at(emu)
    at.ok(b"AT+CWMODE_DEF=1")
    at.ok(b'AT+CWJAP_DEF="lab","labpass123"')
    at.ok(b'AT+SAVETRANSLINK=1,"echo.test",%d,"TCP"' % echo_server.port)
    at.port.write(b"AT+RST\r\n")
    at.wait_ready()
    echo_server.accepted.wait(3)
    time.sleep(0.1)
    at.buf = b""
    at.port.write(b"raw bytes")
    at.read_until(lambda b: b"raw bytes" in b or None, 3)
    time.sleep(0.1)
    at.port.write(b"+++")
    time.sleep(0.2)
    at.ok(b"AT")


def test_softap_stations_come_and_go(make_emu):
    world = dict(WORLD, stations=[
        {"mac": "aa:bb:cc:00:00:01"},
        {"mac": "aa:bb:cc:00:00:09", "join_after": 0.2, "leave_after": 0.6},
    ])
    at = open_at(make_emu(world=world))
    assert at.ok(b"AT+CWLIF").count(b'","') == 1
    out = at.expect(b"+DIST_STA_IP:", timeout=3) + at.expect(b"\r\n")
    assert b'+STA_CONNECTED:"aa:bb:cc:00:00:09"' in out
    assert b'"aa:bb:cc:00:00:09","192.168.36.3"' in out
    assert at.ok(b"AT+CWLIF").count(b'","') == 2
    at.expect(b'+STA_DISCONNECTED:"aa:bb:cc:00:00:09"', timeout=3)
    assert b"aa:bb:cc:00:00:09" not in at.ok(b"AT+CWLIF")
