"""Pumps: trio tasks on the engine's loop that serve the other end of a facade socket's
AF_UNIX pair from a module link or server, and the copy loops the relays share.

A facade socket is, from its creation, one end of an AF_UNIX socketpair (the
descriptor the program sees never changes, so its epoll/selector/asyncio/trio
registrations stay valid).  These tasks own the other end and serve it:

* ``pump_stream`` / ``pump_dgram`` / ``pump_listener`` (on the engine's loop): a
  module link or server;
* ``relay_stream`` / ``relay_dgram`` / ``relay_listener`` (:mod:`wizsock.facade.relay`):
  a kernel socket, for what stays on the host (loopback, the routing policy).

Everything the kernel does for the user's end (blocking, timeouts, non-blocking
mode, select/poll/epoll, ssl) then works unchanged.

Signals back to the user's end, all through the kernel:

* remote close      -> ``shutdown(SHUT_WR)`` on our end: the user reads the rest, then ``b""``;
* reset / failure   -> close our end with unread data in its receive queue: the
                       user's next ``recv`` raises ``ConnectionResetError``;
* user close        -> our end reads EOF (and POLLHUP) -> the link is closed.
* idle link reclaimed (opt-in, :mod:`wizsock.facade.reclaim`) -> as a remote close.
"""
from __future__ import annotations

import errno
import functools
import logging
import socket as _stdsocket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, Optional, ParamSpec, Protocol

import trio

from wizsock.facade import reclaim
from wizsock.facade.conn import AcceptQueue, Address, Conn, Link
from wizsock.facade.seams import FacadeServer
from wizsock.facade.pair import ADDR_LEN, Pair, hung_up, pack_addr, send_all, unpack_addr

log = logging.getLogger("wizsock.socket")

CHUNK = 8192          # bytes read from the pair per link.send (the engine splits at 2048)
HALF_CLOSE_POLL = 0.05


_P = ParamSpec("_P")

#: a pump or relay task: ``fn(conn, our end of the pair, ...)``
Task = Callable[Concatenate["Conn", _stdsocket.socket, _P], Coroutine[Any, Any, None]]


class Far(Protocol):
    """What the copy loops use of the far side: a module link, or a relayed kernel socket."""

    @property
    def remote(self) -> Optional[Address]: ...
    async def send(self, data: bytes) -> None: ...
    async def receive(self, max_bytes: int) -> bytes: ...
    async def send_to(self, data: bytes, addr: Address) -> None: ...
    async def receive_from(self, max_bytes: int) -> tuple[bytes, Any]: ...

def guarded(fn: Task[_P]) -> Task[_P]:
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

def engine_closing() -> bool:
    """Our task was cancelled because the engine itself is shutting down (a pump is only
    ever cancelled from outside by the engine's nursery)."""
    return trio.current_effective_deadline() == float("-inf")

async def close_link(link: Optional[Link]) -> None:
    if link is None:
        return
    if engine_closing():
        return  # the engine closes its links itself
    log.debug("closing link %r", link)
    with trio.CancelScope(shield=True):
        with trio.move_on_after(10):
            try:
                await link.aclose()
            except Exception as e:  # the link may already be gone (reset, remote close)
                log.debug("closing link: %r", e)

def _remote_closed_after_send(link: Far, exc: BaseException) -> bool:
    """The peer closed (CLOSED) while segments were still unacknowledged: the engine
    fails the link with SendFailed.  A peer that answers and closes (HTTP
    ``Connection: close``) does exactly that, and the kernel would give EOF: so do we."""
    from wizsock import errors

    return isinstance(exc, errors.SendFailed) and bool(getattr(link, "module_closed", False))

async def _wait_user_gone(tsock: Pair) -> None:
    """After the user's half-close, wait until its end is fully closed."""
    while not hung_up(tsock.fileno()):
        await trio.sleep(HALF_CLOSE_POLL)

async def drain(tsock: Pair, n: int) -> bool:
    """Read and discard the n bytes the user end was pre-filled with (connect pending)."""
    while n > 0:
        data = await tsock.recv(min(n, 65536))
        if not data:
            return False
        n -= len(data)
    return True

@guarded
async def pump_stream(conn: Conn, pair_end: _stdsocket.socket,
                      open_fn: Optional[Callable[[], Awaitable[Link]]] = None, junk: int = 0) -> None:
    """TCP (and module-SSL) pump.  With open_fn, the connect happens here (non-blocking connect)."""
    tsock = Pair(pair_end)
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
            conn.connected(link)
            if not await drain(tsock, junk):
                return  # the user closed before the connect finished
        reset = await run_stream(conn, link, tsock)
    finally:
        conn.ended()
        closing_engine = engine_closing()
        await close_link(link)
        reclaim.finished(conn)
        if reset or (closing_engine and link is not None):
            conn.poke_user()   # the module went away under the connection: a reset
        tsock.close()
        conn.finished.set()

async def run_stream(conn: Conn, link: Far, tsock: Pair) -> bool:
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
            conn.moved(from_user=True)
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
                conn.peer_closed()
                try:
                    tsock.shutdown(_stdsocket.SHUT_WR)
                except OSError:
                    pass
                if conn.shut_wr:
                    cancel.cancel()  # both directions are done
                return
            conn.moved(from_user=False)
            try:
                await send_all(tsock, data)
            except OSError:
                if conn.shut_rd:
                    continue
                cancel.cancel()  # the user closed its end
                return

    conn.copy_started(tsock.sock)
    reclaim.watch(conn)
    try:
        async with trio.open_nursery() as nursery:
            conn.copy_running(nursery.cancel_scope)
            nursery.start_soon(up, nursery.cancel_scope)
            nursery.start_soon(down, nursery.cancel_scope)
    finally:
        reclaim.unwatch(conn)
        conn.copy_ended()
    return outcome["reset"] and not conn.reclaimed

async def run_dgram(tsock: Pair, link: Far) -> None:
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

@guarded
async def pump_dgram(conn: Conn, pair_end: _stdsocket.socket) -> None:
    """UDP pump: each datagram on the (SOCK_SEQPACKET) pair is framed with the peer's
    address; the user's close reads as EOF, as on a stream."""
    tsock = Pair(pair_end)
    link = conn.link
    assert link is not None, "spawned by _wiz_start, with the link"
    try:
        await run_dgram(tsock, link)
    finally:
        conn.closed()
        await close_link(link)
        tsock.close()
        conn.finished.set()

async def run_listener(conn: Conn, tsock: Pair, queue: AcceptQueue,
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

@guarded
async def pump_listener(conn: Conn, pair_end: _stdsocket.socket, server: FacadeServer, queue: AcceptQueue) -> None:
    """Accept loop for a module server: each accepted link is queued and one byte signals it."""
    tsock = Pair(pair_end)
    try:
        await run_listener(conn, tsock, queue, server.accept)
    finally:
        conn.closed()
        with trio.CancelScope(shield=True):
            with trio.move_on_after(0 if engine_closing() else 10):
                try:
                    await server.aclose()
                except Exception as e:
                    log.debug("closing server: %r", e)
            while queue:
                await close_link(queue.pop())
        tsock.close()
        conn.finished.set()
