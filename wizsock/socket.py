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
import errno
import ipaddress
import logging
import math
import os
import random
import re
import socket as _stdsocket
import threading
import time
import weakref

import trio

from wizsock import _orig, _pump

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

PAIR_BUFFER = 4096     # SO_SNDBUF asked for on both pair ends (the kernel doubles it)
_KSocket = _orig.socket

# --------------------------------------------------------------------------------------
# The module the facade drives


class _Handle:
    """How the facade drives one engine module (a blocking ``wizsock.Module``)."""

    def __init__(self, module):
        self.module = module
        port = getattr(module, "port", None)
        if port is None:
            port = getattr(getattr(module, "engine", None), "port_url", "")
        # 127.0.0.0/8 through a real module is the module's own loopback, which serves
        # nothing: loopback stays on the host.  The emulator's network *is* the host's
        # loopback, so there it goes over the (emulated) module.
        self.loopback_on_module = str(port).startswith("wizemu:")

    @property
    def aio(self):
        m = self.module
        return getattr(m, "aio", m)

    def call(self, async_fn, *args):
        """Run async_fn on the engine loop and wait for it (from a user thread)."""
        if not trio.lowlevel.in_trio_task():
            return self.module.run(async_fn, *args)
        # a blocking socket call made inside some other trio loop (trio code using the
        # patched socket module): trio.from_thread refuses to be called from there, so
        # wait from a helper thread; the caller blocks, as the stdlib call would.
        box = {}

        def helper():
            try:
                box["value"] = self.module.run(async_fn, *args)
            except BaseException as exc:  # handed to the caller below
                box["error"] = exc
        t = threading.Thread(target=helper, name="wizsock-call", daemon=True)
        t.start()
        t.join()
        if "error" in box:
            raise box.pop("error")
        return box["value"]

    def spawn(self, async_fn, *args):
        self.module.start_soon(async_fn, *args)


_state_lock = threading.Lock()
_default_handle = None
_route_policy = None


def set_module(module):
    """Make ``module`` (a blocking ``wizsock.Module``, or None) the one new sockets use."""
    global _default_handle
    with _state_lock:
        _default_handle = None if module is None else _Handle(module)
    clear_dns_cache()


def get_module():
    h = _default_handle
    return None if h is None else h.module


def _handle():
    h = _default_handle
    if h is None:
        raise OSError(errno.ENETDOWN, "no WizFi360 module: call wizsock.patch(port) "
                      "or wizsock.socket.set_module(module) first")
    return h


def set_routing_policy(policy):
    """``policy(ip, port, type) -> bool``: True sends the connection over the module,
    False keeps it on the host's kernel.  None restores the default: everything goes
    to the module except 127.0.0.0/8 with a real module (with the emulator,
    ``wizemu://``, loopback is its network) and ports a kernel socket of this process
    listens on."""
    global _route_policy
    _route_policy = policy


# Loopback ports a kernel socket of this process (created through this class) listens on.
_kernel_listeners = {}       # port -> weakref to the listening socket
_kl_lock = threading.Lock()


def _note_kernel_listener(sock):
    try:
        port = _KSocket.getsockname(sock)[1]
    except (OSError, TypeError, IndexError):
        return
    with _kl_lock:
        _kernel_listeners[port] = weakref.ref(sock)


def _kernel_listening(port):
    with _kl_lock:
        ref = _kernel_listeners.get(port)
        sock = ref() if ref is not None else None
        if sock is None or sock.fileno() < 0:
            _kernel_listeners.pop(port, None)
            return False
        return True


def _is_loopback(ip):
    return ip.startswith("127.")


def _route_to_module(ip, port, type_, handle):
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
_dns_cache = {}
_dns_lock = threading.Lock()
_dns_inflight = {}
_LOCAL_NAMES = {"localhost": "127.0.0.1", "localhost.localdomain": "127.0.0.1"}


def clear_dns_cache():
    with _dns_lock:
        _dns_cache.clear()


