"""A drop-in ``socket.socket`` whose connections go over the WizFi360.

:class:`socket` is a real ``socket.socket`` subclass with a real descriptor.
It is a kernel socket until ``connect()`` (or ``sendto``/``listen``); a connection
routed to the module opens a link through the engine and swaps the descriptor,
with ``os.dup2``, for one end of an AF_UNIX socketpair whose other end a trio
task on the engine's loop pumps to and from the link (:mod:`wizsock._pump`).
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
import contextlib
import errno
import ipaddress
import logging
import math
import os
import random
import re
import socket as _stdsocket
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Optional, TypeVar, Union, overload

import trio

from wizsock import _orig, _pump
from wizsock.errors import LinkLimitError as _LinkLimitError

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

PAIR_BUFFER = 4096     # SO_SNDBUF asked for on both stream pair ends (the kernel doubles it)
DGRAM_PAIR_BUFFER = 256 * 1024   # datagram pairs: room for a whole 64 KiB datagram and its frame
_KSocket = _orig.socket
# socket.create_connection's "no timeout given" sentinel (typeshed does not declare it)
_DEFAULT_TIMEOUT: Any = getattr(_stdsocket, "_GLOBAL_DEFAULT_TIMEOUT")

_T = TypeVar("_T")
#: an IPv4 socket address
Address = _pump.Address
#: ``policy(ip, port, type) -> bool`` of :func:`set_routing_policy`
RoutePolicy = Callable[[str, int, int], bool]
#: one answer of :func:`getaddrinfo`, as typeshed types ``socket.getaddrinfo``'s
AddrInfo = Union[
    tuple[Literal[_stdsocket.AddressFamily.AF_INET], _stdsocket.SocketKind, int, str, tuple[str, int]],
    tuple[Literal[_stdsocket.AddressFamily.AF_INET6], _stdsocket.SocketKind, int, str,
          Union[tuple[str, int, int, int], tuple[int, bytes]]],
]

# --------------------------------------------------------------------------------------
# The module the facade drives


class _Handle:
    """How the facade drives one engine module (a blocking ``wizsock.Module``)."""

    def __init__(self, module: Any) -> None:
        # a wizsock.Module (or wizsock.trio's AsyncModule); typed with the engine
        self.module = module
        port = getattr(module, "port", None)
        if port is None:
            port = getattr(getattr(module, "engine", None), "port_url", "")
        # 127.0.0.0/8 through a real module is the module's own loopback, which serves
        # nothing: loopback stays on the host.  The emulator's network *is* the host's
        # loopback, so there it goes over the (emulated) module.
        self.loopback_on_module = str(port).startswith("wizemu:")

    @property
    def aio(self) -> Any:
        """The engine's AsyncModule (the module itself, or the blocking Module's ``aio``)."""
        m = self.module
        return getattr(m, "aio", m)

    def call(self, async_fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        """Run async_fn on the engine loop and wait for it (from a user thread)."""
        if not trio.lowlevel.in_trio_task():
            result: _T = self.module.run(async_fn, *args)
            return result
        # a blocking socket call made inside some other trio loop (trio code using the
        # patched socket module): trio.from_thread refuses to be called from there, so
        # wait from a helper thread; the caller blocks, as the stdlib call would.
        box: dict[str, Any] = {}

        def helper() -> None:
            try:
                box["value"] = self.module.run(async_fn, *args)
            except BaseException as exc:  # handed to the caller below
                box["error"] = exc
        t = threading.Thread(target=helper, name="wizsock-call", daemon=True)
        t.start()
        t.join()
        if "error" in box:
            raise box.pop("error")
        value: _T = box["value"]
        return value

    def spawn(self, async_fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        self.module.start_soon(async_fn, *args)


_state_lock = threading.Lock()
_default_handle: Optional[_Handle] = None
_route_policy: Optional[RoutePolicy] = None


def set_module(module: Any) -> None:
    """Make ``module`` (a blocking ``wizsock.Module``, or None) the one new sockets use."""
    global _default_handle
    with _state_lock:
        _default_handle = None if module is None else _Handle(module)
    clear_dns_cache()


def get_module() -> Any:
    """The module new sockets use (set by :func:`set_module` / ``wizsock.patch``), or None."""
    h = _default_handle
    return None if h is None else h.module


def _handle() -> _Handle:
    h = _default_handle
    if h is None:
        raise OSError(errno.ENETDOWN, "no WizFi360 module: call wizsock.patch(port) "
                      "or wizsock.socket.set_module(module) first")
    return h


def set_routing_policy(policy: Optional[RoutePolicy]) -> None:
    """``policy(ip, port, type) -> bool``: True sends the connection over the module,
    False keeps it on the host's kernel.  None restores the default: everything goes
    to the module except 127.0.0.0/8 with a real module (with the emulator,
    ``wizemu://``, loopback is its network) and ports a kernel socket of this process
    listens on."""
    global _route_policy
    _route_policy = policy


# Loopback ports a kernel socket of this process (created through this class) listens on.
_kernel_listeners: dict[int, weakref.ref[_stdsocket.socket]] = {}   # port -> the listening socket
_kl_lock = threading.Lock()


def _note_kernel_listener(sock: _stdsocket.socket) -> None:
    try:
        port = sock.getsockname()[1]
    except (OSError, TypeError, IndexError):
        return
    with _kl_lock:
        _kernel_listeners[port] = weakref.ref(sock)


def _kernel_listening(port: int) -> bool:
    with _kl_lock:
        ref = _kernel_listeners.get(port)
        sock = ref() if ref is not None else None
        if sock is None or sock.fileno() < 0:
            _kernel_listeners.pop(port, None)
            return False
        return True


def _is_loopback(ip: str) -> bool:
    return ip.startswith("127.")


def _route_to_module(ip: str, port: int, type_: int, handle: _Handle) -> bool:
    if _is_loopback(ip) and _kernel_listening(port):
        return False
    if _route_policy is not None:
        return bool(_route_policy(ip, port, type_))
    if _is_loopback(ip):
        return handle.loopback_on_module
    return True


# --------------------------------------------------------------------------------------
# Name resolution: stdlib semantics, resolved by the module (AT+CIPDOMAIN)

_DNS_TTL = 30.0
_dns_cache: dict[str, tuple[str, float]] = {}   # name -> (address, expiry on the monotonic clock)
_dns_lock = threading.Lock()
# one lookup per name at a time: the name's lock, while a caller holds it (weak: a
# process that resolves many names keeps no lock per name it ever looked up)
_dns_inflight: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
# The name helpers below are shared with wizsock.trio's resolver; they are not in
# __all__ (not part of the stdlib's socket API).
LOCAL_NAMES = {"localhost": "127.0.0.1", "localhost.localdomain": "127.0.0.1"}


def clear_dns_cache() -> None:
    """Forget the names the module resolved (they are kept for a few seconds)."""
    with _dns_lock:
        _dns_cache.clear()


def ipv4_literal(host: str) -> Optional[str]:
    """The dotted quad for an IPv4 literal (any inet_aton form), else None; no traffic."""
    try:
        return str(_orig.getaddrinfo(host, None, AF_INET, SOCK_STREAM, 0,    # AF_INET: (str, int)
                                     _stdsocket.AI_NUMERICHOST)[0][4][0])
    except (_stdsocket.gaierror, UnicodeError, ValueError):
        return None


def is_ipv6_literal(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host.split("%", 1)[0])
        return True
    except ValueError:
        return False


def host_str(host: object) -> str:
    if isinstance(host, (bytes, bytearray)):
        try:
            return bytes(host).decode("ascii")
        except UnicodeDecodeError:
            raise _stdsocket.gaierror(_stdsocket.EAI_NONAME, "Name or service not known") from None
    if isinstance(host, str):
        return host
    raise TypeError(f"getaddrinfo() argument 1 must be string or None, not {type(host).__name__}")


_NAME = re.compile(r"[A-Za-z0-9_-]{1,63}(?:\.[A-Za-z0-9_-]{1,63})*\.?")


def _module_name(name: str) -> str:
    """The ASCII (IDNA) form of a host name the module can look up, else gaierror.

    Whatever cannot be a DNS name (CR, LF, NUL, quotes, commas, spaces, empty or
    overlong labels, names the idna codec refuses) fails here as the stdlib's
    resolver fails, without AT traffic; AT+CIPDOMAIN takes at most 63 bytes.
    """
    try:
        ascii_name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        ascii_name = ""
    if not _NAME.fullmatch(ascii_name) or len(ascii_name) > 63:
        raise _stdsocket.gaierror(_stdsocket.EAI_NONAME, "Name or service not known")
    return ascii_name


def resolve_name(name: str, handle: Optional[_Handle] = None) -> str:
    """An IPv4 address for a host name, through the module (cached briefly)."""
    name = _module_name(name)
    key = name.lower().rstrip(".")
    if key in LOCAL_NAMES:
        return LOCAL_NAMES[key]
    now = time.monotonic()
    with _dns_lock:
        hit = _dns_cache.get(key)
        if hit and hit[1] > now:
            return hit[0]
        # one query per name at a time: concurrent callers wait for the first one
        name_lock = _dns_inflight.setdefault(key, threading.Lock())
    with name_lock:
        with _dns_lock:
            hit = _dns_cache.get(key)
            if hit and hit[1] > time.monotonic():
                return hit[0]
        return _query_name(name, key, handle)


def _query_name(name: str, key: str, handle: Optional[_Handle]) -> str:
    now = time.monotonic()
    h = handle or _handle()
    aio = h.aio

    async def lookup() -> object:
        return await aio.net.resolve(name)

    try:
        ip = h.call(lookup)
    except _stdsocket.gaierror:
        raise
    except TimeoutError as e:
        raise _stdsocket.gaierror(_stdsocket.EAI_AGAIN, "Temporary failure in name resolution") from e
    except ValueError:
        # the codec refused the name (it checks what _module_name may let through)
        raise _stdsocket.gaierror(_stdsocket.EAI_NONAME, "Name or service not known") from None
    except OSError as e:
        raise _stdsocket.gaierror(_stdsocket.EAI_FAIL, f"Non-recoverable failure in name resolution ({e})") from e
    ip = str(ip)
    with _dns_lock:
        # expired names go as new ones come: a gateway that resolves ever new names
        # (rotating CDN hosts) keeps only what one TTL resolved (issue 21)
        for old in [k for k, (_, expiry) in _dns_cache.items() if expiry <= now]:
            del _dns_cache[old]
        _dns_cache[key] = (ip, now + _DNS_TTL)
    return ip


def getaddrinfo(host: Union[bytes, str, None], port: Union[bytes, str, int, None], family: int = 0,
                type: int = 0, proto: int = 0, flags: int = 0) -> list[AddrInfo]:
    """``socket.getaddrinfo`` with names resolved by the module; IPv4 only, like a host
    without IPv6 (IPv6 literals still parse, creating an AF_INET6 socket then fails)."""
    if _orig.is_internal():
        return _orig.getaddrinfo(host, port, family, type, proto, flags)
    return getaddrinfo_with(host, port, family, type, proto, flags, resolve_name)


_SOCKTYPES: tuple[tuple[int, int, Optional[str]], ...] = ((SOCK_STREAM, _stdsocket.IPPROTO_TCP, "tcp"),
              (SOCK_DGRAM, _stdsocket.IPPROTO_UDP, "udp"),
              (_stdsocket.SOCK_RAW, 0, None))


def _service_answers(port: object, type: int, proto: int, flags: int) -> list[tuple[int, int, int]]:
    """The (socktype, proto, port) triples getaddrinfo gives for ``port`` (glibc's
    order and errors), built here: asking the host's getaddrinfo would apply its
    AI_ADDRCONFIG rule, which fails on a host whose only network is the module."""
    if isinstance(port, (bytes, bytearray)):
        port = bytes(port).decode("ascii")
    service: Optional[str] = None    # a service name, else the port is `number`
    if port is None:
        number = 0
    elif isinstance(port, int):
        number = port
    elif isinstance(port, str):
        if port.isdigit() or (port[:1] in "+-" and port[1:].isdigit()):
            number = int(port)
        elif flags & _stdsocket.AI_NUMERICSERV:
            raise _stdsocket.gaierror(_stdsocket.EAI_NONAME, "Name or service not known")
        else:
            number, service = 0, port
    else:
        raise OSError("Int or String expected")
    if not 0 <= number <= 65535:
        number &= 0xFFFF   # as glibc does with a numeric service
    out: list[tuple[int, int, int]] = []
    for st, pr, pname in _SOCKTYPES:
        if type and type != st:
            continue
        if proto and pr and proto != pr:
            continue
        if not type and (st == _stdsocket.SOCK_RAW and (service is not None or proto)):
            continue
        if not type and proto and not pr:
            continue
        p = pr if pr else proto
        if service is None:
            out.append((st, p, number))
            continue
        if pname is None:
            continue
        try:
            out.append((st, p, _stdsocket.getservbyname(service, pname)))
        except OSError:
            pass
    if not out:
        if type and type not in (SOCK_STREAM, SOCK_DGRAM, _stdsocket.SOCK_RAW):
            raise _stdsocket.gaierror(_stdsocket.EAI_SOCKTYPE, "ai_socktype not supported")
        if service is not None:
            raise _stdsocket.gaierror(_stdsocket.EAI_SERVICE, "Servname not supported for ai_socktype")
        raise _stdsocket.gaierror(_stdsocket.EAI_SOCKTYPE, "ai_socktype not supported")
    return out


def _ipv4_answers(ip: str, port: object, type: int, proto: int, flags: int,
                  canonname: str = "") -> list[AddrInfo]:
    canon = canonname if flags & _stdsocket.AI_CANONNAME else ""
    return [(_stdsocket.AddressFamily.AF_INET, _stdsocket.SocketKind(st), pr, canon if i == 0 else "", (ip, number))
            for i, (st, pr, number) in enumerate(_service_answers(port, type, proto, flags))]


def getaddrinfo_with(host: Union[bytes, str, None], port: Union[bytes, str, int, None], family: int,
                 type: int, proto: int, flags: int, resolve: Callable[[str], str]) -> list[AddrInfo]:
    """getaddrinfo with ``resolve(name) -> ip`` for names (literals never reach it).

    The answers are built here, never by the host's getaddrinfo with the caller's
    flags: AI_ADDRCONFIG (aiohttp always passes it) makes glibc refuse IPv4 answers on
    a host with no non-loopback IPv4 address, which is exactly a host whose only
    network is the module."""
    if host is None or host == "" or host == b"":
        if family not in (0, AF_INET, AF_INET6):
            raise _stdsocket.gaierror(_stdsocket.EAI_FAMILY, "ai_family not supported")
        if family == AF_INET6:
            return _orig.getaddrinfo(host, port, family, type, proto, flags & ~_stdsocket.AI_ADDRCONFIG)
        if host == "" or host == b"":
            raise _stdsocket.gaierror(_stdsocket.EAI_NONAME, "Name or service not known")
        wildcard = "0.0.0.0" if flags & _stdsocket.AI_PASSIVE else "127.0.0.1"
        return _ipv4_answers(wildcard, port, type, proto, flags & ~_stdsocket.AI_CANONNAME)
    if family not in (0, AF_INET, AF_INET6):
        raise _stdsocket.gaierror(_stdsocket.EAI_FAMILY, "ai_family not supported")
    name = host_str(host)
    if is_ipv6_literal(name):
        return _orig.getaddrinfo(name, port, family, type, proto,
                                 (flags & ~_stdsocket.AI_ADDRCONFIG) | _stdsocket.AI_NUMERICHOST)
    ip = ipv4_literal(name)
    if ip is None:
        if flags & _stdsocket.AI_NUMERICHOST:
            raise _stdsocket.gaierror(_stdsocket.EAI_NONAME, "Name or service not known")
        name = _module_name(name)  # gaierror for what cannot be a name (no AT traffic)
        if family == AF_INET6:
            raise _stdsocket.gaierror(_stdsocket.EAI_NODATA, "No address associated with hostname")
        # the service part first, so a bad port fails without AT traffic
        _service_answers(port, type, proto, flags)
        ip = resolve(name)
    elif family == AF_INET6:
        raise _stdsocket.gaierror(_stdsocket.EAI_ADDRFAMILY, "Address family for hostname not supported")
    return _ipv4_answers(ip, port, type, proto, flags, name)


def gethostbyname(hostname: str) -> str:
    """``socket.gethostbyname``, the name resolved by the module."""
    if _orig.is_internal():
        return _orig.gethostbyname(hostname)
    name = host_str(hostname)
    if name == "":
        return _orig.gethostbyname(name)
    ip = ipv4_literal(name)
    if ip is not None:
        return ip
    if is_ipv6_literal(name):
        raise _stdsocket.gaierror(_stdsocket.EAI_ADDRFAMILY, "Address family for hostname not supported")
    return resolve_name(name)


def gethostbyname_ex(hostname: str) -> tuple[str, list[str], list[str]]:
    """``socket.gethostbyname_ex``, the name resolved by the module (no aliases)."""
    if _orig.is_internal():
        return _orig.gethostbyname_ex(hostname)
    ip = gethostbyname(hostname)
    return (host_str(hostname), [], [ip])


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


#: how long a connect waits for one of the module's five links to be freed when the
#: socket itself sets no limit (blocking with no timeout, or non-blocking): a program
#: that holds every link and opens one more then fails in bounded time (see README)
LINK_WAIT = float(os.environ.get("WIZSOCK_LINK_WAIT", "30"))


def _link_wait(timeout: Optional[float]) -> float:
    """How long a connect waits for a free link: the socket's own timeout, or LINK_WAIT
    for a socket that has none (blocking without timeout, or non-blocking)."""
    if timeout is None or timeout == 0.0:
        return LINK_WAIT
    return timeout


async def _reserve(aio: Any, kind: str, wait: float) -> AbstractContextManager[object]:
    """A reserved link id (waiting FIFO for one, at most ``wait`` s) or LinkLimitError."""
    net = aio.net
    if not hasattr(net, "reserve_link"):
        return contextlib.nullcontext()
    reservation: AbstractContextManager[object]
    if not _pump.RECLAIM_IDLE:
        reservation = await net.reserve_link(kind, wait)
        return reservation
    async with trio.open_nursery() as nursery:
        # while this connect waits, idle connections may be reclaimed for it
        nursery.start_soon(_pump.reclaim_while_waiting, aio)
        try:
            reservation = await net.reserve_link(kind, wait)
            return reservation
        finally:
            nursery.cancel_scope.cancel()


async def _open_within(open_fn: Callable[[], Awaitable[_pump.Link]], timeout: Optional[float],
                       box: dict[str, Any], aio: Any = None, kind: str = "TCP") -> _pump.Link:
    """Open a link, giving up after ``timeout`` seconds (None: no limit).

    The wait for a free link is part of the connect and bounded by the same timeout
    (at most LINK_WAIT).  An AT command in flight is not cancelled by the engine; the
    open carries on in a task of its own, and a link that arrives after the caller
    gave up (timeout, or ``box["abandoned"]`` set by an interrupted caller) is closed.
    """
    deadline = trio.current_time() + (math.inf if timeout is None else timeout)
    reservation: AbstractContextManager[object] = contextlib.nullcontext()
    if aio is not None:
        reservation = await _reserve(aio, kind, _link_wait(timeout))
    done = trio.Event()

    async def opener() -> None:
        try:
            with reservation:
                box["link"] = await open_fn()
        except Exception as exc:
            box["error"] = exc
        finally:
            done.set()
            if box.get("abandoned") and "link" in box:
                await _pump.close_link(box["link"])

    try:
        trio.lowlevel.spawn_system_task(opener)
    except BaseException:
        reservation.__exit__(None, None, None)
        raise
    with trio.move_on_at(deadline):
        await done.wait()
    if not done.is_set():
        box["abandoned"] = True
        raise TimeoutError("timed out")
    if "error" in box:
        raise box["error"]
    link: _pump.Link = box["link"]
    return link


_ADOPT = threading.local()   # ssl.SSLSocket._create: the socket being wrapped; accept: force a pair

_TYPE_FLAGS = getattr(_stdsocket, "SOCK_NONBLOCK", 0) | getattr(_stdsocket, "SOCK_CLOEXEC", 0)


def _new_pair(pair_type: int) -> tuple[_stdsocket.socket, _stdsocket.socket]:
    """A fresh AF_UNIX pair with small stream buffers (so blocking and timeouts track
    the UART): (the user's end, the pump's end)."""
    mine, theirs = _orig.socketpair(_stdsocket.AF_UNIX, pair_type)
    size = PAIR_BUFFER if pair_type == SOCK_STREAM else DGRAM_PAIR_BUFFER
    for s in (mine, theirs):
        s.setsockopt(SOL_SOCKET, _stdsocket.SO_SNDBUF, size)
        s.setsockopt(SOL_SOCKET, _stdsocket.SO_RCVBUF, size)
    return mine, theirs


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
        internal = _orig.is_internal() and not getattr(_ADOPT, "pair", False)
        if family == AF_INET6 and fileno is None and not internal:
            # the module has no IPv6: refuse like a host whose kernel has none
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        self._wiz: Optional[_pump.Conn] = None            # once the other end is served
        self._wiz_handle: Optional[_Handle] = None         # the module (None: the default at connect time)
        self._wiz_bound: Optional[Address] = None          # a bind() kept for the module (non-loopback)
        self._wiz_server: Optional[tuple[_pump.Conn, _pump.AcceptQueue]] = None   # of a listening socket
        self._wiz_peer: Optional[_stdsocket.socket] = None  # the other end of our pair, until a pump takes it
        self._wiz_ksock: Optional[_stdsocket.socket] = None  # a kernel socket bound before routing (loopback bind)
        self._wiz_opts: list[tuple[Any, ...]] = []         # setsockopt calls, replayed on a relay's kernel socket
        fam = AF_INET if family == -1 else family
        typ = SOCK_STREAM if type == -1 else type
        base = typ & ~_TYPE_FLAGS
        if fileno is None and not internal and fam == AF_INET and base in (SOCK_STREAM, SOCK_DGRAM):
            mine, theirs = _new_pair(SOCK_STREAM if base == SOCK_STREAM else _stdsocket.SOCK_SEQPACKET)
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
        src = getattr(_ADOPT, "src", None)
        if src is not None and fileno is not None:
            _ADOPT.src = None
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

    def wiz_use_module(self, handle: _Handle) -> None:
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
                self._wiz_peer, old._wiz_peer = old._wiz_peer, None
                self._wiz_ksock, old._wiz_ksock = old._wiz_ksock, None

    # -- routing ------------------------------------------------------------------------

    @property
    def _wiz_routed(self) -> bool:
        return self._wiz is not None or self._wiz_server is not None

    def _wiz_h(self) -> _Handle:
        return self._wiz_handle or _handle()

    def _wiz_attach(self, conn: _pump.Conn) -> _stdsocket.socket:
        """The other end of our pair, for the pump that serves ``conn`` from now on."""
        peer = self._wiz_peer
        if peer is None or self.fileno() < 0:
            raise OSError(errno.EBADF, "Bad file descriptor")
        self._wiz_peer = None
        st = os.fstat(self.fileno())
        conn.user_id = (st.st_dev, st.st_ino)
        conn.user_fd = self.fileno()
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

    def _wiz_resolve(self, host: str, handle: Optional[_Handle]) -> str:
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
            if self._wiz_ksock is not None or (ip is not None and _is_loopback(ip) and _kernel_listening(port)):
                handle = None      # bound to loopback, or a listener of this very process
                if ip is None:     # a name ("localhost"), for the kernel socket to connect to
                    ip = self._wiz_resolve(host, self._wiz_handle)
            else:
                handle = self._wiz_h()
                if ip is None:
                    ip = self._wiz_resolve(host, handle)
                if not _route_to_module(ip, port, self.type, handle):
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
        conn = _pump.Conn(None, kind, addr)
        conn.relay = ks
        try:
            if kind == "UDP":
                _KSocket.connect(ks, addr)
                conn.udp_peer = addr
            else:
                timeout = self.gettimeout()
                if timeout == 0.0:
                    ks.setblocking(False)
                    err = ks.connect_ex(addr)
                    if err not in (0, errno.EINPROGRESS):
                        raise OSError(err, os.strerror(err))
                    junk = self._wiz_prefill()
                    peer = self._wiz_attach(conn)
                    _pump.relay_spawn(_pump.relay_stream, conn, peer, ks, junk)
                    if ex:
                        return errno.EINPROGRESS
                    raise BlockingIOError(errno.EINPROGRESS, "Operation now in progress")
                ks.settimeout(timeout)
                _KSocket.connect(ks, addr)
        except BaseException:
            if conn.user_fd < 0:
                ks.close()
            raise
        conn.state = "connected"
        conn.local = ks.getsockname()
        peer = self._wiz_attach(conn)
        fn = _pump.relay_dgram if kind == "UDP" else _pump.relay_stream
        _pump.relay_spawn(fn, conn, peer, ks)
        return 0

    def _wiz_open_fn(self, handle: _Handle, ip: str, port: int) -> Callable[[], Awaitable[_pump.Link]]:
        aio = handle.aio
        tls = self._wiz_tls
        if tls is not None:
            return tls.link_opener(aio, ip, port, self._wiz_tls_hostname)

        async def open_tcp() -> _pump.Link:
            return await aio.net.open_tcp(ip, port)
        return open_tcp

    def _wiz_tcp_connect(self, handle: _Handle, ip: str, port: int, ex: bool) -> int:
        timeout = self.gettimeout()
        kind = "SSL" if self._wiz_tls else "TCP"
        conn = _pump.Conn(handle, kind, (ip, port))
        open_fn = self._wiz_open_fn(handle, ip, port)
        aio = handle.aio
        if timeout == 0.0:
            # non-blocking: pre-fill the pair so that our end turns writable only when
            # the pump has the link up (asyncio, trio, selectors); the wait for a free
            # link happens there too
            junk = self._wiz_prefill()
            peer = self._wiz_attach(conn)

            async def open_nonblocking() -> _pump.Link:
                reservation = await _reserve(aio, kind, _link_wait(None))
                with reservation:
                    return await open_fn()
            handle.spawn(_pump.pump_stream, conn, peer, open_nonblocking, junk)
            if ex:
                return errno.EINPROGRESS
            raise BlockingIOError(errno.EINPROGRESS, "Operation now in progress")

        box: dict[str, Any] = {}

        async def open_blocking() -> _pump.Link:
            return await _open_within(open_fn, timeout, box, aio, kind)

        try:
            link = handle.call(open_blocking)
        except BaseException:
            # interrupted (KeyboardInterrupt...): whoever finishes last closes the link
            box["abandoned"] = True
            if "link" in box:
                handle.spawn(_pump.close_link, box["link"])
            raise
        self._wiz_start(handle, conn, link, _pump.pump_stream)
        return 0

    # -- UDP ------------------------------------------------------------------------------

    def _wiz_udp_open(self, ip: str, port: int, connected: bool) -> _pump.Conn:
        handle = self._wiz_h()
        aio = handle.aio
        local_port = self._wiz_bound[1] if self._wiz_bound else None

        async def open_udp() -> _pump.Link:
            kw = {"mode": 0 if connected else 2}
            if local_port:
                kw["local_port"] = local_port
            box: dict[str, Any] = {}
            return await _open_within(lambda: aio.net.open_udp(ip, port, **kw), None, box, aio, "UDP")

        link = handle.call(open_udp)
        conn = _pump.Conn(handle, "UDP", (ip, port))
        self._wiz_start(handle, conn, link, _pump.pump_dgram)
        return conn

    def _wiz_start(self, handle: _Handle, conn: _pump.Conn, link: _pump.Link,
                   pump: Callable[[_pump.Conn, _stdsocket.socket], Awaitable[None]]) -> None:
        """``conn`` is up on ``link``: hand our pair's other end to its pump."""
        conn.link = link
        conn.local = getattr(link, "local", None) or conn.local
        conn.state = "connected"
        try:
            peer = self._wiz_attach(conn)
        except BaseException:
            handle.spawn(_pump.close_link, link)
            raise
        handle.spawn(pump, conn, peer)

    def _wiz_udp_connect(self, address: Any, ex: bool) -> int:
        host, port = _address(address, "connect")
        conn = self._wiz
        if conn is not None and conn.relay is not None:
            ip = ipv4_literal(host) or self._wiz_resolve(host, self._wiz_h())
            _KSocket.connect(conn.relay, (ip, port))
            conn.udp_peer = (ip, port)
            return 0
        ip = self._wiz_resolve(host, self._wiz_h())
        if conn is None:
            conn = self._wiz_udp_open(ip, port, True)
        conn.udp_peer = (ip, port)   # re-connecting a datagram socket changes its peer
        return 0

    def _wiz_udp_dest(self, address: Any) -> Address:
        host, port = _address(address, "sendto")
        ip = ipv4_literal(host)
        if ip is not None:
            return ip, port
        return self._wiz_resolve(host, self._wiz_h()), port

    def _wiz_udp_relay(self) -> _pump.Conn:
        """A datagram socket kept on the kernel (loopback bind or destination)."""
        ks = self._wiz_kernel_socket()
        conn = _pump.Conn(None, "UDP", None)
        conn.relay = ks
        conn.state = "connected"
        try:
            if ks.getsockname()[1] == 0:
                ks.bind(("0.0.0.0", 0))
            conn.local = ks.getsockname()
            peer = self._wiz_attach(conn)
        except BaseException:
            ks.close()
            raise
        _pump.relay_spawn(_pump.relay_dgram, conn, peer, ks)
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
            if self._wiz_ksock is not None or (ip is not None and _is_loopback(ip) and _kernel_listening(port)):
                self._wiz_udp_relay()
            else:
                handle = self._wiz_h()
                if ip is None:
                    ip = self._wiz_resolve(host, handle)
                if _route_to_module(ip, port, SOCK_DGRAM, handle):
                    self._wiz_udp_open(ip, port, False)
                else:
                    self._wiz_udp_relay()
            dest: Address = (ip, port) if ip is not None else self._wiz_udp_dest(addr)
        else:
            dest = self._wiz_udp_dest(addr)
        payload = memoryview(data).tobytes()
        _KSocket.send(self, _pump.pack_addr(dest) + payload, flags)
        return len(payload)

    # the data methods stay one attribute test away from the C methods for TCP
    def send(self, data: Buffer, flags: int = 0, /) -> int:
        w = self._wiz
        if w is not None and w.kind == "UDP":
            peer = getattr(w, "udp_peer", None)
            if peer is None:
                raise OSError(errno.EDESTADDRREQ, os.strerror(errno.EDESTADDRREQ))
            payload = memoryview(data).tobytes()
            _KSocket.send(self, _pump.pack_addr(peer) + payload, flags)
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
            frame = _KSocket.recv(self, bufsize + _pump.ADDR_LEN, flags)
            return frame[_pump.ADDR_LEN:], _pump.unpack_addr(frame)
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
        if _is_loopback(ip) or not (self._wiz_handle or _default_handle):
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
            _note_kernel_listener(self)
            return None
        if self._wiz_server is not None:
            return None
        if self.type != SOCK_STREAM or self._wiz is not None:
            raise OSError(errno.EOPNOTSUPP if self.type != SOCK_STREAM else errno.EINVAL,
                          "Operation not supported" if self.type != SOCK_STREAM else "Invalid argument")
        queue: _pump.AcceptQueue = collections.deque()
        if self._wiz_bound is None:
            # bound to loopback, or never bound (an ephemeral port, as the kernel picks):
            # a kernel listener whose connections are accepted as plain kernel sockets
            ks = self._wiz_kernel_socket()
            try:
                ks.listen(backlog)
            except BaseException:
                ks.close()
                raise
            conn = _pump.Conn(None, "SERVER", None)
            conn.relay = ks
            conn.state = "listening"
            conn.local = ks.getsockname()
            peer = self._wiz_attach(conn)
            self._wiz, self._wiz_server = None, (conn, queue)
            _note_kernel_listener(self)
            _pump.relay_spawn(_pump.relay_listener, conn, peer, ks, queue)
            return None
        handle = self._wiz_h()
        aio = handle.aio
        port = self._wiz_bound[1]
        if port == 0:
            raise OSError(errno.EADDRNOTAVAIL, "the module's server needs an explicit port (bind to a port, not 0)")

        async def listen() -> object:
            return await aio.net.listen(port, max(1, min(int(backlog or 1), 5)))

        server = handle.call(listen)
        conn = _pump.Conn(handle, "SERVER", None)
        conn.state = "listening"
        conn.local = (self._wiz_bound[0], port)
        peer = self._wiz_attach(conn)
        self._wiz, self._wiz_server = None, (conn, queue)
        handle.spawn(_pump.pump_listener, conn, peer, server, queue)
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
        _ADOPT.pair = True
        try:
            new = socket(AF_INET, SOCK_STREAM)
        finally:
            _ADOPT.pair = False
        new._wiz_handle = handle
        # the module did not say who called (a link already gone when asked): an address
        # all the same, as callers of accept() unpack and print it
        remote = tuple(link.remote) if link.remote else ("0.0.0.0", 0)
        c = _pump.Conn(handle, "TCP", remote)
        c.local = conn.local
        new._wiz_start(handle, c, link, _pump.pump_stream)
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
        conn = self._wiz
        if buflen is None and level == SOL_SOCKET:
            if optname == _stdsocket.SO_ERROR:
                if conn is not None and conn.error is not None and not conn.so_error_reported:
                    conn.so_error_reported = True
                    if isinstance(conn.error, _LinkLimitError):
                        # the errno alone would lose the point (the module's five-link
                        # limit): asyncio and trio re-raise what this raises
                        raise conn.error
                    return conn.error.errno or errno.EIO
                return 0
            if optname == _stdsocket.SO_TYPE:
                return self.type
            if optname == getattr(_stdsocket, "SO_DOMAIN", -1):
                return AF_INET
            if optname == getattr(_stdsocket, "SO_PROTOCOL", -1):
                return self.proto or (_stdsocket.IPPROTO_TCP if self.type == SOCK_STREAM else _stdsocket.IPPROTO_UDP)
            if optname == _stdsocket.SO_ACCEPTCONN:
                return 1 if self._wiz_server is not None else 0
        ks = conn.relay if conn is not None and conn.relay is not None else self._wiz_ksock
        if ks is not None and ks.fileno() >= 0:
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

    @overload
    def setsockopt(self, level: int, optname: int, value: Union[int, Buffer], /) -> None: ...
    @overload
    def setsockopt(self, level: int, optname: int, value: None, optlen: int, /) -> None: ...

    def setsockopt(self, level: int, optname: int, value: Union[int, Buffer, None],
                   optlen: Optional[int] = None, /) -> None:
        args = (level, optname, value) if optlen is None else (level, optname, value, optlen)
        if self._wiz_kernel:
            return _KSocket.setsockopt(self, *args)
        conn = self._wiz
        ks = conn.relay if conn is not None and conn.relay is not None else self._wiz_ksock
        if ks is not None and ks.fileno() >= 0:
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
            if how in (_stdsocket.SHUT_WR, _stdsocket.SHUT_RDWR):
                conn.shut_wr = True
            if how in (_stdsocket.SHUT_RD, _stdsocket.SHUT_RDWR):
                conn.shut_rd = True
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

