"""Secret hygiene (issue 8, finding 5): canary credentials through every API that
takes them, with the ``wizsock`` loggers at DEBUG and the emulator's traffic log
on; no canary in any log record, exception (message, repr, traceback), record
repr, the emulator's log, or a file readable by others.
"""
from __future__ import annotations

import io
import logging
import os
import stat
import tempfile
import time
import traceback

import pytest
import trustme

import wizsock
from wizsock import protocol as P
from wizsock import ssl as wssl
from wizsock.emulator import Emulator
from wizsock.emulator.core import load_world

from hardening.helpers import BAUD, blocking_module, emulated

WIFI_PW = "cAnaryWifiPw-71"
SOFTAP_PW = "cAnarySoftApPw-72"
MQTT_USER = "cAnaryMqttUser-73"
MQTT_PW = "cAnaryMqttPw-74"
AZURE_KEY = "Y0FuYXJ5QXp1cmVLZXk3NQ=="          # base64, as the hub wants it
_CA = trustme.CA(key_type=trustme.KeyType.RSA)
_LEAF = _CA.issue_cert("device.wizsock.test", key_type=trustme.KeyType.RSA)
AWS_KEY = _LEAF.private_key_pem.bytes().decode()
AWS_CERT = _LEAF.cert_chain_pems[0].bytes().decode()


def _body_lines(pem):
    return [l for l in pem.strip().splitlines() if not l.startswith("-----")]


# every string that must never show: the credentials, and each line of key material
# (the last, short line included); certificate lines too (the issue lists them)
CANARIES = [WIFI_PW, SOFTAP_PW, MQTT_USER, MQTT_PW, AZURE_KEY.rstrip("=")] + \
    [l for l in _body_lines(AWS_KEY) if len(l) >= 4] + \
    [l for l in _body_lines(AWS_CERT)[1:] if len(l) >= 8]


class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.texts = []

    def emit(self, record):
        text = record.getMessage()
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        self.texts.append(text)


#: for scanning files: what is unique to this test (trustme certificates share lines)
SECRETS = CANARIES[:5] + [l for l in _body_lines(AWS_KEY) if len(l) >= 16]


def leaks(text, canaries=CANARIES):
    return [c for c in canaries if c in text]


@pytest.fixture(scope="module")
def world():
    w = load_world(None)
    w["aps"].append({"ssid": "canary-ap", "password": WIFI_PW, "ecn": 3, "rssi": -40,
                     "mac": "00:08:dc:5a:1a:77", "channel": 3, "ip": "192.168.77.2"})
    return w


@pytest.fixture(scope="module")
def emu_log():
    return io.StringIO()


@pytest.fixture(scope="module")
def emu(world, emu_log):
    # the flash file lives in the temp directory (mkstemp), like every default emulator
    with emulated(world=world, log_file=emu_log) as e:
        yield e


@pytest.fixture(scope="module")
def module(emu):
    with blocking_module(emu) as m:
        yield m


@pytest.fixture
def capture():
    logger = logging.getLogger("wizsock")
    handler = Capture()
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def _exception_texts(exc):
    return [str(exc), repr(exc), repr(exc.args),
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))]


