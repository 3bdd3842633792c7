"""Soak: memory, descriptors and threads over many connections, host and emulator (issue 21).

N connect / exchange / close cycles in turn: TCP client links with AT+CIPSENDBUF and
with AT+CIPSEND, UDP client links, TCP server links (a loopback client connects to
the module's AT+CIPSERVER port), facade sockets (``wizsock.socket``).  Each cycle
echoes 100 bytes through a loopback peer and checks them byte-exact
(tests/support/soak.py, the same cycles as tests/engine/test_soak_memory.py).

Two set-ups, run one after the other:

- ``process``: ``wizsock emulator --pty`` in its own process (the glitch faults on by
  default); its RSS, descriptors and threads from /proc/<pid>, its tracemalloc figures
  through the emulator's ``--trace-memory`` switch (a JSON line per SIGUSR2).  The host
  process traces with one frame: everything in it is the host's.
- ``inprocess``: the emulator in the host's process (``wizemu://<name>``); tracemalloc
  splits the traces by whose code allocated (deep tracebacks: slower); RSS, descriptors
  and threads are the one process's.

Growth is counted from the end of the warm-up (what bounded buffers, caches and
trio's heaps take first) to the end of the run.  Run::

    python bench/bench_soak.py --cycles 2000                  # both set-ups
    python bench/bench_soak.py --where process --cycles 20000 --write docs/benchmarks.md
"""
from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from typing import Dict, List, Optional

_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path[:0] = [_ROOT, os.path.join(_ROOT, "tests")]

import wizsock  # noqa: E402,F401  (registers wizemu://)
from wizsock import patch as wpatch  # noqa: E402
from support import soak  # noqa: E402

FAULTS = "chunk,urc:0.2,busy:0.1"
MARK = "<!-- bench_soak:{}:{} -->"


