"""``wizsock join SSID [--password-stdin]``: join a WiFi network (AT+CWJAP_CUR/_DEF)."""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from . import common as C

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Join a WiFi network. The password is read from stdin "
                          "(--password-stdin) or the environment (WIZSOCK_PASSWORD), never "
                          "from the command line, where other users could read it.")
    C.add_module_arguments(parser)
    parser.add_argument("ssid", help="the network's name")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of stdin")
    parser.add_argument("--bssid", default=None, help="this access point only (MAC)")
    parser.add_argument("--save", action="store_true",
                        help="remember the network in the module's flash (AT+CWJAP_DEF)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="give up after this many seconds (default: the module's 25 s)")


def read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line and sys.stdin.isatty():
            raise C.ToolError("no password on stdin", C.EXIT_USAGE)
        return line.rstrip("\r\n")
    return os.environ.get("WIZSOCK_PASSWORD", "")


def run(args: argparse.Namespace) -> int:
    try:
        password = read_password(args)
    except C.ToolError as exc:
        print(f"wizsock join: {exc}", file=sys.stderr)
        return exc.code

    def body(m: Any) -> int:
        from wizsock import errors as E
        try:
            if m.wifi.mode().mode == 2:
                m.wifi.set_mode(3, default=args.save)
        except E.CommandError:
            pass
        t0 = time.monotonic()
        with C.progress_for(m, f"joining {args.ssid!r}"):
            m.wifi.join(args.ssid, password, bssid=args.bssid, default=args.save,
                        timeout=args.timeout)
        took = time.monotonic() - t0
        ap = m.wifi.joined()
        ip = m.wifi.sta_ip()
        data = {"ssid": args.ssid, "joined": True, "seconds": round(took, 3),
                "bssid": getattr(ap, "bssid", None), "channel": getattr(ap, "channel", None),
                "rssi": getattr(ap, "rssi", None), "ip": getattr(ip, "ip", None),
                "gateway": getattr(ip, "gateway", None), "netmask": getattr(ip, "netmask", None)}
        C.emit(args, data, lambda: f"joined {args.ssid!r} in {C.fmt_ms(took)}\n" + C.pairs(
            [("bssid", data["bssid"]), ("channel", data["channel"]), ("rssi", data["rssi"]),
             ("ip", data["ip"]), ("gateway", data["gateway"]), ("netmask", data["netmask"])]))
        return C.EXIT_OK
    return C.run_tool("join", args, body, join_emulator=False)