def _ipv4_literal(host):
    """The dotted quad for an IPv4 literal (any inet_aton form), else None; no traffic."""
    try:
        return _orig.getaddrinfo(host, None, AF_INET, SOCK_STREAM, 0,
                                 _stdsocket.AI_NUMERICHOST)[0][4][0]
    except (_stdsocket.gaierror, UnicodeError, ValueError):
        return None


def _is_ipv6_literal(host):
    try:
        ipaddress.IPv6Address(host.split("%", 1)[0])
        return True
    except ValueError:
        return False


def _host_str(host):
    if isinstance(host, (bytes, bytearray)):
        try:
            return bytes(host).decode("ascii")
        except UnicodeDecodeError:
            raise _stdsocket.gaierror(_stdsocket.EAI_NONAME, "Name or service not known") from None
    if isinstance(host, str):
        return host
    raise TypeError(f"getaddrinfo() argument 1 must be string or None, not {type(host).__name__}")


_NAME = re.compile(r"[A-Za-z0-9_-]{1,63}(?:\.[A-Za-z0-9_-]{1,63})*\.?")


def _module_name(name):
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


def _resolve_name(name, handle=None):
    """An IPv4 address for a host name, through the module (cached briefly)."""
    name = _module_name(name)
    key = name.lower().rstrip(".")
    if key in _LOCAL_NAMES:
        return _LOCAL_NAMES[key]
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


def _query_name(name, key, handle):
    now = time.monotonic()
    h = handle or _handle()
    aio = h.aio

    async def lookup():
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
        _dns_cache[key] = (ip, now + _DNS_TTL)
    return ip


def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    """``socket.getaddrinfo`` with names resolved by the module; IPv4 only, like a host
    without IPv6 (IPv6 literals still parse, creating an AF_INET6 socket then fails)."""
    if _orig.is_internal():
        return _orig.getaddrinfo(host, port, family, type, proto, flags)
    return _getaddrinfo(host, port, family, type, proto, flags, _resolve_name)


def _getaddrinfo(host, port, family, type, proto, flags, resolve):
    """getaddrinfo with ``resolve(name) -> ip`` for names (literals never reach it)."""
    if host is None or host == "" or host == b"":
        fam = AF_INET if family in (0, AF_INET) else family
        return _orig.getaddrinfo(host, port, fam, type, proto, flags)
    if family not in (0, AF_INET, AF_INET6):
        raise _stdsocket.gaierror(_stdsocket.EAI_FAMILY, "ai_family not supported")
    name = _host_str(host)
    if _is_ipv6_literal(name):
        return _orig.getaddrinfo(name, port, family, type, proto, flags | _stdsocket.AI_NUMERICHOST)
    ip = _ipv4_literal(name)
    if ip is None:
        if flags & _stdsocket.AI_NUMERICHOST:
            raise _stdsocket.gaierror(_stdsocket.EAI_NONAME, "Name or service not known")
        name = _module_name(name)  # gaierror for what cannot be a name (no AT traffic)
        if family == AF_INET6:
            raise _stdsocket.gaierror(_stdsocket.EAI_NODATA, "No address associated with hostname")
        # the service part first, so a bad port fails without AT traffic
        template = _orig.getaddrinfo("0.0.0.0", port, AF_INET, type, proto,
                                     (flags & ~_stdsocket.AI_CANONNAME) | _stdsocket.AI_NUMERICHOST)
        ip = resolve(name)
    else:
        if family == AF_INET6:
            raise _stdsocket.gaierror(_stdsocket.EAI_ADDRFAMILY, "Address family for hostname not supported")
        template = _orig.getaddrinfo("0.0.0.0", port, AF_INET, type, proto,
                                     (flags & ~_stdsocket.AI_CANONNAME) | _stdsocket.AI_NUMERICHOST)
    canon = name if flags & _stdsocket.AI_CANONNAME else ""
    out = []
    for i, (fam, st, pr, _c, sa) in enumerate(template):
        out.append((fam, st, pr, canon if i == 0 else "", (ip, sa[1])))
    return out


