"""AT+CIUPDATE against a local HTTP server; AT+CIPSNTPCFG/CIPSNTPTIME against a local SNTP responder."""
import hashlib
import time

import pytest

from support.servers import deterministic_bytes, free_port, http_server, sntp_server
from wizsock.emulator.core import load_world

from emulator.test_mqtt import at_port, join

STAGES = [b"+CIUPDATE:<1>", b"+CIUPDATE:<2>", b"+CIUPDATE:<3>", b"+CIUPDATE:<4>"]


def world(**endpoints):
    w = load_world(None)
    w["endpoints"] = endpoints
    w.setdefault("dns", {})["fw.wizsock.test"] = "127.0.0.1"
    return w


@pytest.fixture
def web():
    with http_server() as s:
        yield s


# ------------------------------------------------------------------ CIUPDATE
def test_ciupdate_fetches_the_image_and_reports_each_stage(make_emu, web):
    emu = make_emu(world=world(ciupdate=f"http://fw.wizsock.test:{web.port}/bytes/262144"))
    with at_port(emu) as at:
        join(at)
        assert at.ok("AT+CIUPDATE") == STAGES                       # the default (world) URL
        assert emu.state.cur["ciupdate.last"] == {
            "url": f"http://fw.wizsock.test:{web.port}/bytes/262144", "size": 262144,
            "sha256": hashlib.sha256(deterministic_bytes(262144)).hexdigest()}
        assert at.ok(f'AT+CIUPDATE="http://127.0.0.1:{web.port}/bytes/1000"') == STAGES
        assert emu.state.cur["ciupdate.last"]["size"] == 1000
    assert web.requests == [("GET", "/bytes/262144"), ("GET", "/bytes/1000")]


def test_the_spec_example_with_the_upgrade_tool_address(make_emu):
    """AT+CIUPDATE="http://192.168.0.2:8080/WizFi360_SDK.img" (spec 3.3.21), served here."""
    from support.servers import DefaultHandler

    class Firmware(DefaultHandler):
        def do_GET(self):
            if self.path == "/WizFi360_SDK.img":
                self.path = "/bytes/4096"
            super().do_GET()

    with http_server(Firmware) as srv:
        emu = make_emu(world=world(**{"192.168.0.2:8080": f"127.0.0.1:{srv.port}"}))
        with at_port(emu) as at:
            join(at)
            assert at.ok('AT+CIUPDATE="http://192.168.0.2:8080/WizFi360_SDK.img"') == STAGES
        assert emu.state.cur["ciupdate.last"]["size"] == 4096


def test_ciupdate_failures(make_emu, web):
    emu = make_emu(world=world())
    with at_port(emu) as at:
        join(at)
        # no URL and no configured endpoint: refuse rather than contact the public OTA server
        assert at.command("AT+CIUPDATE") == ([], "ERROR")
        # the server answers 404: found and connected, no version
        assert at.command(f'AT+CIUPDATE="http://127.0.0.1:{web.port}/missing.img"') == (STAGES[:2], "ERROR")
        # nothing listens: the server was found (an IP), the connection fails
        assert at.command(f'AT+CIUPDATE="http://127.0.0.1:{free_port()}/x.img"') == (STAGES[:1], "ERROR")
        # a name the module cannot resolve
        lines, result = at.command('AT+CIUPDATE="http://no-such-host.invalid/x.img"')
        assert result == "ERROR" and STAGES[0] not in lines
        assert at.command(f'AT+CIUPDATE="ftp://127.0.0.1:{web.port}/x.img"') == ([], "ERROR")


def test_ciupdate_needs_the_network(make_emu, web):
    emu = make_emu(world=world())
    with at_port(emu) as at:
        at.ok("AT+CWMODE_CUR=1")                                      # station mode, not joined
        assert at.command(f'AT+CIUPDATE="http://127.0.0.1:{web.port}/bytes/10"') == ([], "ERROR")
    assert web.requests == []


# ------------------------------------------------------------------ SNTP
def _asctime(t):
    return time.asctime(time.gmtime(t)).encode()


def _parse(line):
    return time.mktime(time.strptime(line.split(b":", 1)[1].decode(), "%a %b %d %H:%M:%S %Y")) - time.mktime(
        time.gmtime(0))


def test_sntp_configuration_and_time(make_emu):
    offset = 5 * 86400 + 1234.0                   # the server's clock is days ahead of ours
    with sntp_server(offset=offset) as ntp:
        emu = make_emu(world=world(**{"ntp.wizsock.test": ntp.address}))
        with at_port(emu) as at:
            join(at)
            assert at.ok("AT+CIPSNTPCFG?") == [b"+CIPSNTPCFG:0"]
            assert at.command("AT+CIPSNTPCFG=1")[1] == "ERROR"          # a time zone is required
            assert at.command("AT+CIPSNTPCFG=1,14")[1] == "ERROR"       # range -11..13
            assert at.command("AT+CIPSNTPCFG=1,-12")[1] == "ERROR"
            at.ok('AT+CIPSNTPCFG=1,8,"ntp.wizsock.test"')
            assert at.ok("AT+CIPSNTPCFG?") == [b'+CIPSNTPCFG:1,8,"ntp.wizsock.test"']
            (line,) = at.ok("AT+CIPSNTPTIME?")
            assert line.startswith(b"+CIPSNTPTIME:")
            want = time.time() + offset + 8 * 3600
            assert abs(_parse(line) - want) < 3, (line, _asctime(want))
            assert ntp.requests >= 1
            at.ok('AT+CIPSNTPCFG=1,-5,"ntp.wizsock.test"')
            (line,) = at.ok("AT+CIPSNTPTIME?")
            assert abs(_parse(line) - (time.time() + offset - 5 * 3600)) < 3
            at.ok("AT+CIPSNTPCFG=0")
            assert at.ok("AT+CIPSNTPCFG?") == [b"+CIPSNTPCFG:0"]
            (line,) = at.ok("AT+CIPSNTPTIME?")
            assert _parse(line) < 86400 * 365                             # not synchronised: 1970


def test_sntp_tries_the_servers_in_order(make_emu):
    with sntp_server(offset=-3 * 86400.0) as ntp:
        dead = f"127.0.0.1:{free_port(kind=__import__('socket').SOCK_DGRAM)}"
        emu = make_emu(world=world(**{"dead.wizsock.test": dead, "ntp.wizsock.test": ntp.address}))
        with at_port(emu) as at:
            join(at)
            at.ok('AT+CIPSNTPCFG=1,0,"dead.wizsock.test","unknown.invalid","ntp.wizsock.test"')
            assert at.ok("AT+CIPSNTPCFG?") == [
                b'+CIPSNTPCFG:1,0,"dead.wizsock.test","unknown.invalid","ntp.wizsock.test"']
            (line,) = at.ok("AT+CIPSNTPTIME?", timeout=10)
            assert abs(_parse(line) - (time.time() - 3 * 86400)) < 3
            assert ntp.requests == 1


def test_sntp_unreachable_keeps_the_epoch_clock(make_emu):
    import socket
    dead = f"127.0.0.1:{free_port(kind=socket.SOCK_DGRAM)}"
    emu = make_emu(world=world(**{"ntp.wizsock.test": dead}))
    with at_port(emu) as at:
        join(at)
        at.ok('AT+CIPSNTPCFG=1,8,"ntp.wizsock.test"')
        (line,) = at.ok("AT+CIPSNTPTIME?", timeout=10)
        assert line.startswith(b"+CIPSNTPTIME:Thu Jan  1 ")
