"""A driver written for real modules, from PyPI and unmodified: Adafruit's
`adafruit_espatcontrol` (adafruit-circuitpython-esp-atcontrol, the ESP-AT driver
WIZnet forked for the WizFi360) with its `adafruit_requests`, against
`wizsock emulator --pty --log` in a subprocess and real peers on loopback.

The tests share one driver object and run in file order, as a program on the board
would: begin, mode, scan, join, IP/DNS/ping, SNTP, TCP, UDP, verified SSL, HTTP and
HTTPS through its requests library and WiFi manager, the module's MQTT through the
driver's own command call, then the resets and deep sleep. Where this ESP-AT driver
and WizFi360 firmware differ, the emulator answers as the WizFi360 spec says and the
test says what the driver makes of it (also listed in tests/vendor/README.md); the
emulator's UART log (`wizsock.emulator.uartlog`) shows what crossed the wire.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.metadata
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import paho.mqtt.client as paho
import pytest

from support import servers
from support.atport import AtPort
from wizsock.emulator.uartlog import HOST_TO_MODULE, MODULE_TO_HOST, parse_log

import adafruit_requests
import busio  # tests/vendor/shims
from adafruit_espatcontrol import adafruit_espatcontrol as espat
from adafruit_espatcontrol import adafruit_espatcontrol_socket as espsocket
from adafruit_espatcontrol.adafruit_espatcontrol_wifimanager import ESPAT_WiFiManager
from digitalio import DigitalInOut  # tests/vendor/shims

SSID, PASSWORD = "wiz-lab", "wizfi360-pass"
STA_IP = "192.168.50.23"
RUN_BAUD = 921600
#: the registry packages this test runs (pyproject's `test` extra)
PACKAGES = ("adafruit-circuitpython-esp-atcontrol", "adafruit-circuitpython-requests")
#: requests 2.0 and later read only with recv_into, which the driver's socket lacks
#: (adafruit/Adafruit_CircuitPython_ESP_ATcontrol#74, open); 1.14.1 is the last that
#: falls back to recv
REQUESTS_PIN = "1.14.1"

# The driver reads a CIPSEND's "SEND OK" with everything else waiting on the UART and
# throws away what came with it, so a reply that follows SEND OK at once (an echo
# piggybacking the ACK) is lost - on the real module as on the emulator. The peers
# here answer after REPLY_DELAY, as a server doing some work would.
REPLY_DELAY = 0.15


class SlowHandler(servers.DefaultHandler):
    def _send(self, *args, **kw):
        time.sleep(REPLY_DELAY)
        return super()._send(*args, **kw)


class SlowEcho:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn):
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                time.sleep(REPLY_DELAY)
                conn.sendall(data)

    def close(self):
        self.sock.close()


class UdpEcho:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.seen = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                data, addr = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            self.seen.append((data, addr))
            time.sleep(REPLY_DELAY)
            self.sock.sendto(data, addr)

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


class Lab:
    def wire(self):
        """(direction, bytes) of every UART log record so far."""
        with open(self.log, encoding="utf-8") as f:
            return [(r.direction, r.data) for r in parse_log(f)]

    def answer_to(self, command: bytes, since: int = 0) -> bytes:
        """What the module sent after the host's last `command` line (from record `since`)
        up to the host's next line."""
        records = self.wire()[since:]
        starts = [i for i, (d, b) in enumerate(records) if d == HOST_TO_MODULE and b == command + b"\r\n"]
        assert starts, (command, records[-20:])
        out = b""
        for d, b in records[starts[-1] + 1:]:
            if d == HOST_TO_MODULE:
                break
            out += b
        return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("espat")
    with contextlib.ExitStack() as stack:
        lab = Lab()
        lab.ca = stack.enter_context(servers.test_ca())
        lab.http = stack.enter_context(servers.http_server(SlowHandler))
        lab.https = stack.enter_context(servers.https_server(lab.ca, SlowHandler))
        lab.untrusted = stack.enter_context(servers.https_server())    # its own CA, unknown to the module
        lab.echo = SlowEcho()
        stack.callback(lab.echo.close)
        lab.sntp = stack.enter_context(servers.sntp_server())
        lab.broker = stack.enter_context(servers.mosquitto_broker())
        lab.udp = UdpEcho()
        stack.callback(lab.udp.close)
        world = {
            "aps": [{"ssid": SSID, "password": PASSWORD, "ecn": 3, "rssi": -41, "mac": "00:08:dc:00:00:01",
                     "channel": 6, "ip": STA_IP},
                    {"ssid": "wiz-guest", "password": "", "ecn": 0, "rssi": -70, "mac": "00:08:dc:00:00:02",
                     "channel": 11}],
            "dns": {"lab.wiz.test": "127.0.0.1", "localhost": "127.0.0.1"},
            # requests' socket picks TCP/SSL from the port (80/443): map them to the servers
            "nat": {"127.0.0.1:80": f"127.0.0.1:{lab.http.port}",
                    "127.0.0.1:443": f"127.0.0.1:{lab.https.port}",
                    "127.0.0.2:443": f"127.0.0.1:{lab.untrusted.port}"},
            "endpoints": {"ntp.wiz.test": lab.sntp.address},
        }
        (tmp / "world.json").write_text(json.dumps(world))
        lab.log = str(tmp / "uart.log")
        lab.proc = subprocess.Popen(
            [sys.executable, "-m", "wizsock", "emulator", "--pty", "--baud", "115200", "--rtt", "10",
             "--world", str(tmp / "world.json"), "--flash", str(tmp / "flash.json"), "--seed", "7",
             "--boot-delay", "0.3", "--log", lab.log], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stack.callback(_stop, lab.proc)
        line = lab.proc.stdout.readline().decode()
        assert line.startswith("WizFi360 emulator on /dev/"), (line, lab.proc.stderr.read(2000))
        lab.path = line.split()[3]
        # provisioning, as a factory tool would: the CA the module verifies servers with
        with AtPort(lab.path, baudrate=115200) as at:
            at.sync()
            _, result = at.command_with_data("AT+CASEND=1", lab.ca.ca_pem)
            assert result == "OK"
            at.ok("AT+CIPSSLCONF=2")
        lab.uart = busio.UART(lab.path, None, baudrate=115200, receiver_buffer_size=2048)
        stack.callback(lab.uart.deinit)
        # the RST pin: low pulls the module's reset line (SIGUSR1 to the emulator)
        lab.resets = []

        def rst(level, pid=lab.proc.pid):
            if not level:
                lab.resets.append(time.monotonic())
                os.kill(pid, signal.SIGUSR1)
        lab.esp = espat.ESP_ATcontrol(lab.uart, 115200, run_baudrate=RUN_BAUD, reset_pin=DigitalInOut(rst),
                                      debug=bool(os.environ.get("ESPAT_DEBUG")))
        yield lab


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_the_driver_comes_from_the_registry():
    # installed by pip (pyproject's test extra), not a copy in the repository
    root = pathlib.Path(__file__).resolve().parents[2]
    for module in (espat, adafruit_requests):
        where = pathlib.Path(module.__file__).resolve()
        assert root not in where.parents or ".venv" in where.parts, where
        assert "site-packages" in where.parts or "dist-packages" in where.parts, where
    for name in PACKAGES:
        # unmodified: every installed file matches the hash pip recorded from the wheel
        checked = 0
        for f in importlib.metadata.files(name) or []:
            if f.hash is None or f.suffix != ".py":
                continue
            digest = base64.urlsafe_b64encode(hashlib.new(f.hash.mode, f.read_binary()).digest()).rstrip(b"=")
            assert digest.decode() == f.hash.value, f
            checked += 1
        assert checked, name
    assert espat.__version__ == importlib.metadata.version(PACKAGES[0])
    assert importlib.metadata.version(PACKAGES[1]) == REQUESTS_PIN


def test_begin_version_mode_and_scan(lab):
    e = lab.esp
    # AT, ATE0, AT+UART_CUR=921600,8,1,0,0 and a resync, AT+GMR, AT+CIPMUX?,
    # AT+CIPSSLSIZE=4096 (spec 3.3.4), AT+CWSTATE?
    e.begin()
    assert e.baudrate == RUN_BAUD and lab.uart.baudrate == RUN_BAUD
    assert e.version.startswith("AT version:1.1.1.7")
    assert e.get_version() == e.version
    assert e.cipmux == 0
    assert lab.answer_to(b"AT+CIPSSLSIZE=4096").endswith(b"OK\r\n")
    # ESP-AT 2.x's AT+CWSTATE? is not WizFi360 firmware: ERROR, and the driver falls back
    # to AT+CIPSTATUS, as it does for an ESP8285
    assert lab.answer_to(b"AT+CWSTATE?").endswith(b"ERROR\r\n")
    assert e.mode == e.MODE_SOFTAP       # AT+CWMODE? (the legacy form) on a factory-fresh module
    e.mode = e.MODE_STATION              # AT+CWMODE=1
    assert e.mode == e.MODE_STATION
    aps = e.scan_APs()
    assert [3, SSID, -41, "00:08:dc:00:00:01", 6, 0] in aps
    assert [0, "wiz-guest", -70, "00:08:dc:00:00:02", 11, 0] in aps
    assert e.status == e.STATUS_NOTCONNECTED     # AT+CIPSTATUS: STATUS:5


def test_join_ip_dns_and_ping(lab):
    e = lab.esp
    e.connect({"ssid": SSID, "password": PASSWORD, "timezone": 9, "ntp_server": "ntp.wiz.test"})
    assert e.is_connected and e.status == e.STATUS_APCONNECTED
    assert e.local_ip == STA_IP
    # remote_AP compares bytes with a str (`reply.startswith("+CWJAP:")`): fine on
    # CircuitPython, a TypeError on CPython; the answer itself is the spec's
    with pytest.raises(TypeError):
        e.remote_AP
    assert b'+CWJAP:"wiz-lab","00:08:dc:00:00:01",6,-41' in e.at_response("AT+CWJAP?")
    assert e.nslookup("lab.wiz.test") == "127.0.0.1"   # from +CIPDOMAIN:"127.0.0.1" (spec 3.3.2)
    ms = e.ping("127.0.0.1")                   # WizFi360 answers "+<ms>", ESP-AT 2.x "+PING:<ms>"
    assert isinstance(ms, int) and 0 <= ms < 2000
    assert e.ping("unknown.invalid") is None    # DNS Fail: +timeout/ERROR, the driver's None
    # the password crossed the wire; the log masks it and marks the records
    text = pathlib.Path(lab.log).read_text()
    assert PASSWORD not in text and f'AT+CWJAP="{SSID}","***"' in text


def test_sntp_time(lab):
    stamp = lab.esp.sntp_time                 # configured by connect(): AT+CIPSNTPCFG=1,9,"ntp.wiz.test"
    assert stamp is not None
    assert str(time.gmtime(time.time() + 9 * 3600).tm_year).encode() in stamp


def test_tcp_send_and_receive(lab):
    e = lab.esp
    assert e.socket_connect(e.TYPE_TCP, "127.0.0.1", lab.echo.port)   # AT+CIPSTART="TCP",...,10
    assert e.status == e.STATUS_SOCKETOPEN
    for payload in (b"hello wizfi\r\n", bytes(range(256)) * 5):
        assert e.socket_send(payload)
        got = b""
        while len(got) < len(payload):
            chunk = e.socket_receive(timeout=3)
            assert chunk, got
            got += chunk
        assert got == payload
    e.socket_disconnect()
    assert e.status == e.STATUS_SOCKETCLOSED


def test_udp_send_and_receive(lab):
    e = lab.esp
    # the driver opens UDP with its keepalive (10) as the 4th parameter, which for UDP
    # is the local port (spec 3.3.3): the module opens local port 10
    assert e.socket_connect(e.TYPE_UDP, "127.0.0.1", lab.udp.port)
    assert e.socket_send(b"datagram from the driver")
    assert bytes(e.socket_receive(timeout=3)) == b"datagram from the driver"
    assert lab.udp.seen and lab.udp.seen[-1][0] == b"datagram from the driver"
    e.socket_disconnect()


def test_ssl_verified_with_the_provisioned_ca(lab):
    e = lab.esp
    before = lab.https.connections
    assert e.socket_connect(e.TYPE_SSL, "localhost", 443)
    assert e.status == e.STATUS_SOCKETOPEN and lab.https.connections == before + 1
    assert e.socket_send(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    got = b""
    while b"hello from the test server" not in got:
        chunk = e.socket_receive(timeout=3)
        assert chunk, got
        got += chunk
    assert got.startswith(b"HTTP/1.0 200") or got.startswith(b"HTTP/1.1 200")
    e.socket_disconnect()
    # a server whose certificate the module's CA did not sign: the module refuses it
    with pytest.raises(espat.OKError):
        e.socket_connect(e.TYPE_SSL, "127.0.0.2", 443)
    assert e.status != e.STATUS_SOCKETOPEN


def test_http_and_https_through_its_requests_library(lab):
    e = lab.esp
    # requests' own (legacy) entry point: the driver's socket module and the module as
    # its TLS ("SSL" connection type); requests 1.x reads with recv (see REQUESTS_PIN)
    adafruit_requests.set_socket(espsocket, e)
    r = adafruit_requests.get("http://localhost/", timeout=1)
    assert r.status_code == 200 and r.text == "hello from the test server\n"
    assert r.headers["content-type"] == "text/plain"
    r.close()
    body = b"posted by Adafruit's driver"
    r = adafruit_requests.post("http://localhost/echo", data=body, timeout=1)
    assert r.status_code == 200 and r.content == body
    r.close()
    # HTTPS: the module does the handshake and verifies the server with its CA
    before = lab.https.connections
    r = adafruit_requests.get("https://localhost/bytes/300", timeout=1)
    assert r.status_code == 200 and r.content == servers.deterministic_bytes(300)
    r.close()
    assert lab.https.connections == before + 1
    e.socket_disconnect()
    manager = ESPAT_WiFiManager(e, {"ssid": SSID, "password": PASSWORD})
    r = manager.get("http://localhost/bytes/600", timeout=1)
    assert r.status_code == 200 and r.content == servers.deterministic_bytes(600)
    r.close()
    r = manager.post("http://localhost/", json={"from": "wifimanager"}, timeout=1)
    assert r.json() == {"length": len(b'{"from": "wifimanager"}'),
                        "sha256": servers.sha256(b'{"from": "wifimanager"}')}
    r.close()
    e.socket_disconnect()
    # the manager's HTTPS goes through adafruit_connection_manager's fake SSL socket,
    # which copies the socket's recv_into, a method the driver's socket does not have
    # (upstream adafruit/Adafruit_CircuitPython_ESP_ATcontrol#74): no AT traffic at all
    mark = len(lab.wire())
    with pytest.raises(AttributeError, match="recv_into"):
        manager.get("https://localhost/", timeout=1)
    assert not any(d == HOST_TO_MODULE and b.startswith(b"AT+CIPSTART") for d, b in lab.wire()[mark:])
    # the manager's ping passes ttl= that ESP_ATcontrol.ping does not take
    with pytest.raises(TypeError, match="ttl"):
        manager.ping("127.0.0.1")


def test_module_mqtt_through_the_drivers_command_call(lab):
    # the ESP-AT driver has no MQTT methods (WIZnet's fork added them); its at_response
    # sends the WizFi360's AT+MQTT* commands (spec 3.3.29-3.3.33) as any program would
    e = lab.esp
    got = []
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="observer")
    client.on_message = lambda c, u, msg: got.append((msg.topic, msg.payload))
    client.connect("127.0.0.1", lab.broker.port)
    client.subscribe("wiz/pub")
    client.loop_start()
    try:
        e.at_response('AT+MQTTSET="user","secret","espat-cp",60')
        e.at_response('AT+MQTTTOPIC="wiz/pub","wiz/sub"')
        e.at_response(f'AT+MQTTCON=0,"127.0.0.1",{lab.broker.port}', timeout=10)
        # AT+MQTTPUB answers OK (spec 3.3.32); the message reaches the broker
        e.at_response('AT+MQTTPUB="hello broker"')
        deadline = time.monotonic() + 5
        while ("wiz/pub", b"hello broker") not in got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ("wiz/pub", b"hello broker") in got
        # a message on the subscribed topic comes as the URC "<topic> -> <data>"; the
        # driver has no reader for it (at_response flushes its input), the log shows it
        client.publish("wiz/sub", b"hello module")
        deadline = time.monotonic() + 5
        while (MODULE_TO_HOST, b"wiz/sub -> hello module\r\n") not in lab.wire():
            assert time.monotonic() < deadline, lab.wire()[-10:]
            time.sleep(0.05)
        # AT+MQTTDIS answers CLOSE (spec 3.3.33), not OK: at_response retries and gives up
        mark = len(lab.wire())
        with pytest.raises(espat.OKError):
            e.at_response("AT+MQTTDIS", timeout=2, retries=1)
        assert lab.answer_to(b"AT+MQTTDIS", since=mark).endswith(b"CLOSE\r\n")
        assert e.status != e.STATUS_SOCKETOPEN
    finally:
        client.loop_stop()
        client.disconnect()
    text = pathlib.Path(lab.log).read_text()
    assert '"secret"' not in text      # the MQTT password is masked in the log


def test_resets_and_deep_sleep(lab):
    e = lab.esp
    assert e.soft_reset() is True       # AT+RST: OK, then the module restarts ("ready")
    assert e.sync()
    assert e.mode == e.MODE_STATION     # AT+CWMODE=1 was saved in the flash (legacy form)
    e.hard_reset()                      # the RST pin: back at the factory rate
    assert lab.resets and lab.uart.baudrate == 115200
    # is_connected runs begin() again at the factory rate; autoconnect rejoined the AP
    # that the legacy AT+CWJAP saved in the flash
    assert e.is_connected and e.baudrate == RUN_BAUD
    assert e.deep_sleep(1000)           # AT+GSLP=1000 (spec 3.1.4: 1000 ms at least)
    time.sleep(1.5)
    assert e.sync()
    pulses = len(lab.resets)
    e.factory_reset()                   # hard reset, then AT+RESTORE: OK and a restart
    assert len(lab.resets) == pulses + 1
    time.sleep(1.0)
    assert e.sync()
    # AT+RESTORE without <type> restores the Station MAC only (spec 3.1.6, type 0)
    assert e.mode == e.MODE_STATION
    # the whole conversation is in the log, both ways
    wire = lab.wire()
    assert (HOST_TO_MODULE, b"AT+RESTORE\r\n") in wire
    assert any(d == MODULE_TO_HOST and b == b"ready\r\n" for d, b in wire)
