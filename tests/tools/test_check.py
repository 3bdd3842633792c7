"""`wizsock check`: the conformance report and timing profile, held against emulators we control.

The target module is always a real emulator (a firmware variant, a non-default timing, or a
port that alters answers in front of one); the reference is the check's own emulator.  The
echo peer is the check's, on loopback.  High baud rates where timing is not the point.
"""
import json
import os
import re
import time

import pytest
import serial

import wizsock  # noqa: F401  (registers wizemu://)
from wizsock.emulator.core import Emulator
from wizsock.emulator.profile import TimingProfile
from wizsock.emulator.quirks import QUIRKS
from wizsock.framer import Ready
from wizsock.tools import check as K
from wizsock.tools.atsession import RawSession

from hostile.hostile_port import HostilePort
from tools.conftest import wizsock as wizsock_cli

BAUD = 2000000
SSID, PASSWORD = K.REFERENCE_CREDENTIALS


@pytest.fixture
def peer():
    with K.EchoPeer() as p:
        yield p


def booted(port):
    RawSession(port, BAUD).collect(lambda a, ev: isinstance(ev, Ready), timeout=5)
    return port


#: reference runs by (allow_flash, reset): the same script on the same reference emulator
#: answers the same, so the tests share them (K.check runs one per call)
_REFERENCE = {}


def run_check(url_or_port, peer, **opts):
    """The check on a URL (a fresh emulator, waited for), or on an open port the caller has
    seen booted."""
    port = url_or_port
    if isinstance(url_or_port, str):
        port = booted(serial.serial_for_url(url_or_port, baudrate=BAUD, timeout=0.005))
    o = K.Options(ssid=SSID, password=PASSWORD, echo=peer.address, **opts)
    try:
        target = K.run_script(port, BAUD, o)
    finally:
        port.close()
    key = (o.allow_flash, target.reset_skipped is None)
    if key not in _REFERENCE:
        _REFERENCE[key] = K.reference_run(o, reset=key[1])
    ref = _REFERENCE[key]
    return K.Report(str(port.port), BAUD, target, ref, K.compare(target, ref))


def found(report):
    return {(d.step, d.command.split(" ")[0], d.section) for d in report.differences}


# ----------------------------------------------------------------------------- conformance

