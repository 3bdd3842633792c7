"""Pumps: trio tasks that serve the other end of a facade socket's AF_UNIX pair.

A facade socket is, from its creation, one end of an AF_UNIX socketpair (the
descriptor the program sees never changes, so its epoll/selector/asyncio/trio
registrations stay valid).  These tasks own the other end and serve it:

* ``pump_stream`` / ``pump_dgram`` / ``pump_listener`` (on the engine's loop): a
  module link or server;
* ``relay_stream`` / ``relay_dgram`` / ``relay_listener`` (on a private relay loop,
  thread ``wizsock-relay``): a kernel socket, for what stays on the host (loopback,
  the routing policy).

Everything the kernel does for the user's end (blocking, timeouts, non-blocking
mode, select/poll/epoll, ssl) then works unchanged.

Signals back to the user's end, all through the kernel:

* remote close      -> ``shutdown(SHUT_WR)`` on our end: the user reads the rest, then ``b""``;
* reset / failure   -> close our end with unread data in its receive queue: the
                       user's next ``recv`` raises ``ConnectionResetError``;
* user close        -> our end reads EOF (and POLLHUP) -> the link is closed.
* idle link reclaimed (opt-in, :data:`RECLAIM_IDLE`) -> as a remote close.
"""
from __future__ import annotations

import errno
import fcntl
import functools
import logging
import os
import select
import socket as _stdsocket
import struct
import termios
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, Optional, ParamSpec, Protocol, TypeVar

import trio

from wizsock import _orig

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from wizsock.socket import _Handle

log = logging.getLogger("wizsock.socket")

CHUNK = 8192          # bytes read from the pair per link.send (the engine splits at 2048)
HALF_CLOSE_POLL = 0.05

_ADDR = struct.Struct("!4sH")   # UDP framing on the pair: IPv4 address, port, then payload

#: an IPv4 socket address
Address = tuple[str, int]
#: a link of the engine (TCP, UDP or SSL) as its ``open_*`` calls return it; the
#: facade uses its send/receive/aclose and a few attributes (typed with the engine)
Link = Any
#: what a listening socket's pump queued for ``accept()``: engine links (a module
#: server), or ``(descriptor, address)`` of an accepted kernel socket (a relay)
AcceptQueue = deque[Any]

_R = TypeVar("_R")
_P = ParamSpec("_P")
#: a pump or relay task: ``fn(conn, our end of the pair, ...)``
_Task = Callable[Concatenate["Conn", _stdsocket.socket, _P], Coroutine[Any, Any, None]]


def pack_addr(addr: Address) -> bytes:
    return _ADDR.pack(_stdsocket.inet_aton(addr[0]), addr[1])


def unpack_addr(frame: Buffer) -> Address:
    ip, port = _ADDR.unpack_from(frame)
    return (_stdsocket.inet_ntoa(ip), port)


ADDR_LEN = _ADDR.size


class Conn:
    """What a routed socket shares with its pump (one per connection)."""

    def __init__(self, module: Optional[_Handle], kind: str, remote: Optional[Address]) -> None:
        self.module = module          # facade handle (None: a relay)
        self.kind = kind              # "TCP" / "UDP" / "SSL" / "SERVER"
        self.remote = remote          # (ip, port)
        self.local: Optional[Address] = None    # (ip, port) once known
        self.link: Optional[Link] = None
        self.udp_peer: Optional[Address] = None  # a datagram socket's connect()ed peer
        self.state = "connecting"     # connecting / connected / listening / failed / closed
        self.error: Optional[OSError] = None    # pending connect error (SO_ERROR)
        self.so_error_reported = False
        self.user_id: Optional[tuple[int, int]] = None   # (st_dev, st_ino) of the user's end
        self.user_fd = -1
        self.shut_wr = False
        self.shut_rd = False
        self.remote_closed = False
        # the kernel socket a relay serves (None: a module link)
        self.relay: Optional[_stdsocket.socket] = None
        self.last_active = 0.0        # trio time of the last byte moved (idle reclaim)
        self.cancel_scope: Optional[trio.CancelScope] = None   # the pump's copy loop, while it runs
        self.pair_end: Optional[_stdsocket.socket] = None     # our end of the pair, while the pump runs
        self.reclaimed = False
        self.awaiting_reply = False   # the last bytes moved were the user's (idle reclaim)
        self.finished = threading.Event()   # set when the pump has let go of the link

    # -- helpers run on the engine loop -------------------------------------------

    def fail(self, exc: BaseException) -> None:
        self.error = exc if isinstance(exc, OSError) else OSError(errno.EIO, str(exc))
        self.state = "failed"

    def poke_user(self) -> None:
        """Leave unread data in our end's receive queue so closing it resets the user."""
        try:
            fd = os.dup(self.user_fd)
        except OSError:
            return
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != self.user_id:
                os.close(fd)
                return
            s = _orig.socket(fileno=fd)
            try:
                s.send(b"\0", _stdsocket.MSG_DONTWAIT)
            except OSError:
                pass  # full: there is unread data already, or the user end is gone
            finally:
                s.close()
        except OSError:
            try:
                os.close(fd)
            except OSError:
                pass


