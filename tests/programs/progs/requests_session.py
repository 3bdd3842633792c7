import json, sys
import requests

# one Session, six hosts: urllib3 keeps each connection alive in its pool
s = requests.Session()
out = []
for port in range(8081, 8087):
    try:
        r = s.get(f"http://web.test:{port}/")   # no timeout: the link wait is LINK_WAIT
        out.append(r.status_code)
    except requests.ConnectionError as e:
        out.append(str(e))
print("RESULT " + json.dumps({"results": out}))
