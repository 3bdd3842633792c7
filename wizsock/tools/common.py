"""What the everyday commands share: module options, opening, output, exit codes.

Exit codes (the same for every tool; README "Tools"):

====  ==========================================================================
0     done
1     the module answered with an error, or the operation failed otherwise
2     usage error (bad arguments, unreadable input)
3     no module: the port cannot be opened or the module does not answer
4     joining the network failed (wrong password, no such network, timeout)
5     not connected: the module has not joined a network / has no IP address
6     ping: no reply, or the name does not resolve
130   interrupted (Ctrl-C)
====  ==========================================================================
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

from .exits import EXIT_FAILED as EXIT_FAILED  # (the exit codes, re-exported for the tools)
from .exits import EXIT_INTERRUPTED as EXIT_INTERRUPTED
from .exits import EXIT_JOIN as EXIT_JOIN
from .exits import EXIT_NO_MODULE as EXIT_NO_MODULE
from .exits import EXIT_OFFLINE as EXIT_OFFLINE
from .exits import EXIT_OK as EXIT_OK
from .exits import EXIT_UNREACHABLE as EXIT_UNREACHABLE
from .exits import EXIT_USAGE as EXIT_USAGE
from .exits import ToolError as ToolError
from .progress import progress_for as progress_for  # (re-exported for the tools)

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_NO_MODULE", "EXIT_JOIN", "EXIT_OFFLINE",
           "EXIT_UNREACHABLE", "EXIT_INTERRUPTED", "add_module_arguments", "open_module_for",
           "run_tool", "emit", "table", "as_data", "ToolError", "open_raw_port"]


def add_module_arguments(parser: argparse.ArgumentParser, *, json_output: bool = True) -> None:
    """``--port``, ``--baudrate``, ``--trace`` (and ``--json``), as ``wizsock run`` has them."""
    parser.epilog = ("exit codes: 0 done, 1 failed (the module answered an error), 2 usage, "
                     "3 no module, 4 joining failed, 5 not connected, 6 ping: no reply, "
                     "130 interrupted")
    parser.add_argument("--port", default=None,
                        help="serial port of the module (anything pyserial opens: /dev/ttyUSB0, "
                             "socket://host:port, wizemu://...); default: the in-process emulator")
    parser.add_argument("--baudrate", type=int, default=None,
                        help="UART rate (default 115200; 921600 for the emulator)")
    parser.add_argument("--trace", default=None, metavar="FILE",
                        help="record the UART traffic, secrets masked, to FILE (mode 0600); "
                             "read it with `wizsock trace FILE`")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log wizsock's activity to stderr")
    if json_output:
        parser.add_argument("--json", action="store_true",
                            help="print JSON (for scripts) instead of a table")


def _quiet_logs(verbose: int) -> None:
    if verbose:
        logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO,
                            format="%(asctime)s %(name)s %(message)s")
    else:
        # the tools report failures themselves; the engine's warnings would repeat them
        logging.getLogger("wizsock").setLevel(logging.ERROR)


def open_module_for(args: argparse.Namespace, *, join_emulator: bool) -> Any:
    """A blocking ``Module`` on ``--port`` (default: a private in-process emulator).

    ``join_emulator``: the emulator is joined to its default access point (as with
    ``wizsock run``), so status/ping/info show a connected module.  A real module is
    used as it is.  No module raises ``errors.PortError`` (the port cannot be
    opened) or ``errors.ModuleUnresponsive`` (nothing answers): exit 3."""
    from wizsock.engine import Module
    from wizsock.patch import EMULATOR_BAUD, open_default_module

    _quiet_logs(getattr(args, "verbose", 0))
    options: Dict[str, Any] = {}
    if getattr(args, "trace", None):
        options["trace"] = args.trace
    if args.port is not None or join_emulator:
        return open_default_module(args.port, baudrate=args.baudrate, **options)
    baud = args.baudrate or EMULATOR_BAUD
    m = Module(f"wizemu://?baud={baud}", baudrate=baud, **options)
    try:
        m.wifi.set_mode(1)        # the factory default is SoftAP only: nothing to scan
    except BaseException:
        m.close()
        raise
    return m


def open_raw_port(url: str, baudrate: int, timeout: float = 0.005) -> Any:
    """A pyserial port on ``url`` with no engine on it (``wizsock check`` reads raw answers).
    Raises :class:`ToolError` (exit 3) when it cannot be opened."""
    import serial

    import wizsock  # noqa: F401  (registers wizemu://)
    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=timeout)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise ToolError(f"cannot open {url}: {exc}", EXIT_NO_MODULE) from None


def run_tool(name: str, args: argparse.Namespace, body: Callable[[Any], int], *,
             join_emulator: bool = True) -> int:
    """Open the module, run ``body(module)``; a failure is reported as one line on
    stderr (:mod:`wizsock.tools.explain`) and its exit code (above) returned."""
    from wizsock import errors as E

    from wizsock.patch import note_networks_in_range

    from . import explain

    module = None
    try:
        module = open_module_for(args, join_emulator=join_emulator)
        try:
            return body(module)
        except E.JoinError as exc:
            note_networks_in_range(exc, module)      # for the hint: the names in range
            raise
    except BrokenPipeError:
        # the reader went away (| head): not an error of ours; no flush at exit either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        return explain.report(name, exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        if module is not None:
            module.close()


def as_data(value: Any) -> Any:
    """Records (frozen dataclasses) and tuples -> JSON-ready dicts and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [as_data(v) for v in value]
    if isinstance(value, dict):
        return {str(k): as_data(v) for k, v in value.items()}
    return value


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain aligned table (no borders, so it pastes well)."""
    text = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text:
        for i, v in enumerate(row):
            widths[i] = max(widths[i], len(v))
    bold = sys.stdout.isatty() and os.environ.get("NO_COLOR") is None
    head = "  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()
    out = [f"\x1b[1m{head}\x1b[0m" if bold else head]
    for row in text:
        out.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return "\n".join(out)


def pairs(items: Iterable[Tuple[str, object]]) -> str:
    """``name: value`` lines, aligned."""
    items = [(k, v) for k, v in items]
    w = max((len(k) for k, _ in items), default=0)
    return "\n".join(f"{k + ':':<{w + 1}} {'-' if v is None else v}" for k, v in items)


def emit(args: argparse.Namespace, data: Any, render: Callable[[], str]) -> None:
    """``--json``: the data as JSON; otherwise the rendered text."""
    if getattr(args, "json", False):
        json.dump(as_data(data), sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
    else:
        print(render())
    sys.stdout.flush()


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def names_of(mapping: Dict[int, str], value: Optional[int]) -> Optional[str]:
    if value is None:
        return None
    return mapping.get(value, str(value))


def lines(*parts: str) -> str:
    return "\n".join(p for p in parts if p)