def gethostbyname(hostname):
    if _orig.is_internal():
        return _orig.gethostbyname(hostname)
    name = _host_str(hostname)
    if name == "":
        return _orig.gethostbyname(name)
    ip = _ipv4_literal(name)
    if ip is not None:
        return ip
    if _is_ipv6_literal(name):
        raise _stdsocket.gaierror(_stdsocket.EAI_ADDRFAMILY, "Address family for hostname not supported")
    return _resolve_name(name)


def gethostbyname_ex(hostname):
    if _orig.is_internal():
        return _orig.gethostbyname_ex(hostname)
    ip = gethostbyname(hostname)
    return (_host_str(hostname), [], [ip])


def create_connection(address, timeout=_stdsocket._GLOBAL_DEFAULT_TIMEOUT,
                      source_address=None, *, all_errors=False):
    """``socket.create_connection`` over the facade (stdlib semantics)."""
    if _orig.is_internal():
        return _orig.create_connection(address, timeout, source_address, all_errors=all_errors)
    host, port = address
    exceptions = []
    for res in getaddrinfo(host, port, 0, SOCK_STREAM):
        af, socktype, proto, _canon, sa = res
        sock = None
        try:
            sock = socket(af, socktype, proto)
            if timeout is not _stdsocket._GLOBAL_DEFAULT_TIMEOUT:
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


def _check_port(port, what):
    if not isinstance(port, int):
        raise TypeError(f"'{type(port).__name__}' object cannot be interpreted as an integer")
    if not 0 <= port <= 65535:
        raise OverflowError(f"{what}(): port must be 0-65535.")


def _address(address, what):
    if not isinstance(address, tuple) or len(address) != 2:
        raise TypeError(f"{what}(): AF_INET address must be tuple, not {type(address).__name__}")
    host, port = address
    _check_port(port, what)
    return _host_str(host), port


async def _open_within(open_fn, timeout, box):
    """Open a link, giving up after ``timeout`` seconds (None: no limit).

    An AT command in flight is not cancelled by the engine; the open carries on in
    a task of its own, and a link that arrives after the caller gave up (timeout,
    or ``box["abandoned"]`` set by an interrupted caller) is closed.
    """
    done = trio.Event()

    async def opener():
        try:
            box["link"] = await open_fn()
        except Exception as exc:
            box["error"] = exc
        finally:
            done.set()
            if box.get("abandoned") and "link" in box:
                await _pump._close_link(box["link"])

    trio.lowlevel.spawn_system_task(opener)
    with trio.move_on_after(math.inf if timeout is None else timeout):
        await done.wait()
    if not done.is_set():
        box["abandoned"] = True
        raise TimeoutError("timed out")
    if "error" in box:
        raise box["error"]
    return box["link"]


