"""A drop-in ``socket.socket`` whose connections go over the WizFi360.

:class:`socket` is a real ``socket.socket`` subclass with a real descriptor.
It is a kernel socket until ``connect()`` (or ``sendto``/``listen``); a connection
routed to the module opens a link through the engine and swaps the descriptor,
with ``os.dup2``, for one end of an AF_UNIX socketpair whose other end a trio
task on the engine's loop pumps to and from the link (:mod:`wizsock.facade.pumps`).
Everything that works on a descriptor (blocking and non-blocking I/O, timeouts,
``makefile``, select/poll/epoll, asyncio, trio, ``ssl``) then works natively;
the methods that describe the connection (``getpeername``, ``getsockname``,
``getsockopt(SO_ERROR)``, ...) are answered from what the module said.

Half-close: ``shutdown(SHUT_WR)`` behaves as the kernel's on this side (later
sends raise ``BrokenPipeError``, receiving goes on until the peer closes), but the
module has no half-close, so the peer sees the end of the stream only when the
socket is closed (AT+CIPCLOSE).  ``SHUT_RDWR`` closes the link.

Sockets that stay on the kernel: AF_UNIX (anything not AF_INET), sockets built
from ``fileno=`` (``accept``/``socketpair``/``dup`` of kernel sockets), sockets
bound to a loopback address, connections to a loopback port that a kernel
socket of this process listens on (paho-mqtt's wake-up pair), whatever the
routing policy keeps off the module, and everything created in a
wizsock-internal context (:mod:`wizsock._orig`).
"""
from __future__ import annotations

import collections
import errno
import logging
import os
import random
import socket as _stdsocket
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, Optional, Union, overload

import trio

from wizsock import _orig
from wizsock.errors import LinkLimitError as _LinkLimitError
from wizsock.facade import adoption
from wizsock.facade.addrinfo import AddrInfo as AddrInfo
from wizsock.facade.addrinfo import getaddrinfo as getaddrinfo
from wizsock.facade.addrinfo import getaddrinfo_with as getaddrinfo_with
from wizsock.facade.conn import AcceptQueue, Conn, Link
from wizsock.facade.conn import Address as Address
from wizsock.facade.dns_cache import clear_dns_cache as clear_dns_cache
from wizsock.facade.names import LOCAL_NAMES as LOCAL_NAMES
from wizsock.facade.names import host_str as host_str
from wizsock.facade.names import ipv4_literal as ipv4_literal
from wizsock.facade.names import is_ipv6_literal as is_ipv6_literal
from wizsock.facade.opening import LINK_WAIT as LINK_WAIT
from wizsock.facade.opening import link_wait, open_within, reserve
from wizsock.facade.pair import ADDR_LEN, new_pair, pack_addr, unpack_addr
from wizsock.facade.pair import DGRAM_PAIR_BUFFER as DGRAM_PAIR_BUFFER
from wizsock.facade.pair import PAIR_BUFFER as PAIR_BUFFER
from wizsock.facade.pumps import close_link, pump_dgram, pump_listener, pump_stream
from wizsock.facade.registry import Handle, current_handle, default_handle
from wizsock.facade.registry import get_module as get_module
from wizsock.facade.registry import set_module as set_module
from wizsock.facade.relay import relay_dgram, relay_listener, relay_spawn, relay_stream
from wizsock.facade.resolver import gethostbyname as gethostbyname
from wizsock.facade.resolver import gethostbyname_ex as gethostbyname_ex
from wizsock.facade.resolver import resolve_name as resolve_name
from wizsock.facade.routing import RoutePolicy as RoutePolicy
from wizsock.facade.routing import is_loopback, kernel_listening, note_kernel_listener, route_to_module
from wizsock.facade.routing import set_routing_policy as set_routing_policy

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import ExceptionGroup

if TYPE_CHECKING:
    from typing_extensions import Buffer, Self   # collections.abc.Buffer / typing.Self from 3.12 / 3.11

    from wizsock.ssl import ModuleSSLContext

log = logging.getLogger("wizsock.socket")

__all__ = [
    "socket", "SocketType", "getaddrinfo", "gethostbyname", "gethostbyname_ex",
    "create_connection", "set_module", "get_module", "set_routing_policy",
    "clear_dns_cache",
]

AF_INET = _stdsocket.AF_INET
AF_INET6 = _stdsocket.AF_INET6
SOCK_STREAM = _stdsocket.SOCK_STREAM
SOCK_DGRAM = _stdsocket.SOCK_DGRAM
SOL_SOCKET = _stdsocket.SOL_SOCKET
IPPROTO_TCP = _stdsocket.IPPROTO_TCP