def test_cli_against_the_emulator_reports_no_difference(tmp_path, peer):
    out, prof = tmp_path / "report.json", tmp_path / "profile.json"
    r = wizsock_cli("check", "--port", f"wizemu://?baud={BAUD}", "--baudrate", str(BAUD),
                    "--ssid", SSID, "--password-stdin", "--echo", "%s:%d" % peer.address,
                    "--json", str(out), "--profile", str(prof), input=PASSWORD + "\n", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "differences from the emulator: 0" in r.stdout
    report = json.loads(out.read_text())
    assert report["differences"] == []
    ids = {s["id"] for s in report["steps"]}
    for sid in ("basic.echo_on", "basic.at_echoed", "system.version", "system.uart_cur", "system.reset",
                "system.boot", "wifi.scan", "wifi.join", "wifi.addresses", "links.tcp_send.sent",
                "links.udp_send.echo", "links.sendbuf_2.sent", "links.status", "links.peer_closed",
                "links.host_close", "wrong.sixth_link", "wrong.overlong_data.sent", "wrong.send_too_long",
                "wrong.mode_out_of_range", "legacy.cwmode_query", "timing.ipd.echo"):
        assert sid in ids, sid
    text = out.read_text()
    # a bug report carries neither the credentials nor a MAC
    assert PASSWORD not in text and SSID not in text
    assert not re.search(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", text, re.I)
    assert os.stat(out).st_mode & 0o077 == 0
    profile = TimingProfile.load(prof)
    assert profile.boot is not None and "AT+GMR" in profile.turnaround


@pytest.mark.parametrize("quirk", sorted(QUIRKS))
def test_a_quirk_is_reported_and_nothing_else(peer, quirk):
    report = run_check(f"wizemu://?baud={BAUD}&quirks={quirk}", peer)
    q = QUIRKS[quirk]
    expected = {
        "no_change": {("links.server_delete_none", "AT+CIPSERVER=0", q.section)},
        "overlong_discard": {("wrong.overlong_data.sent", "AT+CIPSENDBUF=0,4", q.section),
                             ("wrong.after_overlong", "AT", q.section)},
    }[quirk]
    assert found(report) == expected
    assert q.command.startswith(next(iter(expected))[1].split("=")[0])


def test_a_port_that_alters_answers_is_reported_and_nothing_else(peer):
    emu = Emulator(baudrate=BAUD).start()
    try:
        port = HostilePort(emu.url, BAUD)
        booted(port)
        gmr = port.on_output(rb"SDK version:", replace=b"SDK:")
        status = port.on_output(rb"\+CIPSTATUS:", replace=b"+CIPSTATE:")
        report = run_check(port, peer)
        assert HostilePort.fired(gmr) and HostilePort.fired(status)
    finally:
        emu.stop()
    assert found(report) == {("system.version", "AT+GMR", "3.1.3"), ("links.status", "AT+CIPSTATUS", "3.3.1")}
    d = {d.step: d for d in report.differences}
    assert "+CIPSTATE:" in " ".join(d["links.status"].got)


# ----------------------------------------------------------------------------- timing profile

def test_profile_round_trip(tmp_path, peer):
    slow = tmp_path / "slow.json"
    TimingProfile(default_turnaround=0.02, send_ok=0.015, boot=0.12, line_rate_ratio=0.5).save(slow)
    first = run_check(f"wizemu://?baud={BAUD}&profile={slow}", peer)
    assert found(first) == set()
    p1 = K.profile_of(first.target, BAUD, "first", first.reference)
    measured = tmp_path / "measured.json"
    p1.save(measured)
    second = run_check(f"wizemu://?baud={BAUD}&profile={measured}", peer)
    p2 = K.profile_of(second.target, BAUD, "second", second.reference)
    a, b = p1.measured, p2.measured
    assert a["turnaround_ms"] and a["turnaround_ms"].keys() == b["turnaround_ms"].keys()
    # the measured turnarounds (each the least of its samples): every command timed at least
    # three times (the timing phase repeats its commands; a one-off sample of another step
    # goes into the profile but is no measure)
    timed = {k for k, n in a["samples"].items() if n >= 3}
    assert {"AT", "AT+GMR", "AT+CIPSTATUS", "AT+CIPSEND="} <= timed
    off = {k: (a["turnaround_ms"][k], b["turnaround_ms"][k]) for k in timed
           if abs(b["turnaround_ms"][k] - a["turnaround_ms"][k]) > 0.1 * a["turnaround_ms"][k]}
    assert not off, off
    for k in ("send_ok_ms", "boot_ms", "prompt_ms", "line_rate_ratio"):
        assert abs(b[k] - a[k]) <= 0.1 * a[k], (k, a[k], b[k])
    # the pauses between bytes were measured, not only replayed
    assert abs(p1.line_rate_ratio - 0.5) <= 0.05, p1.line_rate_ratio
    # the first emulator's timing was really not the default one
    assert min(a["turnaround_ms"][k] for k in timed) > 15 and a["boot_ms"] > 100


# ----------------------------------------------------------------------------- safety

def _state(emu):
    cur = {k: v for k, v in emu.state.cur.items() if k != "had_link"}   # a status flag, not a setting
    st = os.stat(emu.flash_path)
    with open(emu.flash_path, "rb") as f:
        flash = f.read()
    return cur, emu.echo, emu.state.mux, (st.st_ino, st.st_mtime_ns, flash)


@pytest.mark.parametrize("changed", [False, True], ids=["saved-settings", "current-settings-changed"])
def test_no_flash_write_and_current_settings_restored(peer, changed):
    emu = Emulator(baudrate=BAUD).start()
    try:
        port = booted(serial.serial_for_url(emu.url, baudrate=BAUD, timeout=0.005))
        if changed:
            s = RawSession(port, BAUD)
            for line in (b"AT+CWMODE_CUR=3", b"AT+CIPSTO=300", b"AT+CIPDINFO=1", b"AT+CIPMUX=1"):
                assert s.command(line).result == "OK"
        before = _state(emu)
        resets = emu.ready_count
        report = run_check(port, peer)
        assert found(report) == set()
        assert _state(emu) == before
        # the reset ran only when it lost nothing
        assert (emu.ready_count > resets) is (not changed)
    finally:
        emu.stop()


def test_allow_flash_does_write_the_flash(peer):
    """The state assertion above can fail: with --allow-flash the saved mode is written back."""
    emu = Emulator(baudrate=BAUD).start()
    try:
        port = booted(serial.serial_for_url(emu.url, baudrate=BAUD, timeout=0.005))
        before = _state(emu)
        run_check(port, peer, allow_flash=True)
        after = _state(emu)
    finally:
        emu.stop()
    assert after[0] == before[0] and after[3][:2] != before[3][:2]


def test_a_module_that_stops_answering_ends_the_check_early(peer):
    emu = Emulator(baudrate=BAUD).start()
    try:
        port = HostilePort(emu.url, BAUD)
        booted(port)
        mute = port.on_write(rb"AT\+CIFSR", mute=60)
        t0 = time.monotonic()
        report = run_check(port, peer, timeout=0.5)
        took = time.monotonic() - t0
        assert HostilePort.fired(mute)
    finally:
        emu.stop()
    assert "stopped answering" in report.target.silent
    silent = [d.step for d in report.differences if "<no answer>" in d.got]
    assert silent == ["wifi.addresses", "wifi.station_ip", "wifi.station_mac"]
    assert "links.status" not in report.target.steps
    assert took < 15, took


def test_cli_exit_codes_say_differences_and_no_module(peer):
    r = wizsock_cli("check", "--port", f"wizemu://?baud={BAUD}&quirks=no_change", "--baudrate", str(BAUD),
                    "--ssid", SSID, "--password-stdin", "--echo", "%s:%d" % peer.address, "--no-reset",
                    input=PASSWORD + "\n", timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "differences from the emulator: 1" in r.stdout, r.stdout
    assert re.search(r"links\.server_delete_none\s+AT\+CIPSERVER=0\s+3\.3\.16\s+OK\s+no change", r.stdout), r.stdout
    r = wizsock_cli("check", "--port", "/dev/nonexistent-wizsock-port", timeout=60)
    assert r.returncode == 3 and "cannot open" in r.stderr
