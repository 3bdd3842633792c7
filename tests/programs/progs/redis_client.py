import hashlib, json
import redis

r = redis.Redis(host="redis.test", port=6379, socket_timeout=30)
value = bytes(range(256)) * 400
r.set("lab:blob", value)
back = r.get("lab:blob")
p = r.pipeline()
for _ in range(100):
    p.incr("lab:counter")
counts = p.execute()
print("RESULT " + json.dumps({"sha256": hashlib.sha256(back).hexdigest(), "sent": hashlib.sha256(value).hexdigest(),
                              "last": counts[-1], "first": counts[0]}))
