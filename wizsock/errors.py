"""Exceptions raised by the wizsock engine (docs/design.md section 3).

Every error is an ``OSError`` (through :class:`WizError`), and most also derive
from the builtin ``OSError`` subclass that ordinary socket code already catches:
a module reset is a ``ConnectionResetError``, a refused connect a
``ConnectionRefusedError``, a failed DNS lookup a ``socket.gaierror``.
"""
from __future__ import annotations

import errno
import socket
from typing import Any, Dict, Iterable, Optional, Tuple, Type

__all__ = [
    "WizError", "CommandError", "CommandTimeout", "ModuleReset", "ModuleUnresponsive",
    "LinkLimitError", "ConnectError", "ResolveError", "SendFailed", "JoinError",
    "NotGpioMode", "NotOutputMode", "BufferOverflow", "LinkClosed", "StaleLink",
    "Busy", "ProtocolError", "BadResponse", "PortError", "PortNotFound", "PortAccessDenied",
    "PortBusy",
]


def _rebuild(cls: Type["WizError"], args: Tuple[Any, ...], state: Dict[str, Any]) -> "WizError":
    """Unpickle/copy: the OSError part from its args, the rest from ``__dict__``.

    The subclasses' constructors take a message and keywords, not the
    ``(errno, strerror)`` that ``OSError.__reduce__`` hands back, so the default
    reduction cannot call them; neither is needed to restore the object."""
    exc = cls.__new__(cls, *args)
    OSError.__init__(exc, *args)      # errno, strerror (a subclass's __new__ leaves them)
    exc.__dict__.update(state)
    return exc


class WizError(OSError):
    """Base of every wizsock engine error.

    Every subclass pickles and copies (``copy.copy``/``deepcopy``) with its type,
    ``errno``, message and extra fields (``command``, ``code``, ``link``, ...): an
    error can cross a process boundary (multiprocessing, concurrent.futures)."""

    def __init__(self, *args: Any) -> None:
        # OSError(errno, strerror) keeps .errno/.strerror; a bare message keeps .args.
        super().__init__(*args)

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class CommandError(WizError):
    """The module answered ERROR (or FAIL) to a command.

    ``command`` is the command name (e.g. ``"CIPSTART"``), ``result`` the final
    result line, ``lines`` the informational lines that came before it.
    """

    def __init__(self, message: str, *, command: Optional[str] = None,
                 result: Optional[str] = None, lines: Iterable[str] = ()) -> None:
        super().__init__(errno.EIO, message)
        self.command = command
        self.result = result
        self.lines = tuple(lines)

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class Busy(CommandError):
    """The module kept answering ``busy p...``/``busy s...`` until the retries ran out."""


class NotGpioMode(CommandError):
    """``NOT GPIO MODE!``: the pin is not configured as GPIO (AT+SYSIOSETCFG)."""


class NotOutputMode(NotGpioMode):
    """``NOT OUTPUT MODE!``: the pin is not an output (AT+SYSGPIODIR)."""


class JoinError(CommandError):
    """AT+CWJAP failed; ``code`` is the module's error code, ``meaning`` its text.

    ``networks``: the SSIDs in range (strongest first) when a scan followed the
    failure (``wizsock run``, ``wizsock join`` and ``open_default_module(...,
    scan_if_join_fails=True)`` do one unless the password was wrong), else None."""

    def __init__(self, message: str, *, code: Optional[int] = None,
                 meaning: Optional[str] = None, networks: Optional[Iterable[str]] = None,
                 **kw: Any) -> None:
        super().__init__(message, **kw)
        self.code = code
        self.meaning = meaning
        self.networks: Optional[Tuple[str, ...]] = None if networks is None else tuple(networks)

    def saw_networks(self, networks: Optional[Iterable[str]]) -> None:
        """The SSIDs a scan after the failure found (None: it could not scan)."""
        self.networks = None if networks is None else tuple(networks)


class CommandTimeout(WizError, TimeoutError):
    """No final result within the command's timeout."""

    def __init__(self, message: str, *, command: Optional[str] = None,
                 timeout: Optional[float] = None) -> None:
        super().__init__(errno.ETIMEDOUT, message)
        self.command = command
        self.timeout = timeout

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class ModuleUnresponsive(CommandTimeout):
    """The module stopped answering ``AT`` probes at every baud rate tried.

    At start-up ``rates`` holds the baud rates the hunt tried, in order (one rate
    when ``hunt_baud`` is off), and ``port`` the port; both are empty/None when a
    running module stops answering."""

    def __init__(self, message: str, *, command: Optional[str] = None,
                 timeout: Optional[float] = None, rates: Iterable[int] = (),
                 port: Optional[str] = None) -> None:
        super().__init__(message, command=command, timeout=timeout)
        self.rates = tuple(rates)
        self.port = port


