"""AT+WIZ_NETCONFIG: a real setup page on loopback; a browser (urllib) enters the AP."""
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from support.servers import free_port
from wizsock.emulator import netconfig
from wizsock.emulator.core import load_world

from emulator.test_mqtt import at_port


def page(emu):
    return "http://%s:%d/" % netconfig.address_of(emu)


def submit(emu, ssid, password):
    body = urllib.parse.urlencode({"ssid": ssid, "password": password}).encode()
    with urllib.request.urlopen(page(emu), data=body, timeout=10) as r:
        return r.status, r.read()


def test_browser_sets_the_ap_and_the_module_joins_it(make_emu):
    emu = make_emu()
    with at_port(emu) as at:
        assert at.ok("AT+CWMODE_CUR?") == [b"+CWMODE_CUR:2"]             # SoftAP: factory default
        assert at.command("AT+WIZ_NETCONFIG") == ([], "OK")
        assert at.wait_line(rb"smartconfig type:Web") == b"smartconfig type:Web"
        host, port = netconfig.address_of(emu)
        assert host == "127.0.0.1" and port > 0
        with urllib.request.urlopen(page(emu), timeout=10) as r:
            form = r.read()
        assert b'name="ssid"' in form and b'name="password"' in form
        status, body = submit(emu, "wizsock-lab", "wizsock123")
        assert status == 200 and b"wizsock-lab" in body
        expected = [b"Smart get wifi info", b"ssid:wizsock-lab", b"password:wizsock123",
                    b"WIFI CONNECTED", b"WIFI GOT IP", b"smartconfig connected wifi"]
        assert [at.read_line(10) for _ in expected] == expected
        assert at.ok("AT+CWMODE_CUR?") == [b"+CWMODE_CUR:1"]             # switched to Station mode
        assert at.ok("AT+CWJAP_CUR?")[0].startswith(b'+CWJAP_CUR:"wizsock-lab"')
        assert netconfig.address_of(emu) is None                            # the page is gone
        with pytest.raises(OSError):
            urllib.request.urlopen("http://%s:%d/" % (host, port), timeout=2)
        # saved like CWJAP_DEF: the module rejoins after a reset (CWAUTOCONN=1)
        at.ok("AT+CWMODE_DEF=1")
        at.write(b"AT+RST\r\n")
        at.wait_line(rb"WIFI GOT IP", timeout=10)


def test_wrong_password_keeps_the_page_until_cwstopsmart(make_emu):
    w = load_world(None)
    port = free_port()
    w["netconfig"] = {"port": port}
    emu = make_emu(world=w)
    with at_port(emu) as at:
        at.ok("AT+WIZ_NETCONFIG")
        assert netconfig.address_of(emu) == ("127.0.0.1", port)
        assert at.command("AT+WIZ_NETCONFIG")[1] == "ERROR"            # already serving
        with pytest.raises(urllib.error.HTTPError) as ei:
            submit(emu, "", "x")                                        # no SSID: the page says so
        assert ei.value.code == 400
        submit(emu, "wizsock-lab", "not-the-password")
        at.wait_line(rb"password:not-the-password")
        deadline = time.monotonic() + 10                                # the join fails quietly,
        while at.ok("AT+CWMODE_CUR?") != [b"+CWMODE_CUR:3"]:            # back in SoftAP+Station
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert not any(ln == b"smartconfig connected wifi" for ln in at.transcript + at.pending)
        assert netconfig.address_of(emu) == ("127.0.0.1", port)             # still up for another try
        with urllib.request.urlopen(page(emu), timeout=10) as r:
            assert r.status == 200
        at.ok("AT+CWSTOPSMART")
        assert netconfig.address_of(emu) is None
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
        # and it can be started again on the same port
        at.ok("AT+WIZ_NETCONFIG")
        assert netconfig.address_of(emu) == ("127.0.0.1", port)
        at.write(b"AT+RST\r\n")                                         # a reset stops it too
        at.wait_line(rb"ready")
        at.sync()
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)


def test_station_mode_refuses(make_emu):
    emu = make_emu()
    with at_port(emu) as at:
        at.ok("AT+CWMODE_CUR=1")
        assert at.command("AT+WIZ_NETCONFIG") == ([], "ERROR")
        assert netconfig.address_of(emu) is None
        at.ok("AT+CWSTOPSMART")                                         # harmless when nothing runs
