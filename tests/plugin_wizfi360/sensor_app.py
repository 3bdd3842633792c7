"""A small user program that knows nothing of wizsock: it fetches its settings
over HTTPS with requests and reports a reading over MQTT with paho-mqtt.

tests/plugin_wizfi360/test_sensor_app.py tests it against an emulated WizFi360
with the wizsock pytest plugin only.
"""
from __future__ import annotations

import json
import threading

import paho.mqtt.client as mqtt
import requests


def fetch_settings(base_url: str, cafile: str) -> dict:
    """GET <base_url>/settings.json (verified against ``cafile``)."""
    r = requests.get(base_url + "/settings.json", verify=cafile, timeout=15)
    r.raise_for_status()
    return r.json()


def report(broker: str, port: int, topic: str, reading: dict, timeout: float = 15.0) -> bytes:
    """Publish ``reading`` (QoS 1) and return the copy the broker sends back to our
    own subscription, which proves the round trip."""
    got = threading.Event()
    echoed = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sensor-app")

    def on_connect(c, userdata, flags, reason_code, properties):
        c.subscribe(topic, qos=1)

    def on_subscribe(c, userdata, mid, reason_codes, properties):
        c.publish(topic, json.dumps(reading), qos=1)

    def on_message(c, userdata, msg):
        echoed.append(msg.payload)
        got.set()

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect(broker, port, keepalive=30)
    client.loop_start()
    try:
        if not got.wait(timeout):
            raise TimeoutError(f"no echo of {topic!r} from {broker}:{port} in {timeout} s")
    finally:
        client.disconnect()
        client.loop_stop()
    return echoed[0]


def main(settings_url: str, cafile: str, broker: str, port: int) -> bytes:
    settings = fetch_settings(settings_url, cafile)
    return report(broker, port, settings["topic"], {"sensor": settings["name"], "celsius": 21.5})
