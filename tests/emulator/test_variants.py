"""Firmware quirks and timing profiles: switched on through every door the emulator has
(the class, `wizemu://?quirks=&profile=`, `wizsock emulator --quirk --profile`), off by default,
and refused precisely when misnamed."""
import json
import os
import re
import subprocess
import sys
import time

import pytest
import serial

import wizsock  # noqa: F401  (registers wizemu://)
from wizsock.emulator.core import Emulator
from wizsock.emulator.profile import TimingProfile
from wizsock.emulator.quirks import QUIRKS
from wizsock.framer import Ready
from wizsock.tools.atsession import RawSession

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BAUD = 2000000


def session(url):
    port = serial.serial_for_url(url, baudrate=BAUD, timeout=0.005)
    s = RawSession(port, BAUD)
    s.collect(lambda a, ev: isinstance(ev, Ready), timeout=5)
    s.command(b"ATE0")
    return port, s


def server_delete(s):
    assert s.command(b"AT+CIPMUX=1").result == "OK"
    ans = s.command(b"AT+CIPSERVER=0")
    return [ev.text for _, ev in ans.events if hasattr(ev, "text")], ans.result


def test_quirks_are_off_by_default_and_switch_on_one_by_one():
    port, s = session(f"wizemu://?baud={BAUD}")
    try:
        assert server_delete(s) == ([], "OK")
    finally:
        port.close()
    port, s = session(f"wizemu://?baud={BAUD}&quirks=no_change")
    try:
        assert server_delete(s) == (["no change"], "OK")
    finally:
        port.close()


@pytest.mark.parametrize("bad", ["quirks=no_such_quirk", "profile=/nonexistent/profile.json"])
def test_a_bad_quirk_or_profile_is_refused_by_name(bad):
    with pytest.raises(serial.SerialException, match=r"no_such_quirk|profile"):
        serial.serial_for_url(f"wizemu://?baud={BAUD}&{bad}", baudrate=BAUD)


def test_profile_values_are_checked(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"format": "wizsock-timing-profile", "turnaround": {"AT": -1}}))
    with pytest.raises(ValueError, match="turnaround"):
        Emulator(profile=str(path))
    path.write_text(json.dumps({"turnaround": {}}))
    with pytest.raises(ValueError, match="not a timing profile"):
        Emulator(profile=str(path))
    with pytest.raises(ValueError, match="unknown quirk"):
        Emulator(quirks=["nope"])
    assert set(QUIRKS) >= {"no_change", "overlong_discard"}


def test_cli_loads_a_quirk_and_a_profile(tmp_path):
    prof = tmp_path / "timing.json"
    TimingProfile(turnaround={"AT+GMR": 0.04}, boot=0.05).save(prof)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "wizsock", "emulator", "--listen", "127.0.0.1:0",
                             "--baud", str(BAUD), "--quirk", "no_change", "--profile", str(prof)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        line = proc.stdout.readline().decode()
        m = re.search(r"socket://127\.0\.0\.1:(\d+)", line)
        assert m, line + proc.stderr.read().decode()
        time.sleep(0.2)   # its boot
        port = serial.serial_for_url(f"socket://127.0.0.1:{m.group(1)}", timeout=0.005)
        s = RawSession(port, BAUD)
        s.drain(0.1)
        s.command(b"ATE0")
        assert server_delete(s) == (["no change"], "OK")
        gmr = min(s.command(b"AT+GMR").turnaround for _ in range(3))
        at = min(s.command(b"AT").turnaround for _ in range(3))
        port.close()
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert gmr >= 0.04 and at < 0.03, (gmr, at)


def test_cli_refuses_an_unknown_quirk():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "wizsock", "emulator", "--listen", "127.0.0.1:0",
                        "--quirk", "nope"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=30)
    assert r.returncode == 2 and "unknown quirk" in r.stderr
