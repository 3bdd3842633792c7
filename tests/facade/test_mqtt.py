"""Unmodified paho-mqtt 2.x through the emulated module and a real mosquitto."""
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from support.servers import mosquitto_available
from conftest import require


@pytest.fixture(autouse=True)
def _need_mosquitto():
    require(mosquitto_available(), "the mosquitto binary")


class Collector:
    def __init__(self):
        self.messages = []
        self.connects = 0
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.cond = threading.Condition()

    def attach(self, client):
        client.on_connect = self.on_connect
        client.on_message = self.on_message
        client.on_subscribe = lambda *a, **k: self.subscribed.set()

    def on_connect(self, client, userdata, flags, reason_code, properties):
        self.connects += 1
        client.subscribe("wizsock/#", qos=2)
        self.connected.set()

    def on_message(self, client, userdata, msg):
        with self.cond:
            self.messages.append((msg.topic, msg.payload, msg.qos))
            self.cond.notify_all()

    def wait_for(self, n, timeout=15):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.messages) >= n, timeout), self.messages
        return self.messages


def _client(tls_ca=None):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"wizsock-{time.monotonic_ns()}")
    if tls_ca:
        c.tls_set(ca_certs=tls_ca)
    c.reconnect_delay_set(min_delay=1, max_delay=2)
    return c


def _exchange(client, col):
    assert col.connected.wait(15)
    assert col.subscribed.wait(15)
    for qos in (0, 1, 2):
        info = client.publish(f"wizsock/q{qos}", f"payload {qos}".encode() * 20, qos=qos)
        info.wait_for_publish(15)
    got = col.wait_for(3)
    assert sorted((t, q) for t, _, q in got) == [("wizsock/q0", 0), ("wizsock/q1", 1), ("wizsock/q2", 2)]
    assert all(p.startswith(b"payload ") for _, p, _ in got)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_loop_start_qos012(mosquitto_tls, patched, at_log, tls):
    col = Collector()
    c = _client(mosquitto_tls.ca.ca_pem_path if tls else None)
    col.attach(c)
    port = mosquitto_tls.tls_port if tls else mosquitto_tls.port
    c.connect("localhost" if tls else "127.0.0.1", port, keepalive=30)
    c.loop_start()
    try:
        _exchange(c, col)
    finally:
        c.disconnect()
        c.loop_stop()
    assert at_log.count("CIPSTART") == 1     # the broker connection; the wake-up pair stayed local


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_loop_forever_qos012(mosquitto_tls, patched, tls):
    col = Collector()
    c = _client(mosquitto_tls.ca.ca_pem_path if tls else None)
    col.attach(c)
    port = mosquitto_tls.tls_port if tls else mosquitto_tls.port
    c.connect("localhost" if tls else "127.0.0.1", port, keepalive=30)
    t = threading.Thread(target=c.loop_forever, daemon=True)
    t.start()
    try:
        _exchange(c, col)
    finally:
        c.disconnect()
        t.join(10)
    assert not t.is_alive()


def test_broker_restart_reconnects(mosquitto, patched):
    col = Collector()
    c = _client()
    col.attach(c)
    c.connect("127.0.0.1", mosquitto.port, keepalive=5)
    c.loop_start()
    try:
        assert col.connected.wait(15)
        assert col.subscribed.wait(15)
        col.connected.clear()
        col.subscribed.clear()
        mosquitto.restart(down=0.5)
        deadline = time.monotonic() + 30
        while col.connects < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert col.connects >= 2, "paho did not reconnect after the broker restart"
        assert col.subscribed.wait(15)
        c.publish("wizsock/after", b"back", qos=1).wait_for_publish(15)
        assert ("wizsock/after", b"back", 1) in col.wait_for(1)
    finally:
        c.disconnect()
        c.loop_stop()
