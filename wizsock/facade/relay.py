"""Relays: the other end of a facade socket's pair served by a kernel socket, for what
stays on the host (loopback, the routing policy), on a private trio loop in thread
``wizsock-relay`` (independent of any module: loopback keeps working whatever the engine does)."""
from __future__ import annotations

import functools
import logging
import os
import socket as _stdsocket
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, Optional, ParamSpec

import trio

from wizsock import _orig
from wizsock.facade.conn import AcceptQueue, Address, Conn
from wizsock.facade.pair import Pair, send_all
from wizsock.facade.pumps import Task, drain, guarded, run_dgram, run_listener, run_stream

log = logging.getLogger("wizsock.socket")

_P = ParamSpec("_P")


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


def _relay_guarded(fn: Task[Concatenate[_stdsocket.socket, _P]]) -> Task[Concatenate[_stdsocket.socket, _P]]:
    """guarded, closing the kernel socket too before the connection counts as
    finished (a listener's port is free when close() returns)."""
    @functools.wraps(fn)
    async def body(conn: Conn, pair_end: _stdsocket.socket, ksock: _stdsocket.socket, /,
                   *args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            await fn(conn, pair_end, ksock, *args, **kwargs)
        finally:
            _close_kernel(ksock)
            conn.finished.set()
    return guarded(body)


class _KernelFar:
    """A relayed kernel socket, with the part of the Link interface the copy loops use."""

    remote: Optional[Address] = None

    def __init__(self, ksock: _stdsocket.socket) -> None:
        self.sock = ksock
        self.pair = Pair(ksock)

    async def send(self, data: bytes) -> None:
        await send_all(self.pair, data)

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
    tsock = Pair(pair_end)
    far = _KernelFar(ksock)
    reset = False
    try:
        if conn.state == "connecting":
            await trio.lowlevel.wait_writable(ksock)
            err = ksock.getsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_ERROR)
            if err:
                conn.fail(OSError(err, os.strerror(err)))
                return
            conn.connected(local=ksock.getsockname())
            if not await drain(tsock, junk):
                return
        reset = await run_stream(conn, far, tsock)
    finally:
        conn.ended()
        if reset:
            conn.poke_user()
        tsock.close()


@_relay_guarded
async def relay_dgram(conn: Conn, pair_end: _stdsocket.socket, ksock: _stdsocket.socket) -> None:
    """A datagram socket kept on the host, relayed with the pair's address framing."""
    tsock = Pair(pair_end)
    try:
        await run_dgram(tsock, _KernelFar(ksock))
    finally:
        conn.closed()
        tsock.close()


@_relay_guarded
async def relay_listener(conn: Conn, pair_end: _stdsocket.socket, ksock: _stdsocket.socket,
                         queue: AcceptQueue) -> None:
    """A kernel listener: each accepted connection (a descriptor and its address) is
    queued and one byte on the pair signals it; accept() hands out plain kernel sockets."""
    tsock = Pair(pair_end)
    try:
        await run_listener(conn, tsock, queue, _KernelFar(ksock).accept)
    finally:
        conn.closed()
        while queue:
            try:
                os.close(queue.pop()[0])
            except OSError:
                pass
        tsock.close()
