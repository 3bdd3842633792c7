import hashlib, json, sys
from concurrent.futures import ThreadPoolExecutor
import requests

THREADS, EACH = int(sys.argv[1]), int(sys.argv[2])
HOLD = len(sys.argv) > 3 and sys.argv[3] == "hold"


def fetch(url):
    r = requests.get(url, timeout=60)
    r.raise_for_status()
    return hashlib.sha256(r.content).hexdigest()


def worker(i):
    url = f"http://web.test/blob/{1000 + i}"
    out = []
    if HOLD:
        # the previous response (and its connection) stays referenced during the next request
        for _ in range(EACH):
            r = requests.get(url, timeout=60)
            r.raise_for_status()
            out.append(hashlib.sha256(r.content).hexdigest())
    else:
        for _ in range(EACH):
            out.append(fetch(url))
    return out


with ThreadPoolExecutor(THREADS) as pool:
    results = list(pool.map(worker, range(THREADS)))
print("RESULT " + json.dumps({"digests": results}))