class ModuleReset(WizError, ConnectionResetError):
    """The module restarted (``ready``/boot noise): links and pending commands are gone."""

    def __init__(self, message: str = "module reset") -> None:
        super().__init__(errno.ECONNRESET, message)

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class LinkLimitError(WizError):
    """No free link id (the module has five, 0-4) or a second SSL link was asked for.

    errno EBUSY ("device or resource busy"): the module's links are busy.  Not EMFILE,
    which tells a program that *it* ran out of descriptors; not EAGAIN, which asyncio
    and selectors take for "try again" and would wait on forever."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EBUSY, message)

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class ConnectError(WizError, ConnectionRefusedError):
    """AT+CIPSTART failed (``CONNECT FAIL``/``ERROR``)."""

    def __init__(self, message: str, *, lines: Iterable[str] = ()) -> None:
        super().__init__(errno.ECONNREFUSED, message)
        self.lines = tuple(lines)

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class ResolveError(WizError, socket.gaierror):
    """AT+CIPDOMAIN failed (``DNS Fail``)."""

    def __init__(self, message: str) -> None:
        super().__init__(socket.EAI_NONAME, message)

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class SendFailed(WizError, ConnectionError):
    """``SEND FAIL``, a short ``Recv N bytes``, or a send the module never acknowledged.

    The link is failed: a TCP stream with a hole in it never continues.
    """

    def __init__(self, message: str, *, link: Optional[int] = None) -> None:
        super().__init__(errno.EPIPE, message)
        self.link = link

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class BufferOverflow(WizError):
    """More unread data arrived for a link than its documented limit (no flow control)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOBUFS, message)

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class LinkClosed(WizError):
    """The link handle was closed (by its owner); also raised for use after close."""

    def __init__(self, message: str = "link is closed") -> None:
        super().__init__(errno.EBADF, message)

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class StaleLink(LinkClosed):
    """The handle belongs to an older generation of its link id."""


class ProtocolError(WizError):
    """The module's output broke the AT protocol: a ``+IPD`` whose length lied, an
    answer swallowed or garbled.  ``command`` names the command whose answer was
    affected (or None), ``link`` the link whose data was (or None)."""

    link: Optional[int]

    def __init__(self, message: str, *, command: Optional[str] = None,
                 link: Optional[int] = None) -> None:
        super().__init__(errno.EPROTO, message)
        self.command = command
        self.link = link

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class BadResponse(ProtocolError):
    """A command's answer could not be read (a final result without the lines it
    needs, or lines the codec cannot parse); ``lines`` holds what came."""

    def __init__(self, message: str, *, command: Optional[str] = None,
                 lines: Iterable[str] = ()) -> None:
        super().__init__(message, command=command)
        self.lines = tuple(lines)


class PortError(WizError):
    """The module's port could not be opened (or is not a serial device).

    ``errno`` is the cause's (``ENOTTY``: not a serial device, ``EIO`` ...), ``port``
    the port as given, ``__cause__`` the original error (the ``FileNotFoundError``,
    ``PermissionError`` ... under pyserial's ``SerialException``).  Constructed as
    ``PortError(errno, message, port=...)``, like ``OSError``."""

    def __init__(self, errno_: int, message: str, *, port: Optional[str] = None) -> None:
        super().__init__(errno_, message)
        self.port = port

    def __str__(self) -> str:
        return self.strerror or super().__str__()


class PortNotFound(PortError, FileNotFoundError):
    """No such device: ``ENOENT`` (no such path), ``ENODEV``/``ENXIO`` (no hardware behind it)."""


class PortAccessDenied(PortError, PermissionError):
    """``EACCES``/``EPERM``: this user may not open the device (on Linux, not in its
    group: ``dialout`` or ``uucp``)."""


class PortBusy(PortError):
    """``EBUSY``: another program holds the port, with an exclusive lock (``flock``, as
    pyserial's ``exclusive=True`` and wizsock take it) or in exclusive mode (``TIOCEXCL``).

    ``holders`` names the processes seen with the device open, as ``"pid (name)"``
    (those this user may inspect; empty when none are visible)."""

    def __init__(self, errno_: int, message: str, *, port: Optional[str] = None,
                 holders: Iterable[str] = ()) -> None:
        super().__init__(errno_, message, port=port)
        self.holders = tuple(holders)
