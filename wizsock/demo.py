"""``wizsock demo``: the main job, with no hardware.

Starts the software WizFi360 (the in-process emulator), a local HTTPS server with
a throw-away test CA, and fetches a page with unmodified ``requests`` through the
emulated module, with full certificate verification; then prints what went over
the UART: bytes each way, the AT commands, and the time it took.

Needs ``requests`` and ``trustme`` (the test CA), imported at run time only:
``pip install 'wizsock[demo]'``.
"""
from __future__ import annotations

import argparse
import collections
import http.server
import logging
import re
import ssl
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, List, Tuple

if TYPE_CHECKING:
    import socket

__all__ = ["add_arguments", "run"]

PAGE = (b"<!doctype html><title>wizsock</title>\n"
        b"<h1>Hello through a (software) WizFi360</h1>\n"
        b"<p>This page travelled over TLS, TCP, the module's AT commands and a UART.</p>\n"
        + b"<p>" + b"wizsock " * 400 + b"</p>\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baud", type=int, default=115200,
                        help="UART rate of the emulated module (default 115200)")
    parser.add_argument("--rtt", type=float, default=20.0,
                        help="network round trip of the emulated module, ms (default 20)")
    parser.add_argument("--show", type=int, default=12,
                        help="how many AT commands to list (default 12)")


class _Page(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, ctx: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Page)
        self.ctx = ctx

    def get_request(self) -> Tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        return self.ctx.wrap_socket(conn, server_side=True), addr


class _Wire(logging.Handler):
    """The engine's AT log: what the host wrote, command by command."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.commands: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if " -> " in msg:
            self.commands.append(msg.split(" -> ", 1)[1])


def _command_name(line: str) -> str:
    m = re.match(r"b'(AT(?:\+[A-Z_]+)?)", line)
    if m:
        return m.group(1)
    return "data" if "bytes of data" in line else line[:20]


def run(args: argparse.Namespace) -> int:
    try:
        import requests
        import trustme
    except ImportError as exc:
        print(f"wizsock demo needs requests and trustme: pip install 'wizsock[demo]' ({exc})",
              file=sys.stderr)
        return 2
    import wizsock
    from wizsock import _orig
    from wizsock.emulator import Emulator
    from wizsock.patch import EMULATOR_AP, open_default_module

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_ctx)
    with _orig.internal():
        server = _Server(server_ctx)
    threading.Thread(target=server.serve_forever, name="wizsock-demo-https", daemon=True).start()
    url = f"https://localhost:{server.server_address[1]}/"

    emu = Emulator(baudrate=args.baud, rtt=args.rtt / 1000.0, log_traffic=True)
    emu.start()
    wire = _Wire()
    at_log = logging.getLogger("wizsock.engine.at")
    at_log.setLevel(logging.DEBUG)
    at_log.addHandler(wire)
    at_log.propagate = False
    print(f"emulated WizFi360 at {args.baud} baud (network round trip {args.rtt:g} ms); "
          f"HTTPS server {url} with a test CA")
    t_open = time.monotonic()
    module = open_default_module(emu.url, baudrate=args.baud,
                                 ssid=EMULATOR_AP[0], password=EMULATOR_AP[1])
    print(f"module ready and joined to {EMULATOR_AP[0]!r} in {time.monotonic() - t_open:.2f} s")
    try:
        with ca.cert_pem.tempfile() as ca_file:
            emu.transcript.clear()
            wire.commands.clear()
            with wizsock.patched(module):
                t0 = time.monotonic()
                r = requests.get(url, verify=ca_file, timeout=60)
                elapsed = time.monotonic() - t0
                r.close()
        host_to_module = sum(len(d) for direction, d in emu.transcript if direction == "<<")
        module_to_host = sum(len(d) for direction, d in emu.transcript if direction == ">>")
        print(f"\nrequests.get({url!r}, verify=<test CA>) -> {r.status_code} {r.reason}, "
              f"{len(r.content)} bytes, TLS verified")
        print(f"  {r.text.splitlines()[1]}")
        print(f"\nover the UART in {elapsed:.2f} s:")
        per_byte = 10 / args.baud     # start bit, 8 data bits, stop bit
        print(f"  host -> module: {host_to_module:7d} bytes ({host_to_module * per_byte:.2f} s of wire time)")
        print(f"  module -> host: {module_to_host:7d} bytes ({module_to_host * per_byte:.2f} s of wire time)")
        counts = collections.Counter(_command_name(c) for c in wire.commands)
        print(f"  {len(wire.commands)} writes: " +
              ", ".join(f"{name} x{n}" for name, n in counts.most_common()))
        print(f"\nfirst {min(args.show, len(wire.commands))} AT commands:")
        for line in wire.commands[:args.show]:
            print(f"  {line}")
        return 0
    finally:
        at_log.removeHandler(wire)
        at_log.propagate = True
        module.close()
        emu.stop()
        server.shutdown()
        server.server_close()
