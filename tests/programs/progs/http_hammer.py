"""Outside clients for a server on the module: ``http_hammer.py URL SHA256 CLIENTS EACH``.

CLIENTS threads each GET ``URL`` EACH times back to back (``Connection: close``, a
fresh connection per request); every body is checked by its digest.  Prints one
``RESULT`` line: answers right, wrong bodies, and each failure's exception type
(a failure must be an OSError, bounded by the timeout; anything else is reported by
name and fails the test)."""
import hashlib
import json
import sys
import threading
import time
import urllib.request

URL, SHA, CLIENTS, EACH = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
TIMEOUT = float(sys.argv[5]) if len(sys.argv) > 5 else 30.0
ok = wrong = 0
failures: dict = {}
lock = threading.Lock()


def client():
    global ok, wrong
    for _ in range(EACH):
        try:
            req = urllib.request.Request(URL, headers={"Connection": "close"})
            with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
                body = r.read()
            right = hashlib.sha256(body).hexdigest() == SHA
            with lock:
                if right:
                    ok += 1
                else:
                    wrong += 1
        except OSError as exc:   # urllib's URLError, http.client's RemoteDisconnected, ...
            with lock:
                name = type(exc).__name__ + ("(" + type(exc.reason).__name__ + ")"
                                             if hasattr(exc, "reason") and isinstance(exc.reason, BaseException) else "")
                failures[name] = failures.get(name, 0) + 1
        except Exception as exc:  # not an OSError: the test fails on it by name
            with lock:
                name = "NOT-OSError:" + type(exc).__name__
                failures[name] = failures.get(name, 0) + 1


t0 = time.monotonic()
threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("RESULT " + json.dumps({"ok": ok, "wrong": wrong, "failures": failures,
                              "seconds": round(time.monotonic() - t0, 2)}), flush=True)
