"""More far-side servers for tests/programs/test_stress.py, run in the lab's server
namespace: ``stress_remote.py FIRST_PORT COUNT``.

COUNT HTTP/1.1 servers on 198.51.100.10, ports FIRST_PORT.., each answering
``/blob/<n>`` (n deterministic bytes, kept alive), ``/close/<n>`` (the same, then
``Connection: close``) and ``/slow/<n>`` (held SLOW seconds, then ``Connection: close``:
a slow backend that ends each connection).  Prints one line when all listen, then serves until killed."""
import http.server
import sys
import threading
import time

import remote

SLOW = 1.5


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        kind, _, n = self.path.strip("/").partition("/")
        if kind not in ("blob", "close", "slow") or not n.isdigit():
            self.send_error(404)
            return
        body = remote.blob(int(n))
        if kind == "slow":
            time.sleep(SLOW)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if kind in ("close", "slow"):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64


def main():
    first, count = int(sys.argv[1]), int(sys.argv[2])
    for port in range(first, first + count):
        s = Server((remote.ADDR["web"], port), Handler)
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("listening", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
