"""Host CPU cost and goodput of a program under ``wizsock run`` at 2 Mbaud and 921600 baud.

The set-up a user has with hardware: the module (here the emulator, in its own
process, ``wizsock emulator --pty --baud B --pace-input``: both directions of
the UART paced at the line rate) on a serial port, and an unmodified program
with plain blocking sockets under ``wizsock run --port <pty> --baudrate B``
(``bench/cpu_client.py``).  The program downloads N bytes from a loopback
source and uploads N bytes to a loopback sink (checked by SHA-256) through a
module-visible address the emulator's world file maps to loopback (``nat``).

Reported per direction and rate, from the client process itself
(``time.process_time``: user + system CPU of all its threads, the engine's
thread included), counted from ``connect`` to EOF / to the sink's answer:

* **cpu %**: CPU seconds over wall seconds, as a share of one core;
* **us/KB**: CPU microseconds per KB (1000 bytes) moved, which the other
  tenants of a shared machine disturb less than the wall-time ratio;
* **goodput %**: payload bytes per second over the wire rate (baud / 10), end to
  end (``connect`` to EOF, or to the sink's answer: for an upload that includes
  the emulated network's round trip of ``--rtt`` the answer needs, 50 ms by
  default, 1.2% of a 4 s upload);
* **at the sink**: the upload's rate where it lands, the bytes after the sink's
  first ``recv`` over the time from that ``recv`` to its last (``time.monotonic``
  in the sink, the same clock in every process): the steady rate the UART carries
  the stream at, with no set-up or round trip in it.  The upload target is read
  from this figure; the end-to-end one is printed beside it.

Targets (issue 11): at 2,000,000 baud a download costs at most 3% of a core and
an upload reaches 95% of the wire; at 921600 baud the upload reaches 95% too.

Also printed: the time ``connect`` took and the load average (1 minute) when each
rate's run began: on a shared machine the other tenants cost the upload goodput.

Run::

    python -m pytest bench/bench_cpu.py -s            # both rates, prints the table
    python bench/bench_cpu.py                          # the same as a script
    WIZSOCK_BENCH_STRICT=1 python bench/bench_cpu.py   # exit status 1 unless every target is met
    python bench/bench_cpu.py --baud 2000000 --seconds 6 --py-spy /tmp/prof   # + py-spy collapsed stacks per rate
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from support.servers import deterministic_bytes, tcp_sink, tcp_source  # noqa: E402

#: the address the client dials; the emulator's world maps it to 127.0.0.1
#: (TEST-NET-2: nothing on the host ever sends to it)
VISIBLE = "198.51.100.7"
AP = ("wizsock-lab", "wizsock123")
TARGETS = {2000000: {"down_cpu": 3.0, "up_goodput": 95.0}, 921600: {"up_goodput": 95.0}}


def _world(path: str) -> None:
    from wizsock.emulator.core import load_world
    world = load_world(None)
    world["nat"] = {VISIBLE: "127.0.0.1"}
    with open(path, "w") as f:
        json.dump(world, f)


def _env() -> Dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT, os.path.join(ROOT, "tests"), os.environ.get("PYTHONPATH", "")]))


def measure(baud: int, seconds: float = 4.0, rtt_ms: float = 50.0,
            py_spy: Optional[str] = None, emulator: Optional[List[str]] = None) -> dict:
    """One download and one upload of `seconds` of wire time each; returns the figures."""
    n = int(baud / 10 * seconds)
    down_data = deterministic_bytes(n)
    up_data = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(n))   # as cpu_client.py makes it
    tmp = tempfile.mkdtemp(prefix="wizsock-bench-cpu-")
    emu = None
    load = round(os.getloadavg()[0], 2)   # the machine's load as the run starts (1-minute average)
    try:
        world = os.path.join(tmp, "world.json")
        _world(world)
        emu = subprocess.Popen(
            (emulator or [sys.executable, "-m", "wizsock", "emulator"]) + ["--pty", "--baud", str(baud),
             "--pace-input", "--rtt", str(rtt_ms), "--world", world, "--boot-delay", "0.05",
             "--flash", os.path.join(tmp, "flash.json")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=ROOT)
        line = emu.stdout.readline().decode()
        m = re.search(r"on (/dev/\S+)", line)
        assert m, f"emulator did not start: {line!r}"
        pty = m.group(1)
        with tcp_source(down_data) as src, tcp_sink(reply=n) as sink:
            cmd = [sys.executable, "-m", "wizsock", "run", "--port", pty, "--baudrate", str(baud),
                   "--ssid", AP[0], "--password", AP[1], "--",
                   sys.executable, os.path.join(HERE, "cpu_client.py"),
                   VISIBLE, str(src.port), str(n), str(sink.port), str(n)]
            if py_spy:
                spy = shutil.which("py-spy")
                assert spy, "py-spy is not installed (pip install py-spy)"
                cmd = [spy, "record", "--threads", "--idle", "-r", "250", "-f", "raw",
                       "-o", f"{py_spy}-{baud}.txt", "--"] + cmd
            proc = subprocess.run(cmd, capture_output=True, env=_env(), cwd=ROOT, timeout=120 + 4 * seconds)
            out = proc.stdout.decode(errors="replace")
            m = re.search(r"^CPU-RESULT (.*)$", out, re.M)
            assert m, f"client failed (rc {proc.returncode}):\n{out}\n{proc.stderr.decode(errors='replace')[-3000:]}"
            res = json.loads(m.group(1))
            assert len(sink.arrivals) == 1, sink.arrivals
            first_t, first_n, last_t = sink.arrivals[0]
            # the upload's rate where it lands, from its first bytes to its last: the
            # connect and the answer's way back (one network round trip) are not UART time
            res["up"]["steady"] = (n - first_n) / (last_t - first_t)
        assert "error" not in res, res["error"]
        assert res["down"]["sha256"] == src.sha256, "download not byte-exact"
        assert res["up"]["reply"].split() == [str(n), res["up"]["sha256"]], res["up"]["reply"]
        import hashlib
        assert res["up"]["sha256"] == hashlib.sha256(up_data).hexdigest()
    finally:
        if emu is not None:
            emu.terminate()
            try:
                emu.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                emu.kill()
                emu.communicate()
        shutil.rmtree(tmp, ignore_errors=True)
    wire = baud / 10.0
    figures = {"baud": baud, "bytes": n, "rtt_ms": rtt_ms, "load": load}
    for d in ("down", "up"):
        r = res[d]
        figures[d] = {
            "wall_s": round(r["wall"], 3), "cpu_s": round(r["cpu"], 4),
            "cpu_pct": round(100 * r["cpu"] / r["wall"], 2),
            "us_per_kb": round(1e6 * r["cpu"] / (r["bytes"] / 1000), 1),
            "goodput_pct": round(100 * r["bytes"] / r["wall"] / wire, 1),
            "connect_ms": round(1e3 * r["connect"], 1),
        }
        if "tail" in r:
            figures[d]["tail_ms"] = round(1e3 * r["tail"], 1)
        if "steady" in r:
            figures[d]["steady_pct"] = round(100 * r["steady"] / wire, 1)
    return figures


def table(results: List[dict]) -> List[str]:
    lines = ["| baud | direction | bytes | wall s | connect ms | CPU s | CPU % of a core | CPU µs/KB "
             "| goodput % of wire, end to end | at the sink, first to last byte | load |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for f in results:
        for d in ("down", "up"):
            r = f[d]
            steady = f"{r['steady_pct']:.1f}" if "steady_pct" in r else "-"
            lines.append(f"| {f['baud']:,} | {d} | {f['bytes']:,} | {r['wall_s']:.2f} | {r['connect_ms']:.1f} "
                         f"| {r['cpu_s']:.3f} | {r['cpu_pct']:.2f} | {r['us_per_kb']:.0f} "
                         f"| {r['goodput_pct']:.1f} | {steady} | {f['load']:.2f} |")
    return lines


def verdicts(f: dict) -> List[str]:
    """One line per figure issue 11 names (and the download's CPU at the other rate, for
    reference): value, target, verdict, and the load average the run started at."""
    out = []
    t = TARGETS.get(f["baud"], {})
    load = f"(load {f['load']:.2f})"
    cpu = f["down"]["cpu_pct"]
    if "down_cpu" in t:
        ok = cpu <= t["down_cpu"]
        out.append(f"{f['baud']:>9,} baud  download CPU    {cpu:6.2f}% of a core  target <= "
                   f"{t['down_cpu']:.0f}%   {'met' if ok else 'NOT MET'}  {load}")
    else:
        out.append(f"{f['baud']:>9,} baud  download CPU    {cpu:6.2f}% of a core  (no target)  {load}")
    if "up_goodput" in t:
        up = f["up"]["steady_pct"]
        ok = up >= t["up_goodput"]
        out.append(f"{f['baud']:>9,} baud  upload goodput  {up:6.1f}% of the wire target >= "
                   f"{t['up_goodput']:.0f}%  {'met' if ok else 'NOT MET'}  {load}  "
                   f"(end to end {f['up']['goodput_pct']:.1f}%: with the connect and the "
                   f"answer's network round trip)")
    return out


def strict() -> bool:
    return os.environ.get("WIZSOCK_BENCH_STRICT") == "1"


@pytest.mark.parametrize("baud", [2000000, 921600])
def test_cpu_and_goodput(baud):
    """Byte-exact transfers; prints the figures and whether the targets are met.

    The targets are reported rather than asserted: on the shared project
    machine the wall time (and so the CPU share) depends on the other tenants.
    ``WIZSOCK_BENCH_STRICT=1`` turns the verdicts into assertions."""
    f = measure(baud)
    print()
    print("\n".join(table([f])))
    v = verdicts(f)
    print("\n".join(v))
    if strict():
        assert not [x for x in v if "NOT MET" in x], v


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baud", type=int, action="append", help="rate(s); default 2000000 and 921600")
    ap.add_argument("--seconds", type=float, default=4.0, help="wire time per transfer")
    ap.add_argument("--rtt", type=float, default=50.0, help="emulated network round trip, ms")
    ap.add_argument("--py-spy", metavar="PREFIX", help="record collapsed stacks (py-spy raw) PREFIX-<baud>.txt")
    ap.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    ap.add_argument("--emulator", metavar="CMD", help="emulator command instead of `python -m wizsock "
                    "emulator` (to compare emulator variants; it gets --pty --baud ... appended)")
    args = ap.parse_args(argv)
    results = []
    for baud in args.baud or [2000000, 921600]:
        t0 = time.monotonic()
        results.append(measure(baud, args.seconds, args.rtt, args.py_spy,
                               shlex.split(args.emulator) if args.emulator else None))
        print(f"# {baud} baud measured in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    print("\n".join(table(results)))
    print()
    lines = [v for f in results for v in verdicts(f)]
    print("\n".join(lines))
    if args.json:
        print(json.dumps(results))
    if strict() and any("NOT MET" in v for v in lines):
        sys.exit("WIZSOCK_BENCH_STRICT=1: a target is not met")


if __name__ == "__main__":
    main()
