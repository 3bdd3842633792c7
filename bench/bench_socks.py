"""Goodput of `wizsock socks`: curl fetches a file over HTTPS through the SOCKS5
proxy and the emulated module, as a fraction of the UART wire rate (baud / 10
bytes per second, 8N1).

The whole path is real: curl (TLS on the host, ``--socks5-hostname``) -> the
`wizsock socks` process -> the engine -> the in-process emulator at the given
baud rate (network round trip 50 ms) -> a loopback HTTPS server from
tests/support whose certificate is for a name only the module's DNS knows.
curl's own ``time_total`` is the time (connect, TLS handshake and transfer).

Run::

    python -m pytest bench/bench_socks.py --benchmark-only -s   # 115200 and 921600 baud
    python bench/bench_socks.py --baud 921600 --seconds 4
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path[:0] = [_ROOT, os.path.join(_ROOT, "tests")]

from support.servers import https_server, test_ca  # noqa: E402
from wizsock.emulator.core import load_world  # noqa: E402

NAME = "files.behind.test"


def measure(baud: int, seconds: float, rtt_ms: float = 50.0):
    """-> (bytes, seconds, fraction of the wire rate) for one curl download."""
    curl = shutil.which("curl")
    if curl is None:
        raise RuntimeError("curl is needed (apt-get install curl)")
    n = int(baud / 10 * seconds)
    with test_ca() as ca, tempfile.TemporaryDirectory() as tmp:
        ca.server_cert = ca.issue_cert(NAME)
        world = load_world(None)
        world["dns"] = {NAME: "127.0.0.1"}
        world_path = os.path.join(tmp, "world.json")
        with open(world_path, "w") as f:
            json.dump(world, f)
        with https_server(ca) as web:
            # --port wizemu://?... so the emulator gets its round trip too
            url = f"wizemu://?baud={baud}&rtt={rtt_ms}&world={world_path}"
            proc = subprocess.Popen(
                [sys.executable, "-m", "wizsock", "socks", "--listen", "127.0.0.1:0",
                 "--port", url, "--baudrate", str(baud), "--ssid", "wizsock-lab"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                env=dict(os.environ, WIZSOCK_PASSWORD="wizsock123"))
            try:
                line = proc.stdout.readline().decode()
                port = int(line.split()[4].rsplit(":", 1)[1])
                out = subprocess.run(
                    [curl, "-sS", "-o", os.path.join(tmp, "body"), "-w", "%{size_download} %{time_total}",
                     "--socks5-hostname", f"127.0.0.1:{port}", "--cacert", ca.ca_pem_path,
                     f"https://{NAME}:{web.port}/bytes/{n}"],
                    capture_output=True, text=True, timeout=seconds * 10 + 60, check=True)
            finally:
                proc.terminate()
                proc.wait(15)
            size, elapsed = out.stdout.split()
            assert int(size) == n, out
            return n, float(elapsed), n / float(elapsed) / (baud / 10)


@pytest.mark.parametrize("baud", [115200, 921600])
def test_socks_goodput(benchmark, baud):
    """One HTTPS download of 4 s of wire time through curl -> SOCKS5 -> module."""
    n, dt, frac = benchmark.pedantic(measure, args=(baud, 4.0), rounds=1, iterations=1)
    benchmark.extra_info.update(goodput=round(frac, 4), bytes_per_s=round(n / dt))
    print(f"\n{baud} baud: {n} bytes in {dt:.2f} s = {frac:.1%} of the wire rate")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baud", type=int, action="append")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rtt", type=float, default=50.0, help="network round trip, ms")
    args = ap.parse_args(argv)
    print("| baud | bytes | seconds | kB/s | of wire rate |\n|---:|---:|---:|---:|---:|")
    for baud in args.baud or [115200, 921600]:
        n, dt, frac = measure(baud, args.seconds, args.rtt)
        print(f"| {baud} | {n} | {dt:.2f} | {n / dt / 1000:.1f} | {frac:.1%} |")


if __name__ == "__main__":
    main()
