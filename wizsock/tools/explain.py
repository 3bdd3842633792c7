"""Every ``wizsock`` command's failure as one line on stderr and an exit code.

``wizsock.cli.main`` hands whatever a subcommand raises to :func:`report`, so a
new subcommand gets the same treatment.  The line is ``wizsock CMD: what
happened``, with a hint where the cause is common (a serial device of the
``dialout`` group, a port another program holds, no answer at any baud rate, a
wrong password or an unknown network); the traceback only with ``wizsock
--debug`` or ``WIZSOCK_DEBUG=1``.  Exit codes: :mod:`wizsock.tools.common`.
"""
from __future__ import annotations

import errno
import os
import sys
import traceback
from typing import Any, Iterable, List, Optional, TextIO

from .. import errors as E
from ..patch import networks_in_range as networks_in_range
from . import exits as C

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

__all__ = ["report", "describe", "exit_code", "hint", "debugging", "networks_in_range",
           "DEBUG_ENV"]

#: the environment variable that shows tracebacks (``wizsock --debug`` sets it)
DEBUG_ENV = "WIZSOCK_DEBUG"


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0", "no", "false")


def _single(exc: BaseException) -> BaseException:
    if isinstance(exc, BaseExceptionGroup):
        from wizsock.engine.groups import collapse
        return collapse(exc)
    return exc


def exit_code(exc: BaseException) -> int:
    """The documented exit code for a command that ended with ``exc``."""
    exc = _single(exc)
    if isinstance(exc, C.ToolError):
        return exc.code
    if isinstance(exc, KeyboardInterrupt):
        return C.EXIT_INTERRUPTED
    if isinstance(exc, E.JoinError):
        return C.EXIT_JOIN
    if isinstance(exc, (E.PortError, E.ModuleUnresponsive, E.ModuleReset)):
        return C.EXIT_NO_MODULE
    return C.EXIT_FAILED


def describe(exc: BaseException) -> str:
    """What happened, with the hint: one line."""
    exc = _single(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, E.ModuleUnresponsive) and not exc.rates:
        text = f"the module stopped answering: {exc}"
    elif isinstance(exc, E.ModuleReset):
        text = f"the module restarted: {exc}"
    elif isinstance(exc, (E.WizError, C.ToolError)):
        text = str(exc)
    elif isinstance(exc, OSError):
        text = _os_error(exc)
    else:
        text = (f"internal error: {type(exc).__name__}: {exc} (run with --debug for "
                "the traceback, and please report it)")
    more = hint(exc)
    text = f"{text}; {more}" if more else text
    return " ".join(text.split())      # one line, whatever the texts held


def _os_error(exc: OSError) -> str:
    if exc.strerror and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror.lower()}"
    return str(exc) or type(exc).__name__


def hint(exc: BaseException) -> Optional[str]:
    """A hint for a common cause, or None."""
    if isinstance(exc, E.PortAccessDenied):
        return _access_hint(exc.port)
    if isinstance(exc, E.PortBusy):
        return ("close the program that has it (a terminal such as minicom or screen, "
                "ModemManager, another wizsock) and try again")
    if isinstance(exc, E.PortNotFound):
        return _ports_hint()
    if isinstance(exc, E.PortError) and exc.errno == errno.ENOTTY:
        return "give the module's serial port (e.g. /dev/ttyUSB0); " + _ports_hint()
    if isinstance(exc, E.ModuleUnresponsive) and exc.rates:
        return ("check the wiring (module TX to the adapter's RX and RX to TX, a common "
                "ground), the module's power (3.3 V, enough current for WiFi peaks), and "
                "the flow-control lines (a module with RTS/CTS on sends nothing while its "
                "CTS is held off: wire the adapter's RTS to it or tie it low)")
    if isinstance(exc, E.JoinError):
        return _join_hint(exc)
    return None


def _access_hint(port: Optional[str]) -> Optional[str]:
    import stat
    try:
        import grp
        import pwd
    except ImportError:       # (not POSIX: no groups to name)
        return None

    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:          # (a uid with no name: containers)
        user = str(os.getuid())
    try:
        st = os.stat(port or "")
        entry = grp.getgrgid(st.st_gid)
    except (OSError, KeyError):
        return f"user {user!r} may not open it"
    group = entry.gr_name
    if st.st_mode & (stat.S_IRGRP | stat.S_IWGRP) == stat.S_IRGRP | stat.S_IWGRP \
            and st.st_gid != 0:
        if user in entry.gr_mem and st.st_gid not in os.getgroups():
            return (f"user {user!r} was added to group {group!r} after this session "
                    f"began: log out and in again (or run: newgrp {group})")
        return (f"the device belongs to group {group!r}, which user {user!r} is not in: "
                f"sudo usermod -aG {group} {user}, then log in again")
    return (f"only its owner may open it (mode {stat.filemode(st.st_mode)}, group "
            f"{group!r}): a udev rule can give it to the dialout group")


def _ports_hint() -> str:
    try:
        from serial.tools import list_ports
        ports = [p for p in list_ports.comports() if p.description and p.description != "n/a"]
    except Exception:      # (listing is a courtesy: never a second failure)
        ports = []
    if not ports:
        return "no USB serial adapter found (plugged in? dmesg shows what the kernel saw)"
    return "serial ports here: " + ", ".join(f"{p.device} ({p.description})" for p in ports)


def _join_hint(exc: E.JoinError) -> Optional[str]:
    nets = exc.networks
    listed = None
    if nets is not None:
        listed = ("networks in range: " + ", ".join(repr(n) for n in nets)) if nets \
            else "no networks in range"
    if exc.code == 2:
        return "check the password (the network was found)"
    return listed


def report(command: str, exc: BaseException, stream: Optional[TextIO] = None) -> int:
    """Print ``wizsock COMMAND: ...`` (after the traceback when debugging) to stderr;
    the exit code."""
    stream = stream or sys.stderr
    exc = _single(exc)
    if debugging() and not isinstance(exc, KeyboardInterrupt):
        traceback.print_exception(exc, file=stream)
    if not isinstance(exc, KeyboardInterrupt) or debugging():
        print(f"wizsock {command}: {describe(exc)}", file=stream)
    stream.flush()
    return exit_code(exc)
