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
from typing import Any, Callable, Dict, Iterable, Optional, Sequence

from .progress import progress_for  # noqa: F401  (re-exported for the tools)

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_MODULE = 3
EXIT_JOIN = 4
EXIT_OFFLINE = 5
EXIT_UNREACHABLE = 6
EXIT_INTERRUPTED = 130

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_NO_MODULE", "EXIT_JOIN", "EXIT_OFFLINE",
           "EXIT_UNREACHABLE", "EXIT_INTERRUPTED", "add_module_arguments", "open_module_for",
           "run_tool", "emit", "table", "as_data", "ToolError", "open_raw_port"]


class ToolError(Exception):
    """A failure the tool reports as one line on stderr, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


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
    used as it is.  Raises :class:`ToolError` (exit 3) when there is no module."""
    from wizsock import errors as E
    from wizsock.engine import Module
    from wizsock.patch import EMULATOR_BAUD, open_default_module

    _quiet_logs(getattr(args, "verbose", 0))
    options: Dict[str, Any] = {}
    if getattr(args, "trace", None):
        options["trace"] = args.trace
    try:
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
    except (E.ModuleUnresponsive, E.LinkClosed) as exc:
        raise ToolError(f"no module on {args.port or 'the emulator'}: {exc}", EXIT_NO_MODULE) from None
    except OSError as exc:
        if isinstance(exc, E.WizError):
            raise
        raise ToolError(f"cannot open {args.port}: {exc}", EXIT_NO_MODULE) from None
    except BaseExceptionGroup as group:   # the engine's nursery wraps a failed port open
        opened, _ = group.split(lambda e: isinstance(e, OSError) and not isinstance(e, E.WizError))
        if opened is None:
            raise
        first = opened.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise ToolError(f"cannot open {args.port}: {first}", EXIT_NO_MODULE) from None


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
    """Open the module, run ``body(module)``, map failures to the exit codes above."""
    from wizsock import errors as E

    try:
        import serial
        serial_error: Any = serial.SerialException
    except ImportError:  # pragma: no cover - pyserial is a dependency
        serial_error = OSError
    module = None
    try:
        try:
            module = open_module_for(args, join_emulator=join_emulator)
        except serial_error as exc:
            raise ToolError(f"cannot open {args.port}: {exc}", EXIT_NO_MODULE) from None
        return body(module)
    except ToolError as exc:
        print(f"wizsock {name}: {exc}", file=sys.stderr)
        return exc.code
    except E.JoinError as exc:
        print(f"wizsock {name}: {exc}", file=sys.stderr)
        return EXIT_JOIN
    except (E.ModuleUnresponsive, E.ModuleReset) as exc:
        print(f"wizsock {name}: the module stopped answering: {exc}", file=sys.stderr)
        return EXIT_NO_MODULE
    except E.WizError as exc:
        print(f"wizsock {name}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (| head): not an error of ours; no flush at exit either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
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


def pairs(items: Iterable[tuple]) -> str:
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

