"""An ordinary program: requests + paho-mqtt, nothing wizsock-specific.
Usage: fetch_and_publish.py URL CA_FILE MQTT_PORT"""
import sys
import threading

import paho.mqtt.client as mqtt
import requests
import socket

url, ca, mqtt_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
print("socket class:", socket.socket.__module__ + "." + socket.socket.__qualname__)

r = requests.get(url, verify=ca, timeout=20)
r.raise_for_status()
print("fetched", len(r.content), "bytes")
r.close()

got = threading.Event()
received = []


def on_connect(client, userdata, flags, reason_code, properties):
    client.subscribe("run/test", qos=1)


def on_subscribe(client, userdata, mid, reason_codes, properties):
    client.publish("run/test", b"hello from wizsock run", qos=1)


def on_message(client, userdata, msg):
    received.append(msg.payload)
    got.set()


c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
c.connect("127.0.0.1", mqtt_port)
c.loop_start()
if not got.wait(20):
    sys.exit("no MQTT message")
c.disconnect()
c.loop_stop()
print("mqtt:", received[0].decode())
sys.exit(0)
