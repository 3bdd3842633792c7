"""`wizsock emulator`: run the software WizFi360 on a pty or a TCP port."""
from __future__ import annotations

import argparse
import signal
import sys
import threading


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
    parser.add_argument("--log", action="store_true", help="log AT traffic to stderr (secrets masked)")
    parser.add_argument("--trace-memory", metavar="FILE",
                        help="debugging: trace allocations (tracemalloc) from the start; at each "
                             "SIGUSR2 append a JSON line (traced bytes, peak, tracemalloc's own, "
                             "RSS, descriptors, threads) to FILE (bench/bench_soak.py reads it)")


def _listen_addr(text: str):
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
    status = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            status[key] = value.split()
    record = {"traced": traced, "peak": peak, "tracemalloc": tracemalloc.get_tracemalloc_memory(),
              "rss": int(status["VmRSS"][0]) * 1024,
              "threads": int(status["Threads"][0]), "fds": len(os.listdir("/proc/self/fd"))}
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def run(args) -> int:
    from wizsock.emulator.core import Emulator

    trace = getattr(args, "trace_memory", None)
    if trace:
        import tracemalloc
        tracemalloc.start()
        # before the lines that say where the module is: a reader may signal at once
        signal.signal(signal.SIGUSR2, lambda *a: _memory_report(trace))

    try:
        emu = Emulator(world=args.world, flash=args.flash, rtt=args.rtt / 1000.0, baudrate=args.baud,
                       faults=args.faults, seed=args.seed, boot_delay=args.boot_delay,
                       log_traffic=args.log, log_file=sys.stderr if args.log else None,
                       pace_input=args.pace_input, jitter=args.jitter / 1000.0,
                       segment_limit=args.segment_limit)
    except (OSError, ValueError) as e:
        print(f"wizsock emulator: {e}", file=sys.stderr)
        return 2
    emu.start()
    try:
        if args.listen:
            host, port = _listen_addr(args.listen)
            h, p = emu.serve_tcp(host, port)
            print(f"WizFi360 emulator listening: socket://{h}:{p} at {args.baud} baud", flush=True)
        else:
            path = emu.serve_pty()
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
    return 0
