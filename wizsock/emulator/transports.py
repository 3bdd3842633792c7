"""Byte transports between a host and the emulated UART: pty and TCP.

(The in-process transport is the pyserial URL handler in
`wizsock/urlhandler/protocol_wizemu.py`.)
"""
from __future__ import annotations

import errno
import os
import socket
import tty
from typing import TYPE_CHECKING, Callable, Optional, Tuple

import trio

if TYPE_CHECKING:
    from wizsock.emulator.core import Emulator


def garble(data: bytes, sender_baud: int, receiver_baud: int) -> bytes:
    """What a UART receiver at the wrong rate makes of `data`: framing errors.

    The byte count scales with the rate ratio and every byte comes out with the
    high bit set, so nothing readable (no "OK") can survive the mismatch.
    """
    if not data:
        return b""
    n = max(1, int(round(len(data) * receiver_baud / sender_baud)))
    out = bytearray(n)
    for i in range(n):
        b = data[min(len(data) - 1, i * len(data) // n)]
        out[i] = ((b * 167 + i * 29 + 0x5B) & 0x7F) | 0x80
    return bytes(out)


class _Writer:
    """Module output to an fd/socket that may push back (emulator thread only)."""

    def __init__(self, write: Optional[Callable[[bytes], int]] = None) -> None:
        self.pending = bytearray()
        self.wake: Optional[trio.Event] = None
        # write(data) -> bytes taken (BlockingIOError: none): tried at once while
        # nothing waits, so a paced slice reaches the host without a task hop
        self.write = write

    def arm(self) -> None:
        """On the emulator thread, once its loop runs: waiters may wait from now on."""
        self.wake = trio.Event()

    LIMIT = 65536  # with no host on the line, the oldest bytes fall off (a UART drops them)

    def sink(self, data: bytes, baud: int) -> None:
        if self.write is not None and not self.pending:
            try:
                data = data[self.write(data):]
            except BlockingIOError:
                pass
            except OSError:      # no host on the line (pty slave closed): the flusher decides
                pass
            if not data:
                return
        self.pending += data
        if len(self.pending) > self.LIMIT:
            del self.pending[:len(self.pending) - self.LIMIT]
        if self.wake is not None:
            self.wake.set()

    async def wait(self) -> None:
        while not self.pending:
            assert self.wake is not None     # set by _Transport._start
            await self.wake.wait()
            self.wake = trio.Event()


class _Transport:
    """Runs `_run` in the emulator's nursery, fed by the module's output through a
    _Writer; `_stop` cancels it from any thread."""

    scope: Optional[trio.CancelScope]

    def _begin(self, emu: Emulator, write: Optional[Callable[[bytes], int]] = None) -> None:
        self.emu = emu
        self.writer = _Writer(write)
        self.scope = None
        emu.call(self._start)

    async def _run(self) -> None:
        raise NotImplementedError

    def _start(self) -> None:
        self.scope = trio.CancelScope()
        self.writer.arm()
        self.emu.attach(self.writer.sink)
        self.emu.nursery.start_soon(self._run)

    def _stop(self) -> None:
        try:
            if self.scope is not None:
                self.emu.call(self.scope.cancel)
        except Exception:
            pass


class PtyTransport(_Transport):
    """A pseudo-terminal in raw mode; pyserial opens `path` like /dev/ttyUSB0."""

    def __init__(self, emu: Emulator) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self._begin(emu, lambda data: os.write(self.master, data))

    async def _run(self) -> None:
        assert self.scope is not None
        with self.scope:
            async with trio.open_nursery() as n:
                n.start_soon(self._reader)
                n.start_soon(self._flusher)

    async def _reader(self) -> None:
        while True:
            await trio.lowlevel.wait_readable(self.master)
            try:
                data = os.read(self.master, 65536)
            except BlockingIOError:
                continue
            except OSError as e:  # EIO: no process has the slave open right now
                await trio.sleep(0.05 if e.errno == errno.EIO else 0.5)
                continue
            self.emu.feed(data)

    async def _flusher(self) -> None:
        w = self.writer
        while True:
            await w.wait()
            try:
                n = os.write(self.master, w.pending)
                del w.pending[:n]
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self.master)

    def close(self) -> None:
        self._stop()
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class TcpTransport(_Transport):
    """A TCP listener; pyserial opens it as socket://HOST:PORT (one host at a time)."""

    def __init__(self, emu: Emulator, host: str = "127.0.0.1", port: int = 0) -> None:
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(1)
        self.address: Tuple[str, int] = self.sock.getsockname()[:2]
        self._begin(emu)

    async def _run(self) -> None:
        assert self.scope is not None
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(self.sock))
        with self.scope:
            conn_scope: Optional[trio.CancelScope] = None
            async with trio.open_nursery() as n:
                while True:
                    stream = await listener.accept()
                    if conn_scope is not None:
                        conn_scope.cancel()  # a new host replaces the old one
                    conn_scope = trio.CancelScope()
                    n.start_soon(self._serve, stream, conn_scope)

    async def _serve(self, stream: trio.SocketStream, scope: trio.CancelScope) -> None:
        w = self.writer
        w.pending.clear()
        with scope:
            try:
                async with trio.open_nursery() as n:
                    n.start_soon(self._flush, stream)
                    while True:
                        data = await stream.receive_some(65536)
                        if not data:
                            break
                        self.emu.feed(data)
                    n.cancel_scope.cancel()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
        await trio.aclose_forcefully(stream)

    async def _flush(self, stream: trio.SocketStream) -> None:
        w = self.writer
        while True:
            await w.wait()
            data = bytes(w.pending)
            w.pending.clear()
            await stream.send_all(data)

    def close(self) -> None:
        self._stop()
        try:
            self.sock.close()
        except OSError:
            pass
