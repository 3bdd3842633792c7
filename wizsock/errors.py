"""Exceptions raised by the wizsock engine (docs/design.md section 4).

Every error is an ``OSError`` (through :class:`WizError`), and most also derive
from the builtin ``OSError`` subclass that ordinary socket code already catches:
a module reset is a ``ConnectionResetError``, a refused connect a
``ConnectionRefusedError``, a failed DNS lookup a ``socket.gaierror``.
"""
from __future__ import annotations

import errno
import socket

__all__ = [
    "WizError", "CommandError", "CommandTimeout", "ModuleReset", "ModuleUnresponsive",
    "LinkLimitError", "ConnectError", "ResolveError", "SendFailed", "JoinError",
    "NotGpioMode", "NotOutputMode", "BufferOverflow", "LinkClosed", "StaleLink",
    "Busy",
]


class WizError(OSError):
    """Base of every wizsock engine error."""

    def __init__(self, *args):
        # OSError(errno, strerror) keeps .errno/.strerror; a bare message keeps .args.
        super().__init__(*args)


class CommandError(WizError):
    """The module answered ERROR (or FAIL) to a command.

    ``command`` is the command name (e.g. ``"CIPSTART"``), ``result`` the final
    result line, ``lines`` the informational lines that came before it.
    """

    def __init__(self, message, *, command=None, result=None, lines=()):
        super().__init__(errno.EIO, message)
        self.command = command
        self.result = result
        self.lines = tuple(lines)

    def __str__(self):
        return self.strerror or super().__str__()


class Busy(CommandError):
    """The module kept answering ``busy p...``/``busy s...`` until the retries ran out."""


class NotGpioMode(CommandError):
    """``NOT GPIO MODE!``: the pin is not configured as GPIO (AT+SYSIOSETCFG)."""


class NotOutputMode(NotGpioMode):
    """``NOT OUTPUT MODE!``: the pin is not an output (AT+SYSGPIODIR)."""


class JoinError(CommandError):
    """AT+CWJAP failed; ``code`` is the module's error code, ``meaning`` its text."""

    def __init__(self, message, *, code=None, meaning=None, **kw):
        super().__init__(message, **kw)
        self.code = code
        self.meaning = meaning


class CommandTimeout(WizError, TimeoutError):
    """No final result within the command's timeout."""

    def __init__(self, message, *, command=None, timeout=None):
        super().__init__(errno.ETIMEDOUT, message)
        self.command = command
        self.timeout = timeout

    def __str__(self):
        return self.strerror or super().__str__()


class ModuleUnresponsive(CommandTimeout):
    """The module stopped answering ``AT`` probes at every baud rate tried."""


class ModuleReset(WizError, ConnectionResetError):
    """The module restarted (``ready``/boot noise): links and pending commands are gone."""

    def __init__(self, message="module reset"):
        super().__init__(errno.ECONNRESET, message)

    def __str__(self):
        return self.strerror or super().__str__()


class LinkLimitError(WizError):
    """No free link id (the module has five, 0-4) or a second SSL link was asked for.

    errno EBUSY ("device or resource busy"): the module's links are busy.  Not EMFILE,
    which tells a program that *it* ran out of descriptors; not EAGAIN, which asyncio
    and selectors take for "try again" and would wait on forever."""

    def __init__(self, message):
        super().__init__(errno.EBUSY, message)

    def __str__(self):
        return self.strerror or super().__str__()


class ConnectError(WizError, ConnectionRefusedError):
    """AT+CIPSTART failed (``CONNECT FAIL``/``ERROR``)."""

    def __init__(self, message, *, lines=()):
        super().__init__(errno.ECONNREFUSED, message)
        self.lines = tuple(lines)

    def __str__(self):
        return self.strerror or super().__str__()


class ResolveError(WizError, socket.gaierror):
    """AT+CIPDOMAIN failed (``DNS Fail``)."""

    def __init__(self, message):
        super().__init__(socket.EAI_NONAME, message)

    def __str__(self):
        return self.strerror or super().__str__()


class SendFailed(WizError, ConnectionError):
    """``SEND FAIL``, a short ``Recv N bytes``, or a send the module never acknowledged.

    The link is failed: a TCP stream with a hole in it never continues.
    """

    def __init__(self, message, *, link=None):
        super().__init__(errno.EPIPE, message)
        self.link = link

    def __str__(self):
        return self.strerror or super().__str__()


class BufferOverflow(WizError):
    """More unread data arrived for a link than its documented limit (no flow control)."""

    def __init__(self, message):
        super().__init__(errno.ENOBUFS, message)

    def __str__(self):
        return self.strerror or super().__str__()


class LinkClosed(WizError):
    """The link handle was closed (by its owner); also raised for use after close."""

    def __init__(self, message="link is closed"):
        super().__init__(errno.EBADF, message)

    def __str__(self):
        return self.strerror or super().__str__()


class StaleLink(LinkClosed):
    """The handle belongs to an older generation of its link id."""
