"""`wizsock emulator`: prints where to connect; logs AT traffic with secrets masked."""
import os
import re
import subprocess
import sys
import time

import serial

from emulator.atclient import AT

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start(*args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "wizsock", "emulator", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)


def stop(proc):
    proc.terminate()
    try:
        return proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def test_cli_listen_logs_and_redacts(tmp_path):
    flash = tmp_path / "flash.json"
    proc = start("--listen", "127.0.0.1:0", "--baud", "2000000", "--boot-delay", "0.05",
                 "--flash", str(flash), "--rtt", "20", "--seed", "1", "--log")
    try:
        line = proc.stdout.readline().decode()
        m = re.search(r"socket://127\.0\.0\.1:(\d+)", line)
        assert m, line
        port = serial.serial_for_url(f"socket://127.0.0.1:{m.group(1)}", timeout=0.05)
        at = AT(port)
        at.sync()
        at.ok(b"AT+CWMODE_CUR=1")
        at.ok(b'AT+CWJAP_CUR="wizsock-lab","wizsock123"')
        port.close()
    finally:
        out, err = stop(proc)
    assert flash.exists()
    assert b"CWMODE_CUR=1" in err
    assert b"wizsock123" not in err  # the password is masked in the log
    assert b"CWJAP_CUR" in err


def test_cli_pty():
    proc = start("--pty", "--baud", "2000000", "--boot-delay", "0.05")
    try:
        line = proc.stdout.readline().decode()
        m = re.search(r"on (/dev/\S+)", line)
        assert m, line
        port = serial.Serial(m.group(1), baudrate=2000000, timeout=0.05)
        at = AT(port)
        at.sync()
        assert b"AT version:1.1.1.7" in at.ok(b"AT+GMR")
        port.close()
    finally:
        stop(proc)


def test_cli_rejects_bad_faults():
    proc = start("--listen", "127.0.0.1:0", "--faults", "nonsense")
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and b"unknown fault" in err
    assert time.monotonic() - t0 < 20


def test_wizemu_url_options(tmp_path):
    import wizsock  # noqa: F401
    flash = tmp_path / "f.json"
    port = serial.serial_for_url(f"wizemu://?baud=921600&rtt=150&flash={flash}&seed=3&boot=0.01",
                                 baudrate=921600, timeout=0.05)
    at = AT(port)
    at.wait_ready()
    assert port.emulator.rtt == 0.15 and port.emulator.baud == 921600
    assert flash.exists()
    port.close()
    try:
        serial.serial_for_url("wizemu://?bogus=1", baudrate=921600)
    except serial.SerialException as e:
        assert "bogus" in str(e)
    else:
        raise AssertionError("unknown option accepted")
    try:
        serial.serial_for_url("wizemu://nobody-here", baudrate=921600)
    except serial.SerialException as e:
        assert "nobody-here" in str(e)
    else:
        raise AssertionError("attached to nothing")


def test_cli_trace_memory_reports_on_sigusr2(tmp_path):
    import json
    import signal
    report = tmp_path / "mem.jsonl"
    proc = start("--pty", "--baud", "2000000", "--boot-delay", "0.05", "--trace-memory", str(report))
    try:
        assert b" on /dev/" in proc.stdout.readline()
        records = []
        for _ in range(2):
            before = len(records)
            deadline = time.monotonic() + 10
            while len(records) == before and time.monotonic() < deadline:
                proc.send_signal(signal.SIGUSR2)
                time.sleep(0.2)
                records = [json.loads(line) for line in report.read_text().splitlines()] \
                    if report.exists() else []
            assert len(records) > before
        assert proc.poll() is None              # reporting does not stop the module
    finally:
        stop(proc)
    last = records[-1]
    assert set(last) == {"traced", "peak", "tracemalloc", "rss", "threads", "fds"}
    assert 0 < last["traced"] <= last["peak"] and last["rss"] > last["traced"]
    assert last["threads"] >= 2 and last["fds"] > 3
