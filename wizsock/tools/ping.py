"""``wizsock ping HOST``: ICMP echo from the module (AT+PING)."""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, List, Optional

from . import common as C

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Ping HOST (a name or an IPv4 address) from the module. "
                          "Exit code 0 if a reply came, 6 if none did or the name does not "
                          "resolve, 5 if the module is not on a network.")
    C.add_module_arguments(parser)
    parser.add_argument("host")
    parser.add_argument("-c", "--count", type=int, default=3, help="echo requests (default 3)")
    parser.add_argument("-i", "--interval", type=float, default=0.5,
                        help="seconds between requests (default 0.5)")


def run(args: argparse.Namespace) -> int:
    if args.count < 1:
        print("wizsock ping: --count must be at least 1", file=sys.stderr)
        return C.EXIT_USAGE

    def body(m: Any) -> int:
        from wizsock import errors as E
        if m.wifi.joined() is None:       # also in SoftAP-only mode: no station, no route
            raise C.ToolError("the module has not joined a network (wizsock join SSID)",
                              C.EXIT_OFFLINE)
        times: List[Optional[int]] = []
        error = None
        for i in range(args.count):
            if i:
                time.sleep(args.interval)
            try:
                rec = m.net.ping(args.host)
                times.append(rec.time_ms)
            except E.CommandError as exc:
                error = f"{exc.result}: {'; '.join(exc.lines) or 'no reply'}"
                times.append(None)
                if "DNS Fail" in (exc.lines or []):
                    break
            if not args.json:
                t = times[-1]
                print(f"{args.host}: " + (f"reply, time={t} ms" if t is not None
                                          else f"no reply ({error or 'timeout'})"), flush=True)
        got = [t for t in times if t is not None]
        data = {"host": args.host, "sent": len(times), "received": len(got), "times_ms": times,
                "min_ms": min(got) if got else None, "max_ms": max(got) if got else None,
                "avg_ms": round(sum(got) / len(got), 1) if got else None}
        if args.json:
            C.emit(args, data, str)
        else:
            print(f"{len(times)} sent, {len(got)} received" +
                  (f", min/avg/max {data['min_ms']}/{data['avg_ms']}/{data['max_ms']} ms"
                   if got else ""))
        return C.EXIT_OK if got else C.EXIT_UNREACHABLE
    return C.run_tool("ping", args, body)