_KSocket = _orig.socket
# socket.create_connection's "no timeout given" sentinel (typeshed does not declare it)
_DEFAULT_TIMEOUT: Any = getattr(_stdsocket, "_GLOBAL_DEFAULT_TIMEOUT")


def create_connection(address: tuple[Optional[str], Union[bytes, str, int, None]],
                      timeout: Optional[float] = _DEFAULT_TIMEOUT,
                      source_address: Optional[Any] = None, *,
                      all_errors: bool = False) -> _stdsocket.socket:
    """``socket.create_connection`` over the facade (stdlib semantics)."""
    if _orig.is_internal():
        if all_errors:
            return _orig.create_connection(address, timeout, source_address, all_errors=True)
        # without the keyword: Python 3.10's create_connection has no all_errors
        return _orig.create_connection(address, timeout, source_address)
    host, port = address
    exceptions: list[OSError] = []
    for res in getaddrinfo(host, port, 0, SOCK_STREAM):
        af, socktype, proto, _canon, sa = res
        sock = None
        try:
            sock = socket(af, socktype, proto)
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sa)
            exceptions.clear()
            return sock
        except OSError as exc:
            if not all_errors:
                exceptions.clear()
            exceptions.append(exc)
            if sock is not None:
                sock.close()
    if exceptions:
        try:
            if not all_errors:
                raise exceptions[0]
            raise ExceptionGroup("create_connection failed", exceptions)
        finally:
            exceptions.clear()
    raise OSError("getaddrinfo returns an empty list")


# --------------------------------------------------------------------------------------
# The socket


def _check_port(port: object, what: str) -> None:
    if not isinstance(port, int):
        raise TypeError(f"'{type(port).__name__}' object cannot be interpreted as an integer")
    if not 0 <= port <= 65535:
        raise OverflowError(f"{what}(): port must be 0-65535.")

def _address(address: object, what: str) -> Address:
    if not isinstance(address, tuple) or len(address) != 2:
        raise TypeError(f"{what}(): AF_INET address must be tuple, not {type(address).__name__}")
    host, port = address
    _check_port(port, what)
    return host_str(host), port


_TYPE_FLAGS = getattr(_stdsocket, "SOCK_NONBLOCK", 0) | getattr(_stdsocket, "SOCK_CLOEXEC", 0)


