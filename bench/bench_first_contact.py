"""How long a first contact takes to succeed or to fail (docs/design.md 3c).

* **silent port**: ``wizsock.Module`` on a pty with nothing behind it, until
  ``ModuleUnresponsive`` (the whole baud hunt: what a user with bad wiring waits
  before ``wizsock run`` exits 3);
* **other rate**: the emulator on a pty at 115200 baud, the host configured for
  921600: until the hunt has found it and switched it to 921600;
* **no such port**: until ``PortNotFound``.

    python bench/bench_first_contact.py [--runs 3]

Prints the median and the spread of each.
"""
import argparse
import os
import statistics
import sys
import time
import tty

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import wizsock  # noqa: E402
from wizsock import errors as E  # noqa: E402
from wizsock.emulator.core import Emulator  # noqa: E402


def silent_port() -> float:
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        t0 = time.monotonic()
        try:
            wizsock.Module(os.ttyname(slave))
        except E.ModuleUnresponsive:
            return time.monotonic() - t0
        raise AssertionError("a module answered on a silent pty")
    finally:
        os.close(master)
        os.close(slave)


def other_rate() -> float:
    emu = Emulator(baudrate=115200).start()
    try:
        path = emu.serve_pty(strict_baud=True)
        t0 = time.monotonic()
        with wizsock.Module(path, baudrate=921600) as m:
            took = time.monotonic() - t0
            assert m.system.uart_cur().baudrate == 921600
        return took
    finally:
        emu.stop()


def no_such_port() -> float:
    t0 = time.monotonic()
    try:
        wizsock.Module("/dev/ttyNOPE-bench")
    except E.PortNotFound:
        return time.monotonic() - t0
    raise AssertionError("/dev/ttyNOPE-bench opened")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    for name, fn in (("silent port", silent_port), ("other rate", other_rate),
                     ("no such port", no_such_port)):
        times = [fn() for _ in range(args.runs)]
        print(f"{name:13s} median {statistics.median(times):6.2f} s  "
              f"(min {min(times):.2f}, max {max(times):.2f}, {args.runs} runs)", flush=True)


if __name__ == "__main__":
    main()