class Far(Protocol):
    """What the copy loops use of the far side: a module link, or a relayed kernel socket."""

    @property
    def remote(self) -> Optional[Address]: ...
    async def send(self, data: bytes) -> None: ...
    async def receive(self, max_bytes: int) -> bytes: ...
    async def send_to(self, data: bytes, addr: Address) -> None: ...
    async def receive_from(self, max_bytes: int) -> tuple[bytes, Any]: ...


class _Pair:
    """A host socket (our end of the pair, or a relay's kernel socket), driven with
    trio's fd waits (not trio.socket: under a patch trio only accepts the patched class)."""

    def __init__(self, sock: _stdsocket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    async def _io(self, op: Callable[[Any], _R], wait: Callable[[_stdsocket.socket], Awaitable[None]],
                  arg: Any) -> _R:
        # trio's checkpoint contract: cancellable before the call, never after it has
        # moved bytes (they would be lost)
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                result = op(arg)
            except BlockingIOError:
                await wait(self.sock)
                continue
            await trio.lowlevel.cancel_shielded_checkpoint()
            return result

    def recv(self, n: int) -> Coroutine[Any, Any, bytes]:
        return self._io(self.sock.recv, trio.lowlevel.wait_readable, n)

    def send(self, data: Buffer) -> Coroutine[Any, Any, int]:
        return self._io(self.sock.send, trio.lowlevel.wait_writable, data)

    def send_nowait(self, data: Buffer) -> int:
        return self.sock.send(data)

    def recvfrom(self, n: int) -> Coroutine[Any, Any, tuple[bytes, Any]]:
        return self._io(self.sock.recvfrom, trio.lowlevel.wait_readable, n)

    def sendto(self, data: Buffer, addr: Address) -> Coroutine[Any, Any, int]:
        return self._io(lambda d: self.sock.sendto(d, addr), trio.lowlevel.wait_writable, data)

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            trio.lowlevel.notify_closing(self.sock)
        self.sock.close()


def _guarded(fn: _Task[_P]) -> _Task[_P]:
    """Pumps run in the engine's nursery: an escaping exception would end the module.
    A pump that fails anyway fails its connection and closes its end of the pair, so
    the user's socket sees the error instead of waiting forever."""
    @functools.wraps(fn)
    async def wrapper(conn: Conn, pair_end: _stdsocket.socket, /, *args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            await fn(conn, pair_end, *args, **kwargs)
        except Exception as exc:
            log.exception("wizsock pump %s failed", fn.__name__)
            if conn.error is None:
                conn.fail(exc)
            try:
                pair_end.close()
            except OSError:
                pass
            conn.finished.set()
    return wrapper


def _engine_closing() -> bool:
    """Our task was cancelled because the engine itself is shutting down (a pump is only
    ever cancelled from outside by the engine's nursery)."""
    return trio.current_effective_deadline() == float("-inf")


async def close_link(link: Optional[Link]) -> None:
    if link is None:
        return
    if _engine_closing():
        return  # the engine closes its links itself
    log.debug("closing link %r", link)
    with trio.CancelScope(shield=True):
        with trio.move_on_after(10):
            try:
                await link.aclose()
            except Exception as e:  # the link may already be gone (reset, remote close)
                log.debug("closing link: %r", e)


async def _send_all(tsock: _Pair, data: Buffer) -> None:
    view = memoryview(data)
    while view:
        n = await tsock.send(view)
        view = view[n:]


def _remote_closed_after_send(link: Far, exc: BaseException) -> bool:
    """The peer closed (CLOSED) while segments were still unacknowledged: the engine
    fails the link with SendFailed.  A peer that answers and closes (HTTP
    ``Connection: close``) does exactly that, and the kernel would give EOF: so do we."""
    from wizsock import errors

    return isinstance(exc, errors.SendFailed) and bool(getattr(link, "module_closed", False))


def _hung_up(fd: int) -> bool:
    p = select.poll()
    p.register(fd, select.POLLHUP)
    try:
        return any(ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, ev in p.poll(0))
    except OSError:
        return True


async def _wait_user_gone(tsock: _Pair) -> None:
    """After the user's half-close, wait until its end is fully closed."""
    while not _hung_up(tsock.fileno()):
        await trio.sleep(HALF_CLOSE_POLL)


async def _drain(tsock: _Pair, n: int) -> bool:
    """Read and discard the n bytes the user end was pre-filled with (connect pending)."""
    while n > 0:
        data = await tsock.recv(min(n, 65536))
        if not data:
            return False
        n -= len(data)
    return True


@_guarded
async def pump_stream(conn: Conn, pair_end: _stdsocket.socket,
                      open_fn: Optional[Callable[[], Awaitable[Link]]] = None, junk: int = 0) -> None:
    """TCP (and module-SSL) pump.  With open_fn, the connect happens here (non-blocking connect)."""
    tsock = _Pair(pair_end)
    link = conn.link
    reset = False
    try:
        if link is None:
            assert open_fn is not None, "a pump without a link opens one"
            try:
                link = await open_fn()
            except BaseException as e:
                if not isinstance(e, Exception):
                    conn.fail(OSError(errno.ECANCELED, "connect cancelled"))
                    raise
                conn.fail(e)
                log.debug("non-blocking connect to %s failed: %r", conn.remote, e)
                return
            conn.link = link
            conn.local = getattr(link, "local", None) or conn.local
            conn.state = "connected"
            if not await _drain(tsock, junk):
                return  # the user closed before the connect finished
        reset = await _run_stream(conn, link, tsock)
    finally:
        conn.state = "failed" if conn.state == "failed" else "closed"
        engine_closing = _engine_closing()
        await close_link(link)
        _reclaiming.discard(conn)
        if reset or (engine_closing and link is not None):
            conn.poke_user()   # the module went away under the connection: a reset
        tsock.close()
        conn.finished.set()


async def _run_stream(conn: Conn, link: Far, tsock: _Pair) -> bool:
    """Copy both ways until the user closes or the link fails; True means reset the user."""
    outcome = {"reset": False}

    async def up(cancel: trio.CancelScope) -> None:
        send_dead = False
        while True:
            try:
                data = await tsock.recv(CHUNK)
            except OSError:
                data = b""
            if not data:
                log.debug("link %s: the user closed its end", getattr(link, "id", "?"))
                if conn.shut_wr and not conn.remote_closed:
                    shutdown_write = getattr(link, "shutdown_write", None)
                    if shutdown_write is not None:
                        shutdown_write()     # a kernel peer has half-close; the module has none
                    await _wait_user_gone(tsock)
                cancel.cancel()
                return
            if conn.remote_closed or send_dead:
                continue  # the peer is gone; what the user still writes goes nowhere
            conn.last_active = trio.current_time()
            conn.awaiting_reply = True
            try:
                await link.send(data)
            except Exception as e:
                if conn.remote_closed or _remote_closed_after_send(link, e):
                    send_dead = True   # down still delivers what arrived, then EOF
                    continue
                log.debug("link send failed: %r", e)
                outcome["reset"] = True
                cancel.cancel()
                return

    async def down(cancel: trio.CancelScope) -> None:
        while True:
            try:
                data = await link.receive(65536)
            except Exception as e:
                if not _remote_closed_after_send(link, e):
                    log.debug("link receive failed: %r", e)
                    outcome["reset"] = True
                    cancel.cancel()
                    return
                data = b""
            if not data:
                conn.remote_closed = True
                try:
                    tsock.shutdown(_stdsocket.SHUT_WR)
                except OSError:
                    pass
                if conn.shut_wr:
                    cancel.cancel()  # both directions are done
                return
            conn.last_active = trio.current_time()
            conn.awaiting_reply = False
            try:
                await _send_all(tsock, data)
            except OSError:
                if conn.shut_rd:
                    continue
                cancel.cancel()  # the user closed its end
                return

    conn.last_active = trio.current_time()
    conn.pair_end = tsock.sock
    _streams.add(conn)
    try:
        async with trio.open_nursery() as nursery:
            conn.cancel_scope = nursery.cancel_scope
            nursery.start_soon(up, nursery.cancel_scope)
            nursery.start_soon(down, nursery.cancel_scope)
    finally:
        _streams.discard(conn)
        conn.cancel_scope = None
        conn.pair_end = None
    return outcome["reset"] and not conn.reclaimed


async def _run_dgram(tsock: _Pair, link: Far) -> None:
    """Datagrams both ways until the user closes (or the link fails)."""
    async def up(cancel: trio.CancelScope) -> None:
        while True:
            try:
                frame = await tsock.recv(65536 + ADDR_LEN)
            except OSError:
                frame = b""
            if not frame:
                # a zero-length datagram can never come from the user (it is framed):
                # this is the user's end closing
                cancel.cancel()
                return
            addr = unpack_addr(frame)
            payload = frame[ADDR_LEN:]
            try:
                if addr == tuple(link.remote or ()):
                    await link.send(payload)
                else:
                    await link.send_to(payload, addr)
            except Exception as e:
                log.debug("UDP send failed: %r", e)  # datagrams may be lost

    async def down(cancel: trio.CancelScope) -> None:
        while True:
            try:
                data, addr = await link.receive_from(65536)
            except Exception as e:
                log.debug("UDP receive failed: %r", e)
                cancel.cancel()
                return
            try:
                tsock.send_nowait(pack_addr(addr) + bytes(data))
            except BlockingIOError:
                pass  # receive queue full: drop, as UDP does
            except OSError:
                cancel.cancel()
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(up, nursery.cancel_scope)
        nursery.start_soon(down, nursery.cancel_scope)


@_guarded
async def pump_dgram(conn: Conn, pair_end: _stdsocket.socket) -> None:
    """UDP pump: each datagram on the (SOCK_SEQPACKET) pair is framed with the peer's
    address; the user's close reads as EOF, as on a stream."""
    tsock = _Pair(pair_end)
    link = conn.link
    assert link is not None, "spawned by _wiz_start, with the link"
    try:
        await _run_dgram(tsock, link)
    finally:
        conn.state = "closed"
        await close_link(link)
        tsock.close()
        conn.finished.set()


async def _run_listener(conn: Conn, tsock: _Pair, queue: AcceptQueue,
                        accept_one: Callable[[], Awaitable[Any]]) -> None:
    """Queue what ``accept_one()`` gives, one byte on the pair for each, until the user
    closes the listening socket or accepting fails."""
    async def accept_loop(cancel: trio.CancelScope) -> None:
        while True:
            try:
                item = await accept_one()
            except Exception as e:
                log.debug("accept failed: %r", e)
                conn.fail(e)
                cancel.cancel()
                return
            queue.append(item)
            try:
                await tsock.send(b"\1")
            except OSError:
                cancel.cancel()
                return

    async def closed_watch(cancel: trio.CancelScope) -> None:
        while True:
            try:
                data = await tsock.recv(1024)
            except OSError:
                data = b""
            if not data:
                cancel.cancel()
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept_loop, nursery.cancel_scope)
        nursery.start_soon(closed_watch, nursery.cancel_scope)


@_guarded
async def pump_listener(conn: Conn, pair_end: _stdsocket.socket, server: Any, queue: AcceptQueue) -> None:
    """Accept loop for a module server: each accepted link is queued and one byte signals it."""
    tsock = _Pair(pair_end)
    try:
        await _run_listener(conn, tsock, queue, server.accept)
    finally:
        conn.state = "closed"
        with trio.CancelScope(shield=True):
            with trio.move_on_after(0 if _engine_closing() else 10):
                try:
                    await server.aclose()
                except Exception as e:
                    log.debug("closing server: %r", e)
            while queue:
                await close_link(queue.pop())
        tsock.close()
        conn.finished.set()


# --------------------------------------------------------------------------------------
# Idle-link reclaim (opt-in): the module has five links and no way to queue a sixth
# connection; a keep-alive pool (requests.Session, aiohttp) that has talked to five
# hosts holds them all while idle.  With RECLAIM_IDLE, a connect that finds every link
# busy first closes the longest-idle connection that has nothing in flight and whose
# last bytes came from the peer (a request/response exchange that is over: a
# connection whose request awaits its answer is never taken), as its peer could have
# at any time: the user reads EOF, and pools then reconnect.

#: close the longest-idle connection when a connect finds all links busy
RECLAIM_IDLE = os.environ.get("WIZSOCK_RECLAIM_IDLE", "") not in ("", "0", "no", "false")
#: a connection counts as idle after this many seconds without a byte either way
RECLAIM_MIN_IDLE = 0.2

_streams: "weakref.WeakSet[Conn]" = weakref.WeakSet()


def _queued(sock: _stdsocket.socket) -> int:
    """Bytes waiting in either direction of our end of the pair."""
    fd = sock.fileno()
    if fd < 0:
        return 1
    buf = bytearray(4)
    try:
        fcntl.ioctl(fd, termios.FIONREAD, buf)     # the user wrote, we did not read
        inq = int.from_bytes(buf, "little")
        fcntl.ioctl(fd, termios.TIOCOUTQ, buf)     # we wrote, the user did not read
        outq = int.from_bytes(buf, "little")
    except OSError:
        return 1
    return inq + outq


def idle_candidate(module_aio: object) -> Optional[Conn]:
    """The longest-idle module connection with nothing unread, unsent or unacknowledged."""
    now = trio.current_time()
    best: Optional[Conn] = None
    for conn in list(_streams):
        link = conn.link
        if conn.module is None or getattr(conn.module, "aio", None) is not module_aio:
            continue
        if link is None or link.closed or conn.remote_closed or conn.reclaimed \
                or conn.cancel_scope is None or conn.pair_end is None:
            continue
        if link.buffered or link.unsent or _queued(conn.pair_end) or conn.awaiting_reply:
            continue   # data in flight, or a request that has not been answered yet
        if now - conn.last_active < RECLAIM_MIN_IDLE:
            continue
        if best is None or conn.last_active < best.last_active:
            best = conn
    return best


async def reclaim_while_waiting(module_aio: Any, max_links: int = 5) -> None:
    """Run beside a connect waiting for a link: whenever every link is held and none
    is being reclaimed already, close the longest-idle one (see RECLAIM_IDLE)."""
    while True:
        if len(module_aio.net.links) >= max_links and not _reclaiming:
            reclaim_idle(module_aio)
        await trio.sleep(0.1)


_reclaiming: "weakref.WeakSet[Conn]" = weakref.WeakSet()   # reclaimed, link not yet freed


def reclaim_idle(module_aio: object) -> None:
    conn = idle_candidate(module_aio)
    if conn is None:
        return
    _reclaiming.add(conn)
    log.info("all links busy and a connect waits: closing idle link %s to %s (idle %.1f s)",
             getattr(conn.link, "id", "?"), conn.remote, trio.current_time() - conn.last_active)
    conn.reclaimed = True
    conn.remote_closed = True
    assert conn.cancel_scope is not None   # idle_candidate() takes only running copy loops
    conn.cancel_scope.cancel()


# --------------------------------------------------------------------------------------
# Relays: the other end of the pair served by a kernel socket, on a private trio loop
# (independent of any module: loopback keeps working whatever the engine does)


class _RelayLoop:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: Optional[trio.lowlevel.TrioToken] = None
        self._nursery: Optional[trio.Nursery] = None

    def spawn(self, fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        with self._lock:
            if self._token is None:
                self._start()
        assert self._token is not None and self._nursery is not None   # _start() waited for both
        self._token.run_sync_soon(self._nursery.start_soon, fn, *args)

    def _start(self) -> None:
        ready = threading.Event()

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._token = trio.lowlevel.current_trio_token()
                ready.set()
                await trio.sleep_forever()

        def thread() -> None:
            _orig.mark_internal()
            trio.run(main)

        threading.Thread(target=thread, name="wizsock-relay", daemon=True).start()
        ready.wait()


_relay_loop = _RelayLoop()


def relay_spawn(fn: Callable[..., Awaitable[object]], *args: Any) -> None:
    """Run a relay task (fn(conn, pair_end, ...)) on the relay loop."""
    _relay_loop.spawn(fn, *args)


def _close_kernel(ksock: _stdsocket.socket) -> None:
    if ksock.fileno() >= 0:
        try:
            trio.lowlevel.notify_closing(ksock)
        except Exception:
            pass
        ksock.close()


def _relay_guarded(fn: _Task[Concatenate[_stdsocket.socket, _P]]) -> _Task[Concatenate[_stdsocket.socket, _P]]:
    """_guarded, closing the kernel socket too before the connection counts as
    finished (a listener's port is free when close() returns)."""
    @functools.wraps(fn)
    async def body(conn: Conn, pair_end: _stdsocket.socket, ksock: _stdsocket.socket, /,
                   *args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            await fn(conn, pair_end, ksock, *args, **kwargs)
        finally:
            _close_kernel(ksock)
            conn.finished.set()
    return _guarded(body)


class _KernelFar:
    """A relayed kernel socket, with the part of the Link interface the copy loops use."""

    remote: Optional[Address] = None

    def __init__(self, ksock: _stdsocket.socket) -> None:
        self.sock = ksock
        self.pair = _Pair(ksock)

    async def send(self, data: bytes) -> None:
        await _send_all(self.pair, data)

    async def receive(self, max_bytes: int) -> bytes:
        return await self.pair.recv(max_bytes)

    def shutdown_write(self) -> None:
        try:
            self.sock.shutdown(_stdsocket.SHUT_WR)
        except OSError:
            pass

    async def send_to(self, data: bytes, addr: Address) -> None:
        await self.pair.sendto(data, addr)

    async def receive_from(self, max_bytes: int) -> tuple[bytes, Any]:
        while True:
            try:
                return await self.pair.recvfrom(max_bytes)
            except (BlockingIOError, InterruptedError):
                raise
            except OSError as e:
                # ICMP errors of a datagram socket come with the next receive: that
                # datagram is lost, the socket is not
                log.debug("relayed receive: %r", e)

    async def accept(self) -> tuple[int, Any]:
        while True:
            await trio.lowlevel.wait_readable(self.sock)
            try:
                s, addr = _orig.socket.accept(self.sock)
            except BlockingIOError:
                continue
            return s.detach(), addr


@_relay_guarded
async def relay_stream(conn: Conn, pair_end: _stdsocket.socket, ksock: _stdsocket.socket, junk: int = 0) -> None:
    """A TCP connection kept on the host, relayed; connects first if conn is 'connecting'."""
    tsock = _Pair(pair_end)
    far = _KernelFar(ksock)
    reset = False
    try:
        if conn.state == "connecting":
            await trio.lowlevel.wait_writable(ksock)
            err = ksock.getsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_ERROR)
            if err:
                conn.fail(OSError(err, os.strerror(err)))
                return
            conn.state = "connected"
            conn.local = ksock.getsockname()
            if not await _drain(tsock, junk):
                return
        reset = await _run_stream(conn, far, tsock)
    finally:
        conn.state = "failed" if conn.state == "failed" else "closed"
        if reset:
            conn.poke_user()
        tsock.close()


@_relay_guarded
async def relay_dgram(conn: Conn, pair_end: _stdsocket.socket, ksock: _stdsocket.socket) -> None:
    """A datagram socket kept on the host, relayed with the pair's address framing."""
    tsock = _Pair(pair_end)
    try:
        await _run_dgram(tsock, _KernelFar(ksock))
    finally:
        conn.state = "closed"
        tsock.close()


@_relay_guarded
async def relay_listener(conn: Conn, pair_end: _stdsocket.socket, ksock: _stdsocket.socket,
                         queue: AcceptQueue) -> None:
    """A kernel listener: each accepted connection (a descriptor and its address) is
    queued and one byte on the pair signals it; accept() hands out plain kernel sockets."""
    tsock = _Pair(pair_end)
    try:
        await _run_listener(conn, tsock, queue, _KernelFar(ksock).accept)
    finally:
        conn.state = "closed"
        while queue:
            try:
                os.close(queue.pop()[0])
            except OSError:
                pass
        tsock.close()