def test_canaries_through_every_api(module, emu, emu_log, capture):
    started = time.time()
    errors = []
    results = []

    def call(fn, *args, **kw):
        try:
            results.append(fn(*args, **kw))
        except Exception as exc:           # judged below: its texts must not leak
            errors.append(exc)

    m = module
    call(m.system.echo, True)          # the module echoes every command line (ATE1)
    call(m.wifi.set_mode, 3)
    call(m.wifi.join, "canary-ap", WIFI_PW)
    call(m.wifi.join, "canary-ap", WIFI_PW, default=True)
    call(m.wifi.join, "no-such-ap", WIFI_PW)                 # JoinError
    call(m.wifi.join, "canary-ap", WIFI_PW + "x" * 70)       # too long: the codec refuses
    call(m.wifi.join, "canary-ap", WIFI_PW + "\r\n")         # control character
    call(m.wifi.joined)
    call(m.wifi.configure_softap, "canary-softap", SOFTAP_PW, 5, 3)
    call(m.wifi.configure_softap, "canary-softap", SOFTAP_PW, 5, 3, default=True)
    call(m.wifi.configure_softap, "canary-softap", SOFTAP_PW + "\x00", 5, 3)
    call(m.wifi.softap)
    call(m.wifi.softap, default=True)
    call(m.mqtt.configure, MQTT_USER, MQTT_PW, "canary-client", 60)
    call(m.mqtt.configure, MQTT_USER, MQTT_PW + "y" * 60, "canary-client", 60)
    call(m.mqtt.configure, MQTT_USER + '"', MQTT_PW, "canary-client", 60)
    call(m.mqtt.settings)
    call(m.azure.configure, "hub", "dev", AZURE_KEY)
    call(m.azure.configure, "hub", "dev", AZURE_KEY + "\n")
    call(m.aws.set_private_key, AWS_KEY)
    call(m.aws.private_key)
    call(m.aws.set_client_cert, AWS_CERT)
    call(m.aws.client_cert)
    call(m.aws.set_private_key, AWS_KEY.replace(_body_lines(AWS_KEY)[2],
                                                _body_lines(AWS_KEY)[2][:-1] + "\xe9").encode("latin-1"))
    call(m.aws.set_private_key, AWS_KEY + "AT+RST\r\n")
    call(m.net.set_ca, AWS_KEY)                              # a key where the CA goes
    call(m.mqtt.publish, AWS_KEY.encode("utf-16"))           # not UTF-8
    call(wssl.ModuleSSLContext, cadata=AWS_CERT, certfile=None)
    call(wssl.ModuleSSLContext, cadata=AWS_KEY)

    # the calls happened: the records and refusals we expect are there
    assert any(type(r).__name__ == "MqttSettings" for r in results)
    assert any(type(r).__name__ == "Pem" for r in results)
    assert sum(isinstance(e, ValueError) for e in errors) >= 8
    assert any(isinstance(e, wizsock.errors.JoinError) for e in errors)
    assert m.mqtt.settings().password == MQTT_PW            # the API still gives it to its caller

    found = {}
    for text in capture.texts:
        for c in leaks(text):
            found.setdefault("log", []).append((c, text[:120]))
    for exc in errors:
        for text in _exception_texts(exc):
            for c in leaks(text):
                found.setdefault("exception", []).append((c, type(exc).__name__))
    for r in results:
        for c in leaks(repr(r)):
            found.setdefault("repr", []).append((c, type(r).__name__))
    for c in leaks(emu_log.getvalue()):
        found.setdefault("emulator log", []).append(c)
    assert capture.texts and "AT+MQTTSET" in emu_log.getvalue()  # the logs were on
    assert any(" <- Echo" in t for t in capture.texts)             # echo was on
    assert not found, found

    # files: the emulator's flash holds the WiFi password and the key: owner-only
    st = os.stat(emu.flash_path)
    assert stat.S_IMODE(st.st_mode) & 0o077 == 0, oct(st.st_mode)
    with open(emu.flash_path, encoding="utf-8") as f:
        assert WIFI_PW in f.read()                           # (it is the flash after all)
    # and no file anywhere in the temp directory written since the start shows a canary
    # to others
    for root, _dirs, files in os.walk(tempfile.gettempdir()):
        for name in files:
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode) or st.st_mtime < started - 1 \
                        or st.st_size > 1 << 20:
                    continue
                with open(path, "rb") as f:
                    data = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            if leaks(data, SECRETS):
                assert stat.S_IMODE(st.st_mode) & 0o077 == 0, (path, oct(st.st_mode))


def test_flash_file_given_by_the_user_is_made_owner_only(tmp_path, world):
    path = tmp_path / "flash.json"
    path.write_text("{}")
    os.chmod(path, 0o644)
    e = Emulator(baudrate=BAUD, world=world, flash=str(path), boot_delay=0.05)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert [p.name for p in tmp_path.iterdir()] == ["flash.json"]     # no temp file left
    finally:
        e.stop()


def test_redaction_of_a_conversation():
    r = P.Redactor()
    lines = [(True, b"AT+MQTTSET?"), (False, f'"{MQTT_USER}","{MQTT_PW}","c",60'.encode()),
             (True, b"AT+AWSPKSEND=1"),
             *[(True, l.encode()) for l in AWS_KEY.strip().splitlines()],
             (True, b"AT+AWSPKSEND?"),
             *[(False, l.encode()) for l in AWS_KEY.strip().splitlines()],
             (True, f'AT+CWJAP_CUR="x","{WIFI_PW}"'.encode()),
             (False, f'AT+CWSAP_CUR="x","{SOFTAP_PW}",5,3'.encode()),
             (True, f'AT+AZSET="h","d","{AZURE_KEY}"'.encode())]
    shown = b"\n".join(r.line(l, d) for d, l in lines).decode()
    assert not leaks(shown), leaks(shown)
    assert "AT+MQTTSET?" in shown and "-----BEGIN RSA PRIVATE KEY-----" in shown


def test_emulator_cli_log_masks_answers_and_keys(tmp_path):
    """`wizsock emulator --log` (the issue's repro): AT+MQTTSET? answered, a key uploaded
    and read back; stderr shows the commands, not the secrets; the flash file is 0600."""
    import re
    import subprocess
    import sys

    from support.atport import AtPort

    flash = tmp_path / "flash.json"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "wizsock", "emulator", "--listen",
                             "127.0.0.1:0", "--baud", str(BAUD), "--boot-delay", "0.05",
                             "--flash", str(flash), "--log"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=root)
    try:
        line = proc.stdout.readline().decode()
        port = re.search(r"socket://127\.0\.0\.1:(\d+)", line)
        assert port, line
        with AtPort(f"socket://127.0.0.1:{port.group(1)}", baudrate=BAUD) as at:
            at.sync()
            at.ok(f'AT+MQTTSET="{MQTT_USER}","{MQTT_PW}","cid",60')
            assert MQTT_PW.encode() in b"".join(at.ok("AT+MQTTSET?"))
            at.command_with_data("AT+AWSPKSEND=1", P.pem_upload("AWSPKSEND", AWS_KEY))
            assert len(at.ok("AT+AWSPKSEND?")) > 10
    finally:
        proc.terminate()
        try:
            _out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
    text = err.decode("utf-8", "replace")
    assert "AT+MQTTSET?" in text and "AT+AWSPKSEND?" in text
    assert not leaks(text), leaks(text)
    assert stat.S_IMODE(os.stat(flash).st_mode) == 0o600
