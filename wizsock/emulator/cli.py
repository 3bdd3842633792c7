"""`wizsock emulator`: run the software WizFi360 on a pty or a TCP port."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Dict, List, Tuple


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal (the default)")
    where.add_argument("--listen", metavar="HOST:PORT",
                       help="serve on a TCP port (pyserial: socket://HOST:PORT); HOST defaults to 127.0.0.1")
    parser.add_argument("--baud", type=int, default=115200, help="factory UART baud rate (default 115200)")
    parser.add_argument("--world", metavar="FILE", help="radio world JSON (aps, stations, dns)")
    parser.add_argument("--flash", metavar="FILE", help="emulated flash file (_DEF settings); default: temporary")
    parser.add_argument("--rtt", metavar="MS", type=float, default=0.0,
                        help="network round-trip time in ms: data crosses the network in rtt/2 each way,"
                             " so SEND OK comes one round trip after the data left, and no reply sooner")
    parser.add_argument("--jitter", metavar="MS", type=float, default=0.0,
                        help="up to this many ms more per crossing, uniformly (seeded by --seed)")
    parser.add_argument("--segment-limit", type=int, default=65535,
                        help="last AT+CIPSENDBUF segment id before ERROR (real firmware: 65535, a 16-bit counter)")
    parser.add_argument("--faults", metavar="SPEC", help='fault injection, e.g. "chunk,urc:0.2,busy:0.1"')
    parser.add_argument("--seed", type=int, help="seed for fault injection and generated identities")
    parser.add_argument("--boot-delay", type=float, default=0.3, help="seconds from reset to 'ready'")
    parser.add_argument("--pace-input", action=argparse.BooleanOptionalAction, default=True,
                        help="deliver host bytes at the baud rate, as a real UART receiver (the default;"
                             " --no-pace-input takes them as fast as they come)")
    parser.add_argument("--link-ids", choices=("lowest", "rotate"), default="lowest",
                        help="the id an accepted connection gets: the lowest free one, free once its"
                             " CLOSED is printed (the default: ESP8266 AT's source) or the next free"
                             " one after the last given")
    parser.add_argument("--log", metavar="FILE", nargs="?", const="-",
                        help="log the UART exactly (both directions in wire order, timestamped, bytes"
                             " escaped; secrets masked and marked) to FILE, or to stderr without one;"
                             " format: design.md 5e, read back with wizsock.emulator.uartlog.parse_log")
    parser.add_argument("--bind-host", metavar="ADDR", default="127.0.0.1",
                        help="host address the module's servers (AT+CIPSERVER) listen on, and its UDP"
                             " sockets to loopback peers bind to (default 127.0.0.1)")
    parser.add_argument("--strict-baud", action="store_true",
                        help="--pty: a host whose port is set to another baud rate than the module's "
                             "gets garbage, as on a real line (and must find the module's rate)")
    parser.add_argument("--quirk", action="append", default=[], metavar="NAME",
                        help="switch on a firmware variant (repeatable): "
                             + ", ".join(sorted(_quirk_names())))
    parser.add_argument("--profile", metavar="FILE",
                        help="answer with this timing profile (JSON, from `wizsock check --profile`)")
    parser.add_argument("--trace-memory", metavar="FILE",
                        help="debugging: trace allocations (tracemalloc) from the start; at each "
                             "SIGUSR2 append a JSON line (traced bytes, peak, tracemalloc's own, "
                             "RSS, descriptors, threads) to FILE (bench/bench_soak.py reads it)")


def _quirk_names() -> List[str]:
    from wizsock.emulator.quirks import QUIRKS
    return list(QUIRKS)


def _listen_addr(text: str) -> Tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def _memory_report(path: str) -> None:
    """One JSON line of what this process holds now (for soak measurements)."""
    import gc
    import json
    import os
    import tracemalloc

    gc.collect()
    traced, peak = tracemalloc.get_traced_memory()
    status: Dict[str, List[str]] = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            status[key] = value.split()
    record = {"traced": traced, "peak": peak, "tracemalloc": tracemalloc.get_tracemalloc_memory(),
              "rss": int(status["VmRSS"][0]) * 1024,
              "threads": int(status["Threads"][0]), "fds": len(os.listdir("/proc/self/fd"))}
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def run(args: argparse.Namespace) -> int:
    from wizsock.emulator.core import Emulator

    trace = getattr(args, "trace_memory", None)
    if trace:
        import tracemalloc
        tracemalloc.start()
        # before the lines that say where the module is: a reader may signal at once
        signal.signal(signal.SIGUSR2, lambda *a: _memory_report(trace))

    log_file = None
    try:
        _check_bind_host(args.bind_host)
        if args.log == "-":
            log_file = sys.stderr
        elif args.log is not None:
            log_file = open(args.log, "w", encoding="utf-8")
        # log_traffic stays off: the in-memory transcript would grow for the process's life
        emu = Emulator(world=args.world, flash=args.flash, rtt=args.rtt / 1000.0, baudrate=args.baud,
                       faults=args.faults, seed=args.seed, boot_delay=args.boot_delay,
                       bind_host=args.bind_host, log_file=log_file,
                       pace_input=args.pace_input, jitter=args.jitter / 1000.0,
                       segment_limit=args.segment_limit, link_ids=args.link_ids,
                       quirks=args.quirk, profile=args.profile)
    except (OSError, ValueError) as e:
        print(f"wizsock emulator: {e}", file=sys.stderr)
        if log_file is not None and log_file is not sys.stderr:
            log_file.close()
        return 2
    emu.start()
    try:
        if args.listen:
            host, port = _listen_addr(args.listen)
            h, p = emu.serve_tcp(host, port)
            print(f"WizFi360 emulator listening: socket://{h}:{p} at {args.baud} baud", flush=True)
        else:
            path = emu.serve_pty(strict_baud=args.strict_baud)
            print(f"WizFi360 emulator on {path} at {args.baud} baud", flush=True)
        print(f"flash: {emu.flash_path}", flush=True)
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *a: done.set())
        if hasattr(signal, "SIGUSR1"):
            # the module's RST pin: a host driver's hardware reset (tests/vendor wires it)
            signal.signal(signal.SIGUSR1, lambda *a: emu.call_soon(emu.reset))
        done.wait()
    finally:
        emu.stop()
        if log_file is not None and log_file is not sys.stderr:
            log_file.close()
    return 0


def _check_bind_host(addr: str) -> None:
    # refuse at the start what would otherwise fail at the first AT+CIPSERVER
    import ipaddress
    import socket

    try:
        ip = ipaddress.ip_address(addr)     # a literal: a name would need a DNS lookup
    except ValueError:
        raise ValueError(f"--bind-host {addr}: not an IP address") from None
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((addr, 0))
        except OSError as e:
            raise ValueError(f"--bind-host {addr}: {e.strerror or e}") from None
