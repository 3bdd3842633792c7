"""Goodput of the engine over the emulated module, as a fraction of the UART wire rate.

Wire rate = baud / 10 bytes per second (8N1: ten bit times per byte).  The
emulator's network round trip is 50 ms (``rtt=50``), so stop-and-wait sending
would pay 50 ms per 2 KiB; the engine pipelines with AT+CIPSENDBUF.

The emulator paces both directions at the baud rate (``pace_input=1``: host
bytes reach the module at the line rate, as through a real UART), so an upload
can never beat the wire.

Run::

    python -m pytest bench/bench_goodput.py --benchmark-only   # pytest-benchmark, 115200 and 921600
    python bench/bench_goodput.py                  # the same as a table, 115200 and 921600, down and up
    python bench/bench_goodput.py --baud 921600 --seconds 10 --rtt 50

Download: a loopback server sends N bytes; timed from AT+CIPSTART to EOF.
Upload: N bytes to a loopback sink that answers with their SHA-256 after the
last one; timed from AT+CIPSTART to the answer (so it includes the last
acknowledgement).  Every transfer is checked byte-exact.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time

import pytest
import serial
import trio

_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path[:0] = [_ROOT, os.path.join(_ROOT, "tests")]

import wizsock  # noqa: E402,F401  (registers wizemu://)
from wizsock.engine import open_module  # noqa: E402
from support.servers import deterministic_bytes, tcp_sink, tcp_source  # noqa: E402

AP = ("wizsock-lab", "wizsock123")


async def measure(baud, rtt_ms, seconds):
    wire = baud / 10.0
    n = int(wire * seconds)
    down_data = deterministic_bytes(n)
    up_data = bytes(reversed(down_data))
    results = {}
    port = serial.serial_for_url(f"wizemu://?baud={baud}&rtt={rtt_ms}&pace_input=1", baudrate=baud,
                                 timeout=0.02)
    with tcp_source(down_data) as src, tcp_sink(reply=n) as sink:
        async with open_module(port, baudrate=baud) as m:
            await m.wifi.set_mode(1)
            await m.wifi.join(*AP)
            # download
            t0 = time.perf_counter()
            link = await m.net.open_tcp("127.0.0.1", src.port)
            h = hashlib.sha256()
            got = 0
            while True:
                d = await link.receive(65536)
                if not d:
                    break
                h.update(d)
                got += len(d)
            dt = time.perf_counter() - t0
            await link.aclose()
            assert got == n and h.hexdigest() == src.sha256, "download not exact"
            results["down"] = (n, dt, n / dt / wire)
            # upload
            t0 = time.perf_counter()
            link = await m.net.open_tcp("127.0.0.1", sink.port)
            for i in range(0, n, 16384):
                await link.send(up_data[i:i + 16384])
            reply = b""
            while not reply.endswith(b"\n"):
                d = await link.receive(200)
                if not d:
                    break
                reply += d
            dt = time.perf_counter() - t0
            await link.aclose()
            assert reply.split()[-1].decode() == hashlib.sha256(up_data).hexdigest(), reply
            results["up"] = (n, dt, n / dt / wire)
    return results


@pytest.mark.parametrize("baud", [115200, 921600])
def test_goodput(benchmark, baud):
    """One download and one upload of 4 s of wire time each, rtt 50 ms."""
    res = benchmark.pedantic(trio.run, args=(measure, baud, 50.0, 4.0), rounds=1, iterations=1)
    for direction in ("down", "up"):
        n, dt, frac = res[direction]
        benchmark.extra_info[f"{direction}_goodput"] = round(frac, 4)
        benchmark.extra_info[f"{direction}_bytes_per_s"] = round(n / dt)
    print(f"\n{baud} baud: down {res['down'][2]:.1%}, up {res['up'][2]:.1%} of the wire rate")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baud", type=int, action="append", help="baud rate(s); default 115200 and 921600")
    ap.add_argument("--rtt", type=float, default=50.0, help="emulated network round trip, ms")
    ap.add_argument("--seconds", type=float, default=8.0, help="wire time per transfer")
    args = ap.parse_args(argv)
    bauds = args.baud or [115200, 921600]
    print(f"{'baud':>8} {'dir':>4} {'bytes':>9} {'seconds':>8} {'B/s':>9} {'wire B/s':>9} {'goodput':>8}")
    for baud in bauds:
        res = trio.run(measure, baud, args.rtt, args.seconds)
        for direction in ("down", "up"):
            n, dt, frac = res[direction]
            print(f"{baud:>8} {direction:>4} {n:>9} {dt:>8.2f} {n / dt:>9.0f} {baud / 10:>9.0f} "
                  f"{frac * 100:>7.1f}%")


if __name__ == "__main__":
    main()