class socket(_KSocket):
    """``socket.socket``, with AF_INET connections carried by the WizFi360.

    An AF_INET socket (outside the internal context, not built from ``fileno=``) is,
    from its creation, one end of an AF_UNIX pair labelled AF_INET; the descriptor the
    program sees never changes.  What ``connect``/``sendto``/``bind``/``listen`` decide
    only chooses who serves the other end: a pump to a module link, or a relay to a
    kernel socket (loopback, routing policy)."""

    # set by wizsock.ssl.ModuleSSLContext.wrap_socket: the module does the TLS
    _wiz_tls: Optional[ModuleSSLContext] = None
    _wiz_tls_hostname: Optional[str] = None

    def __init__(self, family: Union[_stdsocket.AddressFamily, int] = -1,
                 type: Union[_stdsocket.SocketKind, int] = -1, proto: int = -1,
                 fileno: Optional[int] = None) -> None:
        internal = _orig.is_internal() and not adoption.force_pair()
        if family == AF_INET6 and fileno is None and not internal:
            # the module has no IPv6: refuse like a host whose kernel has none
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        self._wiz: Optional[Conn] = None            # once the other end is served
        self._wiz_handle: Optional[Handle] = None         # the module (None: the default at connect time)
        self._wiz_bound: Optional[Address] = None          # a bind() kept for the module (non-loopback)
        self._wiz_server: Optional[tuple[Conn, AcceptQueue]] = None   # of a listening socket
        self._wiz_peer: Optional[_stdsocket.socket] = None  # the other end of our pair, until a pump takes it
        self._wiz_ksock: Optional[_stdsocket.socket] = None  # a kernel socket bound before routing (loopback bind)
        self._wiz_opts: list[tuple[Any, ...]] = []         # setsockopt calls, replayed on a relay's kernel socket
        fam = AF_INET if family == -1 else family
        typ = SOCK_STREAM if type == -1 else type
        base = typ & ~_TYPE_FLAGS
        if fileno is None and not internal and fam == AF_INET and base in (SOCK_STREAM, SOCK_DGRAM):
            mine, theirs = new_pair(SOCK_STREAM if base == SOCK_STREAM else _stdsocket.SOCK_SEQPACKET)
            try:
                super().__init__(AF_INET, base, 0 if proto == -1 else proto, mine.detach())
            except BaseException:
                theirs.close()
                raise
            self._wiz_peer = theirs
            self._wiz_kernel = False
            if typ & getattr(_stdsocket, "SOCK_NONBLOCK", 0):
                self.setblocking(False)
        else:
            super().__init__(family, type, proto, fileno)
            self._wiz_kernel = True
        src = adoption.take_source(fileno)
        if src is not None:
            self._adopt_state(src, take=True)

    # -- for wizsock.ssl and wizsock.trio (not part of the stdlib's socket API) --------

    @property
    def wiz_kernel_routed(self) -> bool:
        """The kernel carries it (loopback, the internal context, ``fileno=``, other
        families): the module and its TLS play no part."""
        return self._wiz_kernel

    @property
    def wiz_connected(self) -> bool:
        """It is connected (or sending datagrams) through a module link."""
        return self._wiz is not None

    @property
    def wiz_listening(self) -> bool:
        """It listens on the module's server (AT+CIPSERVER)."""
        return self._wiz_server is not None

    def wiz_use_module(self, handle: Handle) -> None:
        """Route it through this module rather than the default one (set before connect)."""
        self._wiz_handle = handle

    def wiz_use_tls(self, context: ModuleSSLContext, server_hostname: Optional[str]) -> None:
        """Its connect opens the module's SSL link with ``context``'s credentials."""
        self._wiz_tls = context
        self._wiz_tls_hostname = server_hostname

    def _adopt_state(self, old: object, take: bool = False) -> None:
        """Carry the routing state of ``old`` over (same descriptor).  ``take`` (ssl
        wrapping, where ``old`` is detached) also hands over what ``old`` owns."""
        if isinstance(old, socket):
            self._wiz = old._wiz
            self._wiz_handle = old._wiz_handle
            self._wiz_bound = old._wiz_bound
            self._wiz_server = old._wiz_server
            self._wiz_kernel = old._wiz_kernel
            self._wiz_tls = old._wiz_tls
            self._wiz_tls_hostname = old._wiz_tls_hostname
            self._wiz_opts = list(old._wiz_opts)
            if take:
                self._wiz_peer, self._wiz_ksock = old._wiz_give_up_pair()

    def _wiz_give_up_pair(self) -> tuple[Optional[_stdsocket.socket], Optional[_stdsocket.socket]]:
        """Hand what this (detached) socket owns to the one adopting its state."""
        owned = (self._wiz_peer, self._wiz_ksock)
        self._wiz_peer = self._wiz_ksock = None
        return owned

    # -- routing ------------------------------------------------------------------------

    @property
    def _wiz_routed(self) -> bool:
        return self._wiz is not None or self._wiz_server is not None

    def _wiz_h(self) -> Handle:
        return self._wiz_handle or current_handle()

    def _wiz_attach(self, conn: Conn) -> _stdsocket.socket:
        """The other end of our pair, for the pump that serves ``conn`` from now on."""
        peer = self._wiz_peer
        if peer is None or self.fileno() < 0:
            raise OSError(errno.EBADF, "Bad file descriptor")
        self._wiz_peer = None
        conn.attach_user(self.fileno())
        self._wiz = conn
        return peer

    def _wiz_prefill(self) -> int:
        """Fill the pump's receive queue, so that our end turns writable only when the
        pump drains it (a non-blocking connect completing, for asyncio/trio/selectors)."""
        junk = 0
        block = b"\0" * 1024
        try:
            while True:
                junk += _KSocket.send(self, block, _stdsocket.MSG_DONTWAIT)
        except BlockingIOError:
            pass
        return junk

    def _wiz_resolve(self, host: str, handle: Optional[Handle]) -> str:
        ip = ipv4_literal(host)
        if ip is not None:
            return ip
        if is_ipv6_literal(host):
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        return resolve_name(host, handle)

    def _wiz_kernel_socket(self) -> _stdsocket.socket:
        """The kernel socket a relay serves: the one bound earlier, or a new one with the
        options set so far."""
        ks = self._wiz_ksock
        if ks is not None:
            self._wiz_ksock = None
            return ks
        ks = _orig.socket(AF_INET, self.type, self.proto)
        for args in self._wiz_opts:
            try:
                _KSocket.setsockopt(ks, *args)
            except OSError:
                pass
        return ks

    # -- connect ------------------------------------------------------------------------

    def connect(self, address: Any, /) -> None:
        self._wiz_connect(address, False)

    def connect_ex(self, address: Any, /) -> int:
        return self._wiz_connect(address, True)

    def _wiz_connect(self, address: Any, ex: bool) -> int:
        """connect (``ex`` False: raises, else 0) or connect_ex (``ex``: an errno)."""
        if self._wiz_kernel:
            if ex:
                return _KSocket.connect_ex(self, address)
            _KSocket.connect(self, address)
            return 0
        conn = self._wiz
        if conn is not None:
            if self.type == SOCK_DGRAM:
                return self._wiz_udp_connect(address, ex)
            if conn.state == "connecting":
                err = OSError(errno.EALREADY, os.strerror(errno.EALREADY))
            elif conn.state == "connected":
                err = OSError(errno.EISCONN, os.strerror(errno.EISCONN))
            else:
                err = conn.error or OSError(errno.EBADFD, "connection closed")
            if ex:
                return err.errno or errno.EIO
            raise err
        if self._wiz_server is not None:
            if ex:
                return errno.EISCONN
            raise OSError(errno.EISCONN, os.strerror(errno.EISCONN))
        host, port = _address(address, "connect")
        try:
            ip = ipv4_literal(host)
            if self._wiz_ksock is not None or (ip is not None and is_loopback(ip) and kernel_listening(port)):
                handle = None      # bound to loopback, or a listener of this very process
                if ip is None:     # a name ("localhost"), for the kernel socket to connect to
                    ip = self._wiz_resolve(host, self._wiz_handle)
            else:
                handle = self._wiz_h()
                if ip is None:
                    ip = self._wiz_resolve(host, handle)
                if not route_to_module(ip, port, self.type, handle):
                    handle = None
            if handle is None:
                return self._wiz_relay_connect((ip, port), ex)
            if self.type == SOCK_DGRAM:
                return self._wiz_udp_connect((ip, port), ex)
            return self._wiz_tcp_connect(handle, ip, port, ex)
        except OSError as e:
            if ex and not isinstance(e, _stdsocket.gaierror):
                return e.errno or errno.EIO
            raise

    def _wiz_relay_connect(self, addr: Address, ex: bool) -> int:
        """A connection kept on the host's kernel, relayed to our end of the pair."""
        ks = self._wiz_kernel_socket()
        kind = "UDP" if self.type == SOCK_DGRAM else "TCP"
        conn = Conn(None, kind, addr, relay=ks)
        try:
            if kind == "UDP":
                _KSocket.connect(ks, addr)
                conn.udp_connect(addr)
            else:
                timeout = self.gettimeout()
                if timeout == 0.0:
                    ks.setblocking(False)
                    err = ks.connect_ex(addr)
                    if err not in (0, errno.EINPROGRESS):
                        raise OSError(err, os.strerror(err))
                    junk = self._wiz_prefill()
                    peer = self._wiz_attach(conn)
                    relay_spawn(relay_stream, conn, peer, ks, junk)
                    if ex:
                        return errno.EINPROGRESS
                    raise BlockingIOError(errno.EINPROGRESS, "Operation now in progress")
                ks.settimeout(timeout)
                _KSocket.connect(ks, addr)
        except BaseException:
            if conn.user_fd < 0:
                ks.close()
            raise
        conn.connected(local=ks.getsockname())
        peer = self._wiz_attach(conn)
        fn = relay_dgram if kind == "UDP" else relay_stream
        relay_spawn(fn, conn, peer, ks)
        return 0

    def _wiz_open_fn(self, handle: Handle, ip: str, port: int) -> Callable[[], Awaitable[Link]]:
        aio = handle.aio
        tls = self._wiz_tls
        if tls is not None:
            return tls.link_opener(aio, ip, port, self._wiz_tls_hostname)

        async def open_tcp() -> Link:
            return await aio.net.open_tcp(ip, port)
        return open_tcp

    def _wiz_tcp_connect(self, handle: Handle, ip: str, port: int, ex: bool) -> int:
        timeout = self.gettimeout()
        kind = "SSL" if self._wiz_tls else "TCP"
        conn = Conn(handle, kind, (ip, port))
        open_fn = self._wiz_open_fn(handle, ip, port)
        aio = handle.aio
        if timeout == 0.0:
            # non-blocking: pre-fill the pair so that our end turns writable only when
            # the pump has the link up (asyncio, trio, selectors); the wait for a free
            # link happens there too
            junk = self._wiz_prefill()
            peer = self._wiz_attach(conn)

            async def open_nonblocking() -> Link:
                reservation = await reserve(aio, kind, link_wait(None))
                with reservation:
                    return await open_fn()
            handle.spawn(pump_stream, conn, peer, open_nonblocking, junk)
            if ex:
                return errno.EINPROGRESS
            raise BlockingIOError(errno.EINPROGRESS, "Operation now in progress")

        box: dict[str, Any] = {}

        async def open_blocking() -> Link:
            return await open_within(open_fn, timeout, box, aio, kind)

        try:
            link = handle.call(open_blocking)
        except BaseException:
            # interrupted (KeyboardInterrupt...): whoever finishes last closes the link
            box["abandoned"] = True
            if "link" in box:
                handle.spawn(close_link, box["link"])
            raise
        self._wiz_start(handle, conn, link, pump_stream)
        return 0

    # -- UDP ------------------------------------------------------------------------------

    def _wiz_udp_open(self, ip: str, port: int, connected: bool) -> Conn:
        handle = self._wiz_h()
        aio = handle.aio
        local_port = self._wiz_bound[1] if self._wiz_bound else None

        async def open_udp() -> Link:
            kw = {"mode": 0 if connected else 2}
            if local_port:
                kw["local_port"] = local_port
            box: dict[str, Any] = {}
            return await open_within(lambda: aio.net.open_udp(ip, port, **kw), None, box, aio, "UDP")

        link = handle.call(open_udp)
        conn = Conn(handle, "UDP", (ip, port))
        self._wiz_start(handle, conn, link, pump_dgram)
        return conn

    def _wiz_start(self, handle: Handle, conn: Conn, link: Link,
                   pump: Callable[[Conn, _stdsocket.socket], Awaitable[None]]) -> None:
        """``conn`` is up on ``link``: hand our pair's other end to its pump."""
        conn.connected(link)
        try:
            peer = self._wiz_attach(conn)
        except BaseException:
            handle.spawn(close_link, link)
            raise
        handle.spawn(pump, conn, peer)

    def _wiz_udp_connect(self, address: Any, ex: bool) -> int:
        host, port = _address(address, "connect")
        conn = self._wiz
        if conn is not None and conn.relay is not None:
            ip = ipv4_literal(host) or self._wiz_resolve(host, self._wiz_h())
            _KSocket.connect(conn.relay, (ip, port))
            conn.udp_connect((ip, port))
            return 0
        ip = self._wiz_resolve(host, self._wiz_h())
        if conn is None:
            conn = self._wiz_udp_open(ip, port, True)
        conn.udp_connect((ip, port))   # re-connecting a datagram socket changes its peer
        return 0

    def _wiz_udp_dest(self, address: Any) -> Address:
        host, port = _address(address, "sendto")
        ip = ipv4_literal(host)
        if ip is not None:
            return ip, port
        return self._wiz_resolve(host, self._wiz_h()), port

    def _wiz_udp_relay(self) -> Conn:
        """A datagram socket kept on the kernel (loopback bind or destination)."""
        ks = self._wiz_kernel_socket()
        conn = Conn(None, "UDP", None, relay=ks)
        try:
            if ks.getsockname()[1] == 0:
                ks.bind(("0.0.0.0", 0))
            conn.connected(local=ks.getsockname())
            peer = self._wiz_attach(conn)
        except BaseException:
            ks.close()
            raise
        relay_spawn(relay_dgram, conn, peer, ks)
        return conn

    @overload
    def sendto(self, data: Buffer, address: Any, /) -> int: ...
    @overload
    def sendto(self, data: Buffer, flags: int, address: Any, /) -> int: ...

    def sendto(self, data: Buffer, flags_or_addr: Any, addr: Any = None, /) -> int:
        flags: int
        if addr is None:
            flags, addr = 0, flags_or_addr
        else:
            flags = flags_or_addr
        if self._wiz_kernel:
            return _KSocket.sendto(self, data, flags, addr)
        if self.type != SOCK_DGRAM:
            code = errno.EISCONN if self._wiz is not None else errno.ENOTCONN
            raise OSError(code, os.strerror(code))
        if self._wiz is None:
            host, port = _address(addr, "sendto")
            ip = ipv4_literal(host)
            if self._wiz_ksock is not None or (ip is not None and is_loopback(ip) and kernel_listening(port)):
                self._wiz_udp_relay()
            else:
                handle = self._wiz_h()
                if ip is None:
                    ip = self._wiz_resolve(host, handle)
                if route_to_module(ip, port, SOCK_DGRAM, handle):
                    self._wiz_udp_open(ip, port, False)
                else:
                    self._wiz_udp_relay()
            dest: Address = (ip, port) if ip is not None else self._wiz_udp_dest(addr)
        else:
            dest = self._wiz_udp_dest(addr)
        payload = memoryview(data).tobytes()
        _KSocket.send(self, pack_addr(dest) + payload, flags)
        return len(payload)

    # the data methods stay one attribute test away from the C methods for TCP
    def send(self, data: Buffer, flags: int = 0, /) -> int:
        w = self._wiz
        if w is not None and w.kind == "UDP":
            peer = getattr(w, "udp_peer", None)
            if peer is None:
                raise OSError(errno.EDESTADDRREQ, os.strerror(errno.EDESTADDRREQ))
            payload = memoryview(data).tobytes()
            _KSocket.send(self, pack_addr(peer) + payload, flags)
            return len(payload)
        if w is None and not self._wiz_kernel:
            self._wiz_not_connected()
        return _KSocket.send(self, data, flags)

    def sendall(self, data: Buffer, flags: int = 0, /) -> None:
        w = self._wiz
        if w is not None and w.kind == "UDP":
            self.send(data, flags)
            return None
        if w is None and not self._wiz_kernel:
            self._wiz_not_connected()
        return _KSocket.sendall(self, data, flags)

    def _wiz_not_connected(self) -> NoReturn:
        # what the kernel answers for a socket that was never connected
        code = errno.EDESTADDRREQ if self.type == SOCK_DGRAM else errno.EPIPE
        raise OSError(code, os.strerror(code))

    def recvfrom(self, bufsize: int, flags: int = 0, /) -> tuple[bytes, Any]:
        w = self._wiz
        if w is not None and w.kind == "UDP":
            frame = _KSocket.recv(self, bufsize + ADDR_LEN, flags)
            return frame[ADDR_LEN:], unpack_addr(frame)
        if w is None and not self._wiz_kernel and self.type == SOCK_STREAM:
            raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))
        if self._wiz_kernel:
            return _KSocket.recvfrom(self, bufsize, flags)
        return _KSocket.recv(self, bufsize, flags), None   # a TCP peer's address is not reported

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        w = self._wiz
        if w is not None and w.kind == "UDP":
            return self.recvfrom(bufsize, flags)[0]
        if w is None and not self._wiz_kernel and self.type == SOCK_STREAM:
            raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))
        return _KSocket.recv(self, bufsize, flags)

    def recvfrom_into(self, buffer: Buffer, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        w = self._wiz
        if w is not None and w.kind == "UDP":
            view = memoryview(buffer).cast("B")
            n = nbytes or len(view)
            data, addr = self.recvfrom(n, flags)
            view[:len(data)] = data
            return len(data), addr
        if self._wiz_kernel:
            return _KSocket.recvfrom_into(self, buffer, nbytes, flags)
        return self.recv_into(buffer, nbytes, flags), None

    def recv_into(self, buffer: Buffer, nbytes: int = 0, flags: int = 0) -> int:
        w = self._wiz
        if w is not None and w.kind == "UDP":
            return self.recvfrom_into(buffer, nbytes, flags)[0]
        if w is None and not self._wiz_kernel and self.type == SOCK_STREAM:
            raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))
        return _KSocket.recv_into(self, buffer, nbytes, flags)

    # -- servers --------------------------------------------------------------------------

    def bind(self, address: Any, /) -> None:
        if self._wiz_kernel:
            return _KSocket.bind(self, address)
        host, port = _address(address, "bind")
        ip = ipv4_literal(host) if host else "0.0.0.0"
        if ip is None:
            ip = gethostbyname(host)
        if self._wiz_bound is not None or self._wiz is not None or self._wiz_ksock is not None \
                or self._wiz_server is not None:
            raise OSError(errno.EINVAL, "Invalid argument")
        if is_loopback(ip) or not (self._wiz_handle or default_handle()):
            # host-local: served by a kernel socket (paho's wake-up pair, local servers)
            ks = self._wiz_kernel_socket()
            try:
                ks.bind((ip, port))
            except BaseException:
                ks.close()
                raise
            self._wiz_ksock = ks
            if self.type == SOCK_DGRAM:
                self._wiz_udp_relay()   # a datagram socket receives from its bind on
            return None
        if self.type == SOCK_DGRAM:
            # a datagram socket receives from its bind on: open the module's UDP link now
            # (mode 2: any sender)
            self._wiz_bound = (ip, port or random.randint(49152, 65535))
            self._wiz_udp_open("0.0.0.0", 0, False)
            return None
        self._wiz_bound = (ip, port)
        return None

    def listen(self, backlog: int = 128, /) -> None:
        if self._wiz_kernel:
            _KSocket.listen(self, backlog)
            note_kernel_listener(self)
            return None
        if self._wiz_server is not None:
            return None
        if self.type != SOCK_STREAM or self._wiz is not None:
            raise OSError(errno.EOPNOTSUPP if self.type != SOCK_STREAM else errno.EINVAL,
                          "Operation not supported" if self.type != SOCK_STREAM else "Invalid argument")
        queue: AcceptQueue = collections.deque()
        if self._wiz_bound is None:
            # bound to loopback, or never bound (an ephemeral port, as the kernel picks):
            # a kernel listener whose connections are accepted as plain kernel sockets
            ks = self._wiz_kernel_socket()
            try:
                ks.listen(backlog)
            except BaseException:
                ks.close()
                raise
            conn = Conn(None, "SERVER", None, relay=ks)
            conn.listening(ks.getsockname())
            peer = self._wiz_attach(conn)
            self._wiz, self._wiz_server = None, (conn, queue)
            note_kernel_listener(self)
            relay_spawn(relay_listener, conn, peer, ks, queue)
            return None
        handle = self._wiz_h()
        aio = handle.aio
        port = self._wiz_bound[1]
        if port == 0:
            raise OSError(errno.EADDRNOTAVAIL, "the module's server needs an explicit port (bind to a port, not 0)")

        async def listen() -> object:
            return await aio.net.listen(port, max(1, min(int(backlog or 1), 5)))

        server = handle.call(listen)
        conn = Conn(handle, "SERVER", None)
        conn.listening((self._wiz_bound[0], port))
        peer = self._wiz_attach(conn)
        self._wiz, self._wiz_server = None, (conn, queue)
        handle.spawn(pump_listener, conn, peer, server, queue)
        return None

    def accept(self) -> tuple[_stdsocket.socket, Any]:
        if self._wiz_server is None:
            if self._wiz_kernel:
                return super().accept()
            raise OSError(errno.EINVAL, "Invalid argument")
        conn, queue = self._wiz_server
        if conn.state == "failed" and not queue:
            raise conn.error or OSError(errno.EINVAL, "Invalid argument")   # fail() set it
        data = _KSocket.recv(self, 1)   # honours timeout / non-blocking mode natively
        if not data:
            raise conn.error or OSError(errno.EINVAL, "Invalid argument")
        item = queue.popleft()
        if conn.relay is not None:
            fd, addr = item
            new = socket(AF_INET, SOCK_STREAM, 0, fileno=fd)   # a plain kernel socket
            if _stdsocket.getdefaulttimeout() is None and self.gettimeout():
                new.setblocking(True)
            return new, addr
        link = item
        handle = conn.module
        assert handle is not None, "a module server's connection has its module"
        with adoption.paired():
            new = socket(AF_INET, SOCK_STREAM)
        new.wiz_use_module(handle)
        # the module did not say who called (a link already gone when asked): an address
        # all the same, as callers of accept() unpack and print it
        remote = tuple(link.remote) if link.remote else ("0.0.0.0", 0)
        c = Conn(handle, "TCP", remote, local=conn.local)
        new._wiz_start(handle, c, link, pump_stream)
        if _stdsocket.getdefaulttimeout() is None and self.gettimeout():
            new.setblocking(True)
        return new, c.remote

    # -- describing the connection ------------------------------------------------------

    def getpeername(self) -> Any:
        if self._wiz_kernel:
            return _KSocket.getpeername(self)
        conn = self._wiz
        if conn is None:
            raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))
        if conn.kind == "UDP":
            peer = getattr(conn, "udp_peer", None)
            if peer is None:
                raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))
            return peer
        if conn.state != "connected" and conn.state != "closed":
            raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))
        return conn.remote

    def getsockname(self) -> Any:
        if self._wiz_kernel:
            return _KSocket.getsockname(self)
        if self._wiz_server is not None:
            return self._wiz_server[0].local
        conn = self._wiz
        if conn is None:
            if self._wiz_ksock is not None:
                return self._wiz_ksock.getsockname()
            return self._wiz_bound or ("0.0.0.0", 0)
        if conn.relay is not None:
            try:
                return conn.relay.getsockname()
            except OSError:
                pass
        local = conn.local or self._wiz_bound
        if local:
            return tuple(local)
        return ("0.0.0.0", 0)

    @overload
    def getsockopt(self, level: int, optname: int, /) -> int: ...
    @overload
    def getsockopt(self, level: int, optname: int, buflen: int, /) -> bytes: ...

    def getsockopt(self, level: int, optname: int, buflen: Optional[int] = None, /) -> Union[int, bytes]:
        if self._wiz_kernel:
            if buflen is None:
                return _KSocket.getsockopt(self, level, optname)
            return _KSocket.getsockopt(self, level, optname, buflen)
        if buflen is None and level == SOL_SOCKET:
            answer = self._wiz_socket_option(optname)
            if answer is not None:
                return answer
        ks = self._wiz_served_by()
        if ks is not None:
            return ks.getsockopt(level, optname) if buflen is None else ks.getsockopt(level, optname, buflen)
        if buflen is None and level == IPPROTO_TCP:
            return 1 if optname == _stdsocket.TCP_NODELAY else 0
        try:
            if buflen is None:
                return _KSocket.getsockopt(self, level, optname)
            return _KSocket.getsockopt(self, level, optname, buflen)
        except OSError:
            if buflen is None:
                return 0
            raise

    def _wiz_socket_option(self, optname: int) -> Optional[int]:
        """The SOL_SOCKET options that describe the connection, answered from what the
        module said (None: not one of them)."""
        if optname == _stdsocket.SO_ERROR:
            return self._wiz_so_error()
        if optname == _stdsocket.SO_TYPE:
            return self.type
        if optname == getattr(_stdsocket, "SO_DOMAIN", -1):
            return AF_INET
        if optname == getattr(_stdsocket, "SO_PROTOCOL", -1):
            return self.proto or (_stdsocket.IPPROTO_TCP if self.type == SOCK_STREAM else _stdsocket.IPPROTO_UDP)
        if optname == _stdsocket.SO_ACCEPTCONN:
            return 1 if self._wiz_server is not None else 0
        return None

    def _wiz_so_error(self) -> int:
        """SO_ERROR: the connection's pending error (once), as its errno."""
        error = self._wiz.take_so_error() if self._wiz is not None else None
        if error is None:
            return 0
        if isinstance(error, _LinkLimitError):
            # the errno alone would lose the point (the module's five-link limit):
            # asyncio and trio re-raise what this raises
            raise error
        return error.errno or errno.EIO

    def _wiz_served_by(self) -> Optional[_stdsocket.socket]:
        """The open kernel socket behind this one (a relay's, or bound before routing),
        which takes the socket options; None for a module link."""
        conn = self._wiz
        ks = conn.relay if conn is not None and conn.relay is not None else self._wiz_ksock
        return ks if ks is not None and ks.fileno() >= 0 else None

    @overload
    def setsockopt(self, level: int, optname: int, value: Union[int, Buffer], /) -> None: ...
    @overload
    def setsockopt(self, level: int, optname: int, value: None, optlen: int, /) -> None: ...

    def setsockopt(self, level: int, optname: int, value: Union[int, Buffer, None],
                   optlen: Optional[int] = None, /) -> None:
        args = (level, optname, value) if optlen is None else (level, optname, value, optlen)
        if self._wiz_kernel:
            return _KSocket.setsockopt(self, *args)
        ks = self._wiz_served_by()
        if ks is not None:
            return _KSocket.setsockopt(ks, *args)
        self._wiz_opts.append(args)
        # TCP/IP options mean nothing on the pair (the module has its own stack): never
        # raise; socket-level ones (buffer sizes) do apply to our end
        try:
            return _KSocket.setsockopt(self, *args)
        except OSError:
            return None

    def shutdown(self, how: int, /) -> None:
        conn = self._wiz
        if conn is not None:
            conn.shutdown(how)
        elif not self._wiz_kernel and self._wiz_server is None:
            raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))
        return _KSocket.shutdown(self, how)

    def _real_close(self, *args: Any) -> None:
        server = self._wiz_server
        conn = self._wiz
        leftovers = (self._wiz_peer, self._wiz_ksock)
        self._wiz_peer = self._wiz_ksock = None
        # the stdlib's close hook (socket.close, or the last makefile()'s close); typeshed omits it
        super()._real_close(*args)  # type: ignore[misc]
        for s in leftovers:
            if s is not None:
                s.close()
        if trio.lowlevel.in_trio_task():
            return
        if server is not None:
            # like the kernel, closing a listening socket frees its port at once: wait
            # (briefly) for AT+CIPSERVER=0 / the kernel listener's close, so the next
            # bind()/listen() finds the port free
            server[0].finished.wait(5)
        elif conn is not None and conn.relay is not None:
            conn.finished.wait(2)     # the relayed kernel socket (and its port) is closed

    def dup(self) -> Self:
        new = super().dup()
        new._adopt_state(self)
        return new

    def __getstate__(self) -> NoReturn:
        raise TypeError(f"cannot pickle {self.__class__.__name__!r} object")


SocketType = socket
