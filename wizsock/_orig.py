"""The host's own socket functions, saved before any `wizsock.patch()`.

Patching replaces attributes of the stdlib ``socket`` module for the whole
process; trio.socket, asyncio and pyserial look them up at call time.  Code that
must reach the host's real network while a patch may be active (wizsock's own
internals, the emulator's network side, test servers) uses the names below, or
runs inside :func:`internal` / after :func:`mark_internal`: in that context
the facade socket stays a plain kernel socket and the patched functions behave
as the originals.  The flag is a ContextVar, so trio tasks spawned from a marked
context and ``trio.to_thread`` workers inherit it.
"""
from __future__ import annotations

import contextlib
import contextvars
import socket as _stdsocket
import threading as _threading
from collections.abc import Iterator
from typing import Any

import _socket

# Saved at first import of wizsock's facade, before anything can patch.  The C
# functions are the originals as they are; the Python ones of socket.py look up
# ``socket``/``getaddrinfo`` in that module at call time, so their stand-ins below
# run in the internal context (or build the original class themselves).
socket = _stdsocket.socket
SocketType = _stdsocket.SocketType
getaddrinfo = _stdsocket.getaddrinfo
gethostbyname = _stdsocket.gethostbyname
gethostbyname_ex = _stdsocket.gethostbyname_ex
_std_create_connection = _stdsocket.create_connection

_INTERNAL = contextvars.ContextVar("wizsock_internal", default=False)


def socketpair(family: int = _stdsocket.AF_UNIX, type: int = _stdsocket.SOCK_STREAM,
               proto: int = 0) -> tuple[_stdsocket.socket, _stdsocket.socket]:
    """``socket.socketpair`` returning the host's own socket class."""
    a, b = _socket.socketpair(family, type, proto)
    return socket(family, type, proto, a.detach()), socket(family, type, proto, b.detach())


def create_connection(*args: Any, **kwargs: Any) -> _stdsocket.socket:
    """``socket.create_connection`` on the host's network, patched or not."""
    token = _INTERNAL.set(True)
    try:
        return _std_create_connection(*args, **kwargs)
    finally:
        _INTERNAL.reset(token)


INTERNAL_THREAD_PREFIXES = ("wizemu-", "wizsock-")


def is_internal() -> bool:
    """True if the current context asked for the host's real network.

    Threads named ``wizemu-*`` / ``wizsock-*`` (the emulator's and the engine's)
    count as internal even when they did not mark themselves."""
    return _INTERNAL.get() or _threading.current_thread().name.startswith(INTERNAL_THREAD_PREFIXES)


def mark_internal() -> None:
    """Mark the current context (thread, before trio.run) as wizsock-internal."""
    _INTERNAL.set(True)


@contextlib.contextmanager
def internal() -> Iterator[None]:
    """Within this block, sockets and name lookups use the host's network."""
    token = _INTERNAL.set(True)
    try:
        yield
    finally:
        _INTERNAL.reset(token)
