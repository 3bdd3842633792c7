"""Byte transports between a host and the emulated UART: pty and TCP.

(The in-process transport is the pyserial URL handler in
`wizsock/urlhandler/protocol_wizemu.py`.)
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
import sys
import termios
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


#: termios speed codes -> baud rates (a rate without a code reads as BOTHER: TCGETS2)
_SPEEDS = {getattr(termios, name): int(name[1:]) for name in dir(termios)
           if name[:1] == "B" and name[1:].isdigit()}
_TCGETS2 = 0x802C542A          # Linux x86/arm: _IOR('T', 0x2A, struct termios2)


def line_rate(fd: int) -> Optional[int]:
    """The baud rate the host set on a pty (its termios output speed), or None when
    it cannot be read (then nothing is garbled)."""
    try:
        speed = termios.tcgetattr(fd)[5]
    except (termios.error, OSError):
        return None
    rate = _SPEEDS.get(speed)
    if rate or not sys.platform.startswith("linux"):
        return rate or None
    try:      # a custom rate (pyserial's BOTHER): struct termios2's c_ospeed
        buf = fcntl.ioctl(fd, _TCGETS2, bytes(44))
        return struct.unpack_from("I", buf, 40)[0] or None
    except OSError:
        return None


class _Writer:
    """Module output to an fd/socket that may push back (emulator thread only)."""

    def __init__(self, write: Optional[Callable[[bytes], int]] = None,
                 host_rate: Optional[Callable[[], Optional[int]]] = None) -> None:
        self.pending = bytearray()
        self.wake: Optional[trio.Event] = None
        # write(data) -> bytes taken (BlockingIOError: none): tried at once while
        # nothing waits, so a paced slice reaches the host without a task hop
        self.write = write
        # host_rate() -> the rate the host's UART is set to (None: unknown): output
        # at another rate reaches it garbled, as on a real line
        self.host_rate = host_rate

    def arm(self) -> None:
        """On the emulator thread, once its loop runs: waiters may wait from now on."""
        self.wake = trio.Event()

    LIMIT = 65536  # with no host on the line, the oldest bytes fall off (a UART drops them)

    def sink(self, data: bytes, baud: int) -> None:
        rate = self.host_rate() if self.host_rate is not None else None
        if rate is not None and rate != baud:
            data = garble(data, baud, rate)
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

    def _begin(self, emu: Emulator, write: Optional[Callable[[bytes], int]] = None,
               host_rate: Optional[Callable[[], Optional[int]]] = None) -> None:
        self.emu = emu
        self.writer = _Writer(write, host_rate)
        self.scope = None
        emu.call(self._start)

    async def _run(self) -> None:
        raise NotImplementedError

    def _start(self) -> None:
        self.scope = trio.CancelScope()
        self.writer.arm()
        self.emu.attach(self.writer.sink, self._unread())
        self.emu.nursery.start_soon(self._run)

    def _unread(self) -> Optional[Callable[[], int]]:
        """What the host has not read yet, where the transport can tell (None: it cannot)."""
        return None

    def _stop(self) -> None:
        try:
            if self.scope is not None:
                self.emu.call(self.scope.cancel)
        except Exception:
            pass


class PtyTransport(_Transport):
    """A pseudo-terminal in raw mode; pyserial opens `path` like /dev/ttyUSB0.

    With `strict_baud`, the speed the host gives the pty (termios) is its UART's
    rate: when it is not the module's, each side receives the other's bytes garbled
    (see `garble`), so a host at the wrong rate must find the module's as with real
    hardware.  Off by default: a host that never sets the pty's speed (38400 on a
    new pty) or that loses track of the module's rate -- a driver that does not
    follow the module's rate across an AT+RST -- keeps working."""

    def __init__(self, emu: Emulator, strict_baud: bool = False) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.strict_baud = strict_baud
        self._begin(emu, lambda data: os.write(self.master, data),
                    (lambda: line_rate(self.slave)) if strict_baud else None)

    def _unread(self) -> Optional[Callable[[], int]]:
        # the slave's input queue is what the host's reads take from (FIONREAD on
        # our own descriptor of the same tty)
        def unread() -> int:
            queued: int = struct.unpack("i", fcntl.ioctl(self.slave, termios.FIONREAD, b"\0\0\0\0"))[0]
            return len(self.writer.pending) + queued
        return unread

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
            rate = line_rate(self.slave) if self.strict_baud else None
            if rate is not None and rate != self.emu.baud:
                data = garble(data, rate, self.emu.baud)
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
