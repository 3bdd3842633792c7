"""trio over the module without patching the ``socket`` module.

Inside ``trio.run``::

    wizsock.trio.install(module)          # a wizsock.Module, or the AsyncModule of open_module
    stream = await trio.open_tcp_stream("example.com", 80)
    tls = await trio.open_ssl_over_tcp_stream("example.com", 443)

:func:`install` sets trio's custom socket factory and hostname resolver for the
current run (``trio.socket.set_custom_socket_factory`` /
``set_custom_hostname_resolver``): every trio socket of the families the module
carries is a :class:`wizsock.socket.socket`, and names are resolved by the
module (AT+CIPDOMAIN).  trio's own ``SSLStream`` then runs over it.

With the blocking ``wizsock.Module`` (engine in its own thread) everything
works; with the ``AsyncModule`` of ``open_module`` on this same loop, TCP
client connections and name lookups work (UDP and servers need the blocking
Module, because opening them is a blocking call into the engine).
"""
from __future__ import annotations

import errno
import functools
import socket as _stdsocket
from typing import Any, Awaitable, Callable, Optional, Tuple

import trio as _trio

from wizsock import _orig
from wizsock import socket as _ws
from wizsock.facade import registry as _registry

__all__ = ["install", "uninstall", "SocketFactory", "HostnameResolver"]


#: trio keeps the implementation of its socket methods (non-blocking connect with
#: SO_ERROR, send/recv on readiness, shutdown bookkeeping) in this private class;
#: ``trio.socket.from_stdlib_socket`` is its only public constructor and refuses
#: anything but exactly ``socket.socket`` (to keep ``ssl.SSLSocket`` out), so the
#: facade, a plain subclass, cannot go through it.  What this relies on is pinned
#: by tests/facade/test_trio_pin.py, which fails if trio changes any of it:
#: ``from_stdlib_socket`` returns this class (a ``trio.socket.SocketType``); its
#: constructor's whole effect is ``setblocking(False)`` on the socket and the
#: instance state ``TRIO_SOCKET_STATE``; it still refuses subclasses.
_TrioSocketBase = _trio._socket._SocketType
TRIO_SOCKET_STATE = ("_sock", "_did_shutdown_SHUT_WR")


class _TrioSocket(_TrioSocketBase):
    """trio's socket wrapper around a facade socket (see ``_TrioSocketBase``)."""

    def __init__(self, sock: _stdsocket.socket) -> None:
        # trio's constructor minus its exact-type check: the same state, nothing else
        sock.setblocking(False)
        state = dict(zip(TRIO_SOCKET_STATE, (sock, False)))
        vars(self).update(state)


class _AsyncHandle(_registry.Handle):
    """The facade driving an AsyncModule on the caller's own trio loop."""

    @property
    def aio(self) -> Any:
        return self.module

    def call(self, async_fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        raise OSError(errno.EWOULDBLOCK,
                      "this needs a blocking call into the engine, which runs on this very "
                      "trio loop: use wizsock.Module (engine in a thread) for UDP and servers")

    def spawn(self, async_fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        _trio.lowlevel.spawn_system_task(async_fn, *args)


def _handle_for(module: Any) -> Any:
    if module is None:
        module = _ws.get_module()
        if module is None:
            raise RuntimeError("wizsock.trio.install() needs a module (or an active wizsock.patch)")
    if hasattr(module, "run") and hasattr(module, "start_soon"):
        return _registry.Handle(module)
    return _AsyncHandle(module)


class SocketFactory(_trio.abc.SocketFactory):
    """trio socket factory: AF_INET stream/datagram sockets over the module."""

    def __init__(self, module: Any = None) -> None:
        self._handle = _handle_for(module)

    def socket(self, family: Optional[int] = None, type: Optional[int] = None,
               proto: Optional[int] = None) -> _trio.socket.SocketType:
        family = _stdsocket.AF_INET if family is None else family
        type = _stdsocket.SOCK_STREAM if type is None else type
        proto = 0 if proto is None else proto
        sock = _ws.socket(family, type, proto)
        if not sock.wiz_kernel_routed:
            sock.wiz_use_module(self._handle)
        return _TrioSocket(sock)


class HostnameResolver(_trio.abc.HostnameResolver):
    """trio resolver: names through the module's DNS, literals locally."""

    def __init__(self, module: Any = None) -> None:
        self._handle = _handle_for(module)

    async def getaddrinfo(self, host: Any, port: Any, family: int = 0,
                          type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        if _orig.is_internal():
            return await _trio.to_thread.run_sync(
                _orig.getaddrinfo, host, port, family, type, proto, flags)
        handle = self._handle
        if isinstance(handle, _AsyncHandle):
            name = _ws.host_str(host) if host is not None else None
            ip: Optional[str] = None
            if name and _ws.ipv4_literal(name) is None and not _ws.is_ipv6_literal(name) \
                    and not flags & _stdsocket.AI_NUMERICHOST:
                ip = await self._resolve_async(name)

            def resolved(_name: str) -> str:
                # getaddrinfo_with asks for exactly the names looked up above
                assert ip is not None
                return ip
            return _ws.getaddrinfo_with(host, port, family, type, proto, flags, resolved)
        return await _trio.to_thread.run_sync(
            functools.partial(_ws.getaddrinfo_with, host, port, family, type, proto, flags,
                              functools.partial(_ws.resolve_name, handle=handle)),
            abandon_on_cancel=True)

    async def _resolve_async(self, name: str) -> str:
        local = _ws.LOCAL_NAMES.get(name.lower().rstrip("."))
        if local:
            return local
        try:
            return str(await self._handle.aio.net.resolve(name))
        except _stdsocket.gaierror:
            raise
        except TimeoutError as e:
            raise _stdsocket.gaierror(_stdsocket.EAI_AGAIN, "Temporary failure in name resolution") from e

    async def getnameinfo(self, sockaddr: Any, flags: int) -> Tuple[str, str]:
        # the module has no reverse lookup: numeric answers, as with NI_NUMERICHOST
        return await _trio.to_thread.run_sync(
            _stdsocket.getnameinfo, sockaddr,
            flags | _stdsocket.NI_NUMERICHOST | _stdsocket.NI_NUMERICSERV)


def install(module: Any = None) -> None:
    """Route this trio run's sockets and name lookups through ``module``."""
    _trio.socket.set_custom_socket_factory(SocketFactory(module))
    _trio.socket.set_custom_hostname_resolver(HostnameResolver(module))


def uninstall() -> None:
    _trio.socket.set_custom_socket_factory(None)
    _trio.socket.set_custom_hostname_resolver(None)