class socket(_KSocket):
    """``socket.socket``, with AF_INET connections carried by the WizFi360."""

    # set by wizsock.ssl.ModuleSSLContext.wrap_socket: the module does the TLS
    _wiz_tls = None
    _wiz_tls_hostname = None

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        internal = _orig.is_internal()
        if family == AF_INET6 and fileno is None and not internal:
            # the module has no IPv6: refuse like a host whose kernel has none
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        super().__init__(family, type, proto, fileno)
        self._wiz = None            # _pump.Conn once routed to the module
        self._wiz_handle = None     # the module (None: the default at connect time)
        self._wiz_bound = None      # a bind() kept for the module (non-loopback)
        self._wiz_server = None     # (conn, queue) of a module server
        self._wiz_kernel = (
            internal or fileno is not None
            or super().family != AF_INET
            or super().type not in (SOCK_STREAM, SOCK_DGRAM)
        )
        src = getattr(_ADOPT, "src", None)
        if src is not None and fileno is not None:
            _ADOPT.src = None
            _adopt(self, src)

    # -- routing ------------------------------------------------------------------------

    @property
    def _wiz_routed(self):
        return self._wiz is not None or self._wiz_server is not None

    def _wiz_h(self):
        return self._wiz_handle or _handle()

    def _wiz_sync_blocking(self):
        # the swapped-in descriptor carries its own O_NONBLOCK; match the timeout mode
        _KSocket.settimeout(self, _KSocket.gettimeout(self))

    @staticmethod
    def _wiz_pair(sock_type):
        """A fresh AF_UNIX pair with small buffers (so blocking and timeouts track the
        UART): (the end that becomes ours, the pump's end)."""
        mine, theirs = _orig.socketpair(_stdsocket.AF_UNIX, sock_type)
        for s in (mine, theirs):
            s.setsockopt(SOL_SOCKET, _stdsocket.SO_SNDBUF, PAIR_BUFFER)
            s.setsockopt(SOL_SOCKET, _stdsocket.SO_RCVBUF, PAIR_BUFFER)
        return mine, theirs

    def _wiz_install(self, conn, mine):
        os.dup2(mine.fileno(), self.fileno(), inheritable=False)
        mine.close()
        st = os.fstat(self.fileno())
        conn.user_id = (st.st_dev, st.st_ino)
        conn.user_fd = self.fileno()
        self._wiz = conn
        self._wiz_sync_blocking()

    def _wiz_resolve(self, host, handle):
        ip = _ipv4_literal(host)
        if ip is not None:
            return ip
        if _is_ipv6_literal(host):
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        return _resolve_name(host, handle)

    # -- connect ------------------------------------------------------------------------

    def connect(self, address):
        self._wiz_connect(address, False)

    def connect_ex(self, address):
        return self._wiz_connect(address, True)

    def _wiz_connect(self, address, ex):
        if self._wiz_kernel:
            return _KSocket.connect_ex(self, address) if ex else _KSocket.connect(self, address)
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
        host, port = _address(address, "connect")
        try:
            ip = _ipv4_literal(host)
            if ip is not None and _is_loopback(ip) and _kernel_listening(port):
                handle = None      # a listener of this very process: stay on the kernel
            else:
                handle = self._wiz_h()
                if ip is None:
                    ip = self._wiz_resolve(host, handle)
                if not _route_to_module(ip, port, self.type, handle):
                    handle = None
            if handle is None:
                self._wiz_kernel = True
                return _KSocket.connect_ex(self, (ip, port)) if ex else _KSocket.connect(self, (ip, port))
            if self.type == SOCK_DGRAM:
                return self._wiz_udp_connect((ip, port), ex)
            return self._wiz_tcp_connect(handle, ip, port, ex)
        except OSError as e:
            if ex and not isinstance(e, _stdsocket.gaierror):
                return e.errno or errno.EIO
            raise

    def _wiz_open_fn(self, handle, ip, port):
        aio = handle.aio
        tls = self._wiz_tls
        if tls is not None:
            return tls._open_fn(aio, ip, port, self._wiz_tls_hostname)

        async def open_tcp():
            return await aio.net.open_tcp(ip, port)
        return open_tcp

    def _wiz_tcp_connect(self, handle, ip, port, ex):
        timeout = self.gettimeout()
        conn = _pump.Conn(handle, "SSL" if self._wiz_tls else "TCP", (ip, port))
        open_fn = self._wiz_open_fn(handle, ip, port)
        if timeout == 0.0:
            # non-blocking: the descriptor is swapped now, pre-filled so that it turns
            # writable only when the pump has the link up (asyncio, trio, selectors).
            mine, theirs = self._wiz_pair(SOCK_STREAM)
            mine.setblocking(False)
            junk = 0
            block = b"\0" * 1024
            try:
                while True:
                    junk += mine.send(block)
            except BlockingIOError:
                pass
            self._wiz_install(conn, mine)
            handle.spawn(_pump.pump_stream, conn, theirs, open_fn, junk)
            if ex:
                return errno.EINPROGRESS
            raise BlockingIOError(errno.EINPROGRESS, "Operation now in progress")

        box = {}

        async def open_blocking():
            return await _open_within(open_fn, timeout, box)

        try:
            link = handle.call(open_blocking)
        except BaseException:
            # interrupted (KeyboardInterrupt...): whoever finishes last closes the link
            box["abandoned"] = True
            if "link" in box:
                handle.spawn(_pump._close_link, box["link"])
            raise
        conn.link = link
        conn.local = getattr(link, "local", None)
        conn.state = "connected"
        mine, theirs = self._wiz_pair(SOCK_STREAM)
        try:
            self._wiz_install(conn, mine)
        except BaseException:
            theirs.close()
            handle.spawn(_pump._close_link, link)
            raise
        handle.spawn(_pump.pump_stream, conn, theirs)
        return 0

    # -- UDP ------------------------------------------------------------------------------

    def _wiz_udp_open(self, ip, port, connected):
        handle = self._wiz_h()
        aio = handle.aio
        local_port = self._wiz_bound[1] if self._wiz_bound else None

        async def open_udp():
            kw = {"mode": 0 if connected else 2}
            if local_port:
                kw["local_port"] = local_port
            return await aio.net.open_udp(ip, port, **kw)

        link = handle.call(open_udp)
        conn = _pump.Conn(handle, "UDP", (ip, port))
        conn.link = link
        conn.local = getattr(link, "local", None)
        conn.state = "connected"
        mine, theirs = self._wiz_pair(_stdsocket.SOCK_SEQPACKET)
        self._wiz_install(conn, mine)
        handle.spawn(_pump.pump_dgram, conn, theirs)
        return conn

    def _wiz_udp_connect(self, address, ex):
        host, port = _address(address, "connect")
        ip = self._wiz_resolve(host, self._wiz_h())
        if self._wiz is None:
            self._wiz_udp_open(ip, port, True)
        self._wiz.udp_peer = (ip, port)   # re-connecting a datagram socket changes its peer
        return 0

    def _wiz_udp_dest(self, address):
        host, port = _address(address, "sendto")
        return self._wiz_resolve(host, self._wiz_h()), port

    def sendto(self, data, flags_or_addr, addr=None):
        if addr is None:
            flags, addr = 0, flags_or_addr
        else:
            flags = flags_or_addr
        if self._wiz_kernel or (self._wiz is None and self.type != SOCK_DGRAM):
            return _KSocket.sendto(self, data, flags, addr)
        if self.type != SOCK_DGRAM:
            raise OSError(errno.EISCONN, os.strerror(errno.EISCONN))
        if self._wiz is None:
            host, port = _address(addr, "sendto")
            handle = self._wiz_h()
            ip = self._wiz_resolve(host, handle)
            if not _route_to_module(ip, port, SOCK_DGRAM, handle):
                self._wiz_kernel = True
                return _KSocket.sendto(self, data, flags, (ip, port))
            self._wiz_udp_open(ip, port, False)
            dest = (ip, port)
        else:
            dest = self._wiz_udp_dest(addr)
        payload = memoryview(data).tobytes()
        _KSocket.send(self, _pump.pack_addr(dest) + payload, flags)
        return len(payload)

    # the data methods stay one attribute test away from the C methods for TCP
    def send(self, data, flags=0):
        w = self._wiz
        if w is not None and w.kind == "UDP":
            peer = getattr(w, "udp_peer", None)
            if peer is None:
                raise OSError(errno.EDESTADDRREQ, os.strerror(errno.EDESTADDRREQ))
            payload = memoryview(data).tobytes()
            _KSocket.send(self, _pump.pack_addr(peer) + payload, flags)
            return len(payload)
        return _KSocket.send(self, data, flags)

    def sendall(self, data, flags=0):
        w = self._wiz
        if w is not None and w.kind == "UDP":
            self.send(data, flags)
            return None
        return _KSocket.sendall(self, data, flags)

    def recvfrom(self, bufsize, flags=0):
        w = self._wiz
        if w is not None and w.kind == "UDP":
            frame = _KSocket.recv(self, bufsize + _pump.ADDR_LEN, flags)
            return frame[_pump.ADDR_LEN:], _pump.unpack_addr(frame)
        return _KSocket.recvfrom(self, bufsize, flags)

    def recv(self, bufsize, flags=0):
        w = self._wiz
        if w is not None and w.kind == "UDP":
            return self.recvfrom(bufsize, flags)[0]
        return _KSocket.recv(self, bufsize, flags)

    def recvfrom_into(self, buffer, nbytes=0, flags=0):
        w = self._wiz
        if w is not None and w.kind == "UDP":
            view = memoryview(buffer).cast("B")
            n = nbytes or len(view)
            data, addr = self.recvfrom(n, flags)
            view[:len(data)] = data
            return len(data), addr
        return _KSocket.recvfrom_into(self, buffer, nbytes, flags)

    def recv_into(self, buffer, nbytes=0, flags=0):
        w = self._wiz
        if w is not None and w.kind == "UDP":
            return self.recvfrom_into(buffer, nbytes, flags)[0]
        return _KSocket.recv_into(self, buffer, nbytes, flags)

    # -- servers --------------------------------------------------------------------------

    def bind(self, address):
        if self._wiz_kernel:
            return _KSocket.bind(self, address)
        host, port = _address(address, "bind")
        ip = _ipv4_literal(host) if host else "0.0.0.0"
        if ip is None:
            ip = gethostbyname(host)
        if _is_loopback(ip) or not (self._wiz_handle or _default_handle):
            # host-local: a kernel socket (paho's wake-up pair, local servers)
            self._wiz_kernel = True
            return _KSocket.bind(self, (ip, port))
        if self._wiz_bound is not None or self._wiz is not None:
            raise OSError(errno.EINVAL, "Invalid argument")
        if self.type == SOCK_DGRAM:
            # a datagram socket receives from its bind on: open the module's UDP link now
            # (mode 2: any sender), so the descriptor asyncio/selectors watch is final
            self._wiz_bound = (ip, port or random.randint(49152, 65535))
            self._wiz_udp_open("0.0.0.0", 0, False)
            return None
        self._wiz_bound = (ip, port)
        return None

    def listen(self, backlog=128):
        if self._wiz_kernel or self._wiz_bound is None:
            if not self._wiz_kernel and self._wiz_bound is None:
                self._wiz_kernel = True  # listening on an ephemeral kernel port
            _KSocket.listen(self, backlog)
            _note_kernel_listener(self)
            return None
        if self._wiz_server is not None:
            return None
        if self.type != SOCK_STREAM:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        handle = self._wiz_h()
        aio = handle.aio
        port = self._wiz_bound[1]
        if port == 0:
            raise OSError(errno.EADDRNOTAVAIL, "the module's server needs an explicit port (bind to a port, not 0)")

        async def listen():
            return await aio.net.listen(port, max(1, min(int(backlog or 1), 5)))

        server = handle.call(listen)
        conn = _pump.Conn(handle, "SERVER", None)
        conn.state = "listening"
        conn.local = (self._wiz_bound[0], port)
        queue = collections.deque()
        mine, theirs = self._wiz_pair(SOCK_STREAM)
        os.dup2(mine.fileno(), self.fileno(), inheritable=False)
        mine.close()
        self._wiz_sync_blocking()
        self._wiz_server = (conn, queue)
        handle.spawn(_pump.pump_listener, conn, theirs, server, queue)
        return None

    def accept(self):
        if self._wiz_server is None:
            return super().accept()
        conn, queue = self._wiz_server
        if conn.state == "failed" and not queue:
            raise conn.error
        data = _KSocket.recv(self, 1)   # honours timeout / non-blocking mode natively
        if not data:
            raise conn.error or OSError(errno.EINVAL, "Invalid argument")
        link = queue.popleft()
        handle = conn.module
        new = socket(AF_INET, SOCK_STREAM)
        new._wiz_handle = handle
        c = _pump.Conn(handle, "TCP", tuple(link.remote) if link.remote else None)
        c.link = link
        c.local = getattr(link, "local", None) or conn.local
        c.state = "connected"
        mine, theirs = new._wiz_pair(SOCK_STREAM)
        new._wiz_install(c, mine)
        handle.spawn(_pump.pump_stream, c, theirs)
        if _stdsocket.getdefaulttimeout() is None and self.gettimeout():
            new.setblocking(True)
        return new, c.remote

    # -- describing the connection ------------------------------------------------------

    def getpeername(self):
        conn = self._wiz
        if conn is None or self._wiz_server is not None:
            return _KSocket.getpeername(self)
        if conn.kind == "UDP":
            peer = getattr(conn, "udp_peer", None)
            if peer is None:
                raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))
            return peer
        if conn.state != "connected" and conn.state != "closed":
            raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))
        return conn.remote

    def getsockname(self):
        if self._wiz_server is not None:
            return self._wiz_server[0].local
        conn = self._wiz
        if conn is None:
            if self._wiz_bound is not None:
                return self._wiz_bound
            return _KSocket.getsockname(self)
        local = conn.local or self._wiz_bound
        if local:
            return tuple(local)
        return ("0.0.0.0", 0)

    def getsockopt(self, level, optname, buflen=None):
        conn = self._wiz
        if conn is not None and buflen is None:
            if level == SOL_SOCKET and optname == _stdsocket.SO_ERROR:
                if conn.error is not None and not conn.so_error_reported:
                    conn.so_error_reported = True
                    return conn.error.errno or errno.EIO
                return 0
            if level == SOL_SOCKET and optname == _stdsocket.SO_TYPE:
                return self.type
            if level == SOL_SOCKET and optname == _stdsocket.SO_DOMAIN:
                return AF_INET
            if level == SOL_SOCKET and optname == _stdsocket.SO_PROTOCOL:
                return self.proto
            if level == IPPROTO_TCP:
                return 1 if optname == _stdsocket.TCP_NODELAY else 0
        if buflen is None:
            return _KSocket.getsockopt(self, level, optname)
        return _KSocket.getsockopt(self, level, optname, buflen)

    def setsockopt(self, level, optname, value, optlen=None):
        args = (level, optname, value) if optlen is None else (level, optname, value, optlen)
        if self._wiz_routed:
            # TCP options (nodelay, keepalive, ...) mean nothing on the pair; never raise
            try:
                return _KSocket.setsockopt(self, *args)
            except OSError:
                return None
        try:
            return _KSocket.setsockopt(self, *args)
        except OSError:
            if self._wiz_kernel or level not in (IPPROTO_TCP, SOL_SOCKET):
                raise
            return None

    def shutdown(self, how):
        conn = self._wiz
        if conn is not None:
            if how in (_stdsocket.SHUT_WR, _stdsocket.SHUT_RDWR):
                conn.shut_wr = True
            if how in (_stdsocket.SHUT_RD, _stdsocket.SHUT_RDWR):
                conn.shut_rd = True
        return _KSocket.shutdown(self, how)

    def _real_close(self, *args):
        server = self._wiz_server
        super()._real_close(*args)
        if server is not None and not trio.lowlevel.in_trio_task():
            # like the kernel, closing a listening socket frees its port at once: wait
            # (briefly) for AT+CIPSERVER=0, so the next listen() finds the server free
            server[0].finished.wait(5)

    def dup(self):
        new = super().dup()
        _adopt(new, self)
        return new

    def __getstate__(self):
        raise TypeError(f"cannot pickle {self.__class__.__name__!r} object")


SocketType = socket


_ADOPT = threading.local()   # ssl.SSLSocket._create: the socket being wrapped


def _adopt(new, old):
    """Carry the routing state of ``old`` over to ``new`` (same descriptor; ssl wrapping)."""
    if isinstance(old, socket):
        new._wiz = old._wiz
        new._wiz_handle = old._wiz_handle
        new._wiz_bound = old._wiz_bound
        new._wiz_server = old._wiz_server
        new._wiz_kernel = old._wiz_kernel
        new._wiz_tls = old._wiz_tls
        new._wiz_tls_hostname = old._wiz_tls_hostname