class EmulatorProcess:
    """``wizsock emulator --pty`` as a child process, with its memory reports."""

    def __init__(self, baud: int, faults: str, seed: int, trace: bool = True) -> None:
        self.report = tempfile.NamedTemporaryFile(prefix="wizemu-mem-", suffix=".jsonl", delete=False).name
        self.trace = trace
        cmd = [sys.executable, "-m", "wizsock", "emulator", "--pty", "--baud", str(baud),
               "--boot-delay", "0.05", "--seed", str(seed)]
        if trace:
            cmd += ["--trace-memory", self.report]
        if faults:
            cmd += ["--faults", faults]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"on (\S+) at", line)
        if not m:
            self.close()
            raise RuntimeError(f"wizsock emulator did not start: {line!r}")
        self.path = m.group(1)
        self.proc.stdout.readline()             # flash: ...

    @property
    def pid(self) -> int:
        return self.proc.pid

    def sample(self) -> Dict[str, int]:
        if not self.trace:
            return soak.proc_status(self.pid)
        with open(self.report) as f:
            before = len(f.readlines())
        os.kill(self.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(self.report) as f:
                lines = f.readlines()
            if len(lines) > before:
                return json.loads(lines[-1])
            time.sleep(0.05)
        raise RuntimeError("the emulator wrote no memory report")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        os.unlink(self.report)


def _mb(n: float) -> str:
    return f"{n / 1e6:+.2f} MB"


def _traced(now: Dict, first: Dict, side: str, per: int = 0) -> str:
    """tracemalloc growth (total, or per connection with `per`); '-' untraced."""
    if "traced" not in now[side]:
        return "-"
    grown = now[side]["traced"] - first[side]["traced"]
    return f"{grown / per:+.0f} B" if per else _mb(grown)


def run_process(args, report) -> Dict:
    emu = EmulatorProcess(args.baud, args.faults, args.seed, args.trace)

    def sample(module) -> Dict[str, Dict[str, int]]:
        soak.wait_quiet(module)
        gc.collect()
        host = soak.proc_status()
        if args.trace:
            host["traced"] = tracemalloc.get_traced_memory()[0]
            host["tracemalloc"] = tracemalloc.get_tracemalloc_memory()
        return {"host": host, "emulator": emu.sample()}

    # one frame: everything traced in this process is the host's
    return _soak(args, report, emu.path, 1, sample, emu.close)


def run_inprocess(args, report) -> Dict:
    from wizsock.emulator import Emulator
    emu = Emulator(name=f"soak-bench-{os.getpid()}", baudrate=args.baud, faults=args.faults or None,
                   seed=args.seed, boot_delay=0.05).start()

    def sample(module) -> Dict[str, Dict[str, int]]:
        soak.wait_quiet(module, emu)
        gc.collect()
        if not args.trace:
            return {"host": soak.proc_status(), "emulator": soak.proc_status()}
        split = soak.split(tracemalloc.take_snapshot())
        proc = {**soak.proc_status(), "tracemalloc": tracemalloc.get_tracemalloc_memory()}
        return {"host": {**proc, "traced": split["host"]},
                "emulator": {**proc, "traced": split["emulator"]}}

    return _soak(args, report, f"wizemu://{emu.name}", soak.TRACE_FRAMES, sample, emu.stop)


def _soak(args, report, port: str, frames: int, sample, stop) -> Dict:
    peers = soak.EchoPeers()
    module = None
    cycler = None
    if args.trace:
        tracemalloc.start(frames)
    try:
        module = wpatch.open_default_module(port, baudrate=args.baud, ssid=wpatch.EMULATOR_AP[0],
                                            password=wpatch.EMULATOR_AP[1])
        cycler = soak.Cycler(module, peers, args.kinds)
        return _drive(args, cycler, functools.partial(sample, module), report)
    finally:
        tracemalloc.stop()
        if cycler is not None:
            cycler.close()
        if module is not None:
            module.close()
        peers.close()
        stop()


def _drive(args, cycler, sample, report) -> Dict:
    """Warm up, then cycle and sample; `report(result)` after every sample, so a long
    run's figures so far are written even if it is stopped."""
    t0 = time.monotonic()
    cycler.run(args.warmup)
    samples: List[Dict] = [{"cycles": 0, **sample()}]
    t1 = time.monotonic()
    done = 0
    while done < args.cycles:
        n = min(args.every, args.cycles - done)
        cycler.run(n)
        done += n
        s = {"cycles": done, **sample()}
        samples.append(s)
        elapsed = time.monotonic() - t1
        print(f"  {done:6d} cycles {elapsed:7.0f} s  host rss {_mb(s['host']['rss'] - samples[0]['host']['rss'])}"
              f" traced {_traced(s, samples[0], 'host')}  emulator rss "
              f"{_mb(s['emulator']['rss'] - samples[0]['emulator']['rss'])} traced "
              f"{_traced(s, samples[0], 'emulator')}", flush=True)
        report({"warmup_s": t1 - t0, "run_s": elapsed, "samples": samples})
    return {"warmup_s": t1 - t0, "run_s": time.monotonic() - t1, "samples": samples}


def summary(where: str, args, result: Dict) -> List[str]:
    first, last = result["samples"][0], result["samples"][-1]
    n = last["cycles"]
    rows = []
    for side in ("host", "emulator"):
        a, b = first[side], last[side]
        # RSS includes tracemalloc's own tables (its traces and their tracebacks)
        own = ""
        if "tracemalloc" in a and "tracemalloc" in b:
            own = f" (tracemalloc's own {_mb(b['tracemalloc'] - a['tracemalloc'])})"
        rows.append(f"| {where} | {side} | {_mb(b['rss'] - a['rss'])}{own} | "
                    f"{_traced(last, first, side, n)} | {a['fds']} -> {b['fds']} | "
                    f"{a['threads']} -> {b['threads']} |")
    return rows


def block(where: str, command: str, args, r: Dict) -> str:
    n = r["samples"][-1]["cycles"]
    part = "" if n >= args.cycles else f" (of {args.cycles} asked: the figures so far)"
    lines = [MARK.format(where, "begin"),
             f"{where} ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}):", "", "    " + command, "",
             f"{n} cycles{part} of {', '.join(args.kinds)} in turn, at {args.baud} baud, "
             f"faults {args.faults or 'none'}, after {args.warmup} warm-up, in {r['run_s']:.0f} s "
             f"({r['run_s'] / max(1, n) * 1000:.0f} ms a cycle), every exchange byte-exact.", "",
             "| emulator | side | RSS growth | traced growth per connection | descriptors | threads |",
             "|---|---|---:|---:|---|---|", *summary(where, args, r)]
    if where.startswith("inprocess"):
        lines += ["", "In-process the host and the emulator share one process: RSS, descriptors "
                      "and threads are that process's on both rows; tracemalloc splits the traces."]
    lines.append(MARK.format(where, "end"))
    return "\n".join(lines)


def write(path: str, command: str, args, results: Dict[str, Dict]) -> None:
    """Each set-up's figures between its own markers in `path` (replaced on the next run)."""
    with open(path) as f:
        text = f.read()
    for where, r in results.items():
        where += "" if args.trace else "-untraced"
        begin, end = MARK.format(where, "begin"), MARK.format(where, "end")
        new = block(where, command, args, r)
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            text = head + new + rest.split(end, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n" + new + "\n"
    with open(path, "w") as f:
        f.write(text)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=2000, help="measured cycles (after the warm-up)")
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--every", type=int, default=500, help="sample every N cycles")
    p.add_argument("--where", choices=("process", "inprocess", "both"), default="both")
    p.add_argument("--baud", type=int, default=921600)
    p.add_argument("--faults", default=FAULTS, help=f"emulator faults (default {FAULTS!r}; '' for none)")
    p.add_argument("--seed", type=int, default=21)
    p.add_argument("--kinds", default=",".join(soak.KINDS),
                   help=f"cycle kinds in turn (default: all of {','.join(soak.KINDS)})")
    p.add_argument("--trace", action=argparse.BooleanOptionalAction, default=True,
                   help="tracemalloc in both processes (default); --no-trace measures RSS "
                        "without tracemalloc's own tables and their effect on the heap")
    p.add_argument("--write", metavar="MD", help="put the figures into this file (docs/benchmarks.md)")
    args = p.parse_args(argv)
    # stopped with SIGTERM: the finally blocks still stop the emulator's process
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    args.kinds = tuple(k for k in args.kinds.split(",") if k)
    command = "python bench/bench_soak.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    results = {}
    for where in (("process", "inprocess") if args.where == "both" else (args.where,)):
        print(f"{where}: {args.warmup} warm-up + {args.cycles} cycles of {','.join(args.kinds)} at "
              f"{args.baud} baud, faults {args.faults or 'none'}", flush=True)
        def report(partial: Dict, where: str = where) -> None:
            if args.write:
                write(args.write, command, args, {**results, where: partial})
        results[where] = (run_process if where == "process" else run_inprocess)(args, report)
        for row in summary(where, args, results[where]):
            print(row)
    if args.write:
        write(args.write, command, args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
