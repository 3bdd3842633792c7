import hashlib, json, threading
import paho.mqtt.client as mqtt

N = 20
got, done = [], threading.Event()

def on_connect(c, userdata, flags, rc, props=None):
    c.subscribe("lab/#", qos=1)

def on_subscribe(c, userdata, mid, *a):
    for i in range(N):
        c.publish(f"lab/{i}", bytes([i % 256]) * 1000, qos=1)

def on_message(c, userdata, msg):
    got.append(msg.payload)
    if len(got) == N:
        done.set()

c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="lab-client")
c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
c.connect("mqtt.test", 1883, keepalive=30)
c.loop_start()
ok = done.wait(60)
c.disconnect()
c.loop_stop()
print("RESULT " + json.dumps({"ok": ok, "n": len(got), "sha256": hashlib.sha256(b"".join(sorted(got))).hexdigest()}))
