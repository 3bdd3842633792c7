"""UART traces: recorded during a real HTTPS fetch, rendered by `wizsock trace`, no secret inside."""
import json
import os
import re
import stat

import pytest

import trustme

import wizsock
from tools.conftest import CANARY_HTTP, CANARY_WIFI, wizsock as run_wizsock

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "fetch.py")


def _no_secret(text, *secrets):
    for s in secrets:
        assert s not in text


def test_trace_of_an_https_fetch_renders_and_holds_no_secret(world, https_srv, tmp_path):
    w, url = world
    trace = tmp_path / "uart.jsonl"
    p = run_wizsock("run", "--port", url, "--baudrate", "921600", "--ssid", w["aps"][0]["ssid"],
                    "--trace", str(trace), "--", "python", SCRIPT,
                    https_srv.url + "/bytes/3000", https_srv.ca.ca_pem_path, CANARY_HTTP,
                    WIZSOCK_PASSWORD=CANARY_WIFI, timeout=90)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "status 200 bytes 3000" in p.stdout
    assert stat.S_IMODE(os.stat(trace).st_mode) == 0o600
    raw = trace.read_text()
    _no_secret(raw, CANARY_WIFI, CANARY_HTTP)
    records = [json.loads(line) for line in raw.splitlines()]
    assert records[0]["trace"] == "wizsock-uart-trace/1"
    assert any(r.get("line", "").startswith('AT+CWJAP_CUR="canary-lab","***"') for r in records)
    ipd = sum(r["len"] for r in records if r.get("ev") == "Data")
    assert ipd > 3000                  # the page, TLS-wrapped, came in as +IPD

    out = run_wizsock("trace", str(trace))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    _no_secret(text, CANARY_WIFI, CANARY_HTTP)
    assert 'AT+CWJAP_CUR="canary-lab","***"  -> OK' in text
    assert "AT+CIPSTART=" in text and "127.0.0.1" in text
    assert "« +IPD link" in text
    assert re.search(r"AT\+CIPSENDBUF=\d,\d+  -> OK", text)     # data after ">", nothing more
    assert re.search(r"\| > \d+ bytes", text)
    assert "« WIFI GOT IP" in text
    summary = text.splitlines()[-1]
    assert f"({ipd} bytes)" in summary


def test_trace_masks_keys_echo_and_mqtt_password(tmp_path):
    """Everything the engine writes or reads that may carry a secret, in one session."""
    trace = tmp_path / "t.jsonl"
    trace.write_text("old contents\n")
    os.chmod(trace, 0o644)
    # a real PKCS#1 RSA key: the codec refuses anything that is not one DER structure
    key = (trustme.CA(key_type=trustme.KeyType.RSA).issue_cert("canary.test", key_type=trustme.KeyType.RSA)
           .private_key_pem.bytes().decode())
    key_body = key.splitlines()[3]
    with wizsock.Module("wizemu://?baud=921600", baudrate=921600, trace=str(trace)) as m:
        m.wifi.set_mode(1)
        m.wifi.join("wizsock-lab", "wizsock123")
        m.mqtt.configure("user", CANARY_WIFI, "client-1")
        m.mqtt.settings()                         # AT+MQTTSET? prints the password back
        m.aws.set_private_key(key)
        m.system.echo(True)                       # ATE1: the module repeats command lines
        m.wifi.join("wizsock-lab", "wizsock123")
        m.system.echo(False)
    assert stat.S_IMODE(os.stat(trace).st_mode) == 0o600
    raw = trace.read_text()
    assert "old contents" not in raw
    _no_secret(raw, CANARY_WIFI, "wizsock123", key_body)
    records = [json.loads(line) for line in raw.splitlines()[1:]]
    assert any(r.get("cmd") == "AWSPKSEND" and r.get("masked") for r in records)
    assert any(r.get("ev") == "Echo" for r in records)       # echo recorded, redacted
    out = run_wizsock("trace", str(trace))
    assert out.returncode == 0, out.stderr
    assert "(certificate/key, masked)" in out.stdout


def test_trace_render_marks_gaps_errors_and_missing_answers(tmp_path):
    trace = tmp_path / "t.jsonl"
    lines = [
        {"trace": "wizsock-uart-trace/1", "start": "2026-01-01T00:00:00+00:00",
         "port": "/dev/ttyUSB0", "baudrate": 115200, "wizsock": "0.1.0"},
        {"t": 0.0, "d": ">", "line": "AT+CIPSTART=4,\"TCP\",\"10.0.0.1\",80"},
        {"t": 0.1, "d": "<", "ev": "Result", "line": "ERROR", "cmd": "CIPSTART"},
        {"t": 2.5, "d": ">", "line": "AT+GMR"},
        {"t": 2.6, "d": "<", "ev": "Garbage", "len": 7, "reason": "control bytes", "cmd": "GMR"},
        {"t": 5.7, "d": ">", "line": "AT"},
        {"t": 5.8, "d": "<", "ev": "Result", "line": "OK", "cmd": ""},
        {"t": 5.9, "d": "<", "ev": "Data", "link": 1, "len": 100, "remote": ["1.2.3.4", 80]},
        {"t": 6.0, "d": "<", "ev": "Data", "link": 1, "len": 50, "remote": ["1.2.3.4", 80]},
        {"t": 6.1, "d": "!", "note": "module reset (ready)"},
        {"t": 6.2, "d": ">", "line": "AT+CIPSEND=1,5"},
        {"t": 6.21, "d": "<", "ev": "Result", "line": "OK", "cmd": "CIPSEND"},
        {"t": 6.22, "d": "<", "ev": "Prompt", "line": ">", "cmd": "CIPSEND"},
        {"t": 6.23, "d": ">", "data": 5},
        {"t": 6.24, "d": "<", "ev": "Recv", "line": "Recv 5 bytes", "cmd": "CIPSEND"},
        {"t": 6.25, "d": "<", "ev": "Result", "line": "SEND OK", "cmd": "CIPSEND"},
    ]
    trace.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    out = run_wizsock("trace", str(trace), "--gap", "2")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert 'AT+CIPSTART=4,"TCP","10.0.0.1",80  -> ERROR' in text
    assert "! gap: 2.40 s with no traffic" in text
    assert "AT+GMR  -> no answer" in text
    assert "! 7 unreadable bytes from the module (control bytes)" in text
    assert "« +IPD link 1: 2 packets, 150 bytes from 1.2.3.4:80" in text
    assert "! module reset (ready)" in text
    assert "AT+CIPSEND=1,5  -> SEND OK  50.0 ms\n" + " " * 12 + "| OK\n" in text
    assert "| > 5 bytes\n" + " " * 12 + "| Recv 5 bytes" in text
    errors = run_wizsock("trace", str(trace), "--errors-only").stdout
    assert "AT  -> OK" not in errors and "-> ERROR" in errors


@pytest.mark.parametrize("content", ["", "hello\n", '{"t": 1}\n'])
def test_trace_refuses_what_is_not_a_trace(tmp_path, content):
    f = tmp_path / "x"
    f.write_text(content)
    out = run_wizsock("trace", str(f))
    assert out.returncode == 2 and "not a wizsock UART trace" in out.stderr + out.stdout
