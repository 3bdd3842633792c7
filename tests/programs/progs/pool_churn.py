"""Connection churn across more servers than links, four libraries at once:
``pool_churn.py FIRST_PORT SERVERS ROUNDS``.

requests.Session (keep-alive, one pool per host), urllib3.PoolManager with retries
(``Connection: close`` answers), aiohttp (concurrent GETs) and plain sockets
(HTTP/1.0, read to EOF), all at the same time, over SERVERS servers (more than the
module's five links).  Every body is checked by digest.  Prints one RESULT line: the
count of right answers, wrong bodies, and each failure's exception type (``OSError:``
prefixed when it derives from OSError)."""
import asyncio
import hashlib
import json
import socket
import sys
import threading

import aiohttp
import requests
import urllib3
from urllib3.util.retry import Retry

FIRST, SERVERS, ROUNDS = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
HOST = "198.51.100.10"
ok = wrong = 0
failures: dict = {}
lock = threading.Lock()


def blob(n):
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"wizsock-lab-%d" % i).digest()
        i += 1
    return bytes(out[:n])


def tally(n, body=None, exc=None):
    global ok, wrong
    with lock:
        if exc is not None:
            name = ("OSError:" if isinstance(exc, OSError) else "") + type(exc).__name__
            failures[name] = failures.get(name, 0) + 1
        elif body == blob(n):
            ok += 1
        else:
            wrong += 1


def target(i):
    return FIRST + i % SERVERS, 700 + 37 * (i % 11)


def with_requests(k):
    s = requests.Session()
    for i in range(ROUNDS):
        port, n = target(i + k)
        try:
            tally(n, s.get(f"http://{HOST}:{port}/blob/{n}", timeout=60).content)
        except Exception as e:  # noqa: BLE001 (reported by type; the test decides)
            tally(n, exc=e)
    s.close()


def with_urllib3(k):
    pool = urllib3.PoolManager(retries=Retry(connect=5, read=2, backoff_factor=0.2), timeout=60)
    for i in range(ROUNDS):
        port, n = target(i + k)
        try:
            tally(n, pool.request("GET", f"http://{HOST}:{port}/close/{n}").data)
        except Exception as e:  # noqa: BLE001
            tally(n, exc=e)
    pool.clear()


def with_sockets(k):
    for i in range(ROUNDS):
        port, n = target(i + k)
        try:
            with socket.create_connection((HOST, port), timeout=60) as c:
                c.sendall(b"GET /close/%d HTTP/1.0\r\nHost: x\r\n\r\n" % n)
                data = b""
                while True:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            tally(n, data.split(b"\r\n\r\n", 1)[1])
        except Exception as e:  # noqa: BLE001
            tally(n, exc=e)


def with_aiohttp(k):
    async def one(session, i):
        port, n = target(i + k)
        try:
            async with session.get(f"http://{HOST}:{port}/blob/{n}") as r:
                tally(n, await r.read())
        except Exception as e:  # noqa: BLE001
            tally(n, exc=e)

    async def main():
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout,
                                         connector=aiohttp.TCPConnector(limit=3)) as session:
            await asyncio.gather(*(one(session, i) for i in range(ROUNDS)))

    asyncio.run(main())


workers = [(with_requests, 0), (with_requests, 3), (with_urllib3, 1), (with_urllib3, 4),
           (with_sockets, 2), (with_sockets, 5), (with_aiohttp, 6)]
threads = [threading.Thread(target=fn, args=(k,)) for fn, k in workers]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("RESULT " + json.dumps({"ok": ok, "wrong": wrong, "failures": failures,
                              "expected": ROUNDS * len(workers)}), flush=True)
