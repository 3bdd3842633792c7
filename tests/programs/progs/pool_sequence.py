"""The pool sequence of issue 17, unmodified libraries: ``pool_sequence.py FIRST_PORT``.

1. a requests.Session GETs from six servers in turn: five keep-alive links stay held,
   the sixth connect waits for a link and fails naming the limit (LinkLimitError,
   an OSError);
2. the Session is closed;
3. ten threads share one urllib3.PoolManager (with retries) and GET ``/slow/`` from
   the same servers, each answer held 1.5 s by its server.

Prints one RESULT line: the Session's results, how long after its close the module's
links were all free (read from ``wizsock run``'s engine), when each of the ten requests ended
(seconds after the Session's close), how many retries urllib3 needed, and the digests."""
import hashlib
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
import urllib3
from urllib3.util.retry import Retry

FIRST = int(sys.argv[1])
PORTS = range(FIRST, FIRST + 6)

def session_get(s, port):
    # (no response is kept: a response still referenced keeps its connection open,
    # with kernel sockets as with the module)
    try:
        return hashlib.sha256(s.get(f"http://198.51.100.10:{port}/blob/{port}").content).hexdigest()
    except requests.ConnectionError as e:
        return "error: " + str(e)


s = requests.Session()
session_results = [session_get(s, port) for port in PORTS]
s.close()
closed = time.monotonic()

# (the one line that is not the libraries': how long until the module's links are all
# free, read from the engine of ``wizsock run``)
import wizsock.socket  # noqa: E402

module = wizsock.socket.get_module()
free_after = None
while time.monotonic() - closed < 5.0:
    if len(module.net.links) == 0:
        free_after = round(time.monotonic() - closed, 3)
        break
    time.sleep(0.02)

pool = urllib3.PoolManager(retries=Retry(connect=8, backoff_factor=0.3), timeout=60)
lock = threading.Lock()


def get(i):
    port = PORTS[i % len(PORTS)]
    r = pool.request("GET", f"http://198.51.100.10:{port}/slow/{2000 + i}")
    ended = time.monotonic() - closed
    retries = len(r.retries.history) if r.retries is not None else 0
    return {"i": i, "status": r.status, "ended": round(ended, 3), "retries": retries,
            "sha256": hashlib.sha256(r.data).hexdigest()}


with ThreadPoolExecutor(10) as ex:
    results = list(ex.map(get, range(10)))
print("RESULT " + json.dumps({"session": session_results, "free_after": free_after,
                              "pool": results}), flush=True)
