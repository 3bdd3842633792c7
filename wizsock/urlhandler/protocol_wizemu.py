"""pyserial URL handler `wizemu://[name][?baud=N&rtt=MS&world=F&flash=F&faults=SPEC&seed=N&boot=S&pace_input=0&jitter=MS&segment_limit=N&quirks=A,B&profile=F]`.

`wizemu://` starts a private emulator for this port (stopped at close);
`wizemu://<name>` attaches to a running `wizsock.emulator.Emulator` of that name.
The port models a UART: if the host's `baudrate` differs from the module's
current rate, both directions turn to garbage; `rts=False` stops the module's
output while AT+UART_CUR flow control is on.

The wire is one end of an AF_UNIX socket pair: `fileno()` is the host's end,
so an event loop (the engine's) reads and writes it directly, as it does a tty;
tasks on the emulator's own loop serve the far end (module output paced by the
emulator goes in, host bytes come out to `Emulator.feed`).  The host's end is
non-blocking; `read`/`write` here wait on it with `select` for pyserial users.
"""
from __future__ import annotations

import fcntl
import os
import select
import socket
import struct
import termios
import time
import urllib.parse
from typing import Any, Optional

import serial
import trio
from serial import PortNotOpenError, SerialBase, SerialException, SerialTimeoutException

from wizsock.emulator.transports import garble


class Serial(SerialBase):
    is_open: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._emu: Any = None
        self._own = False
        self._host: Optional[socket.socket] = None
        self._far: Optional[socket.socket] = None
        self._abort_r = self._abort_w = -1
        # emulator thread only: module output the socket could not take yet
        self._pending = bytearray()
        self._far_wake: Optional[trio.Event] = None
        self._far_scope: Optional[trio.CancelScope] = None
        self._far_stopped = False
        super().__init__(*args, **kwargs)

    # ---------------------------------------------------------------- open
    def open(self) -> None:
        if self.port is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise SerialException("Port is already open.")
        from wizsock.emulator import core

        url = urllib.parse.urlsplit(self.port)
        if url.scheme != "wizemu":
            raise SerialException(f"expected a wizemu:// URL, got {self.port!r}")
        name = url.netloc + url.path.strip("/")
        opts = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        known = {"baud", "rtt", "world", "flash", "faults", "seed", "boot", "log", "pace_input", "jitter", "segment_limit",
                 "quirks", "profile"}
        unknown = set(opts) - known
        if unknown:
            raise SerialException(f"unknown wizemu option(s): {', '.join(sorted(unknown))}")
        if name:
            emu = core.find(name)
            if emu is None:
                raise SerialException(f"no running emulator named {name!r}")
            self._own = False
        else:
            try:
                emu = core.Emulator(
                    world=opts.get("world"), flash=opts.get("flash"),
                    rtt=float(opts.get("rtt", 0)) / 1000.0,
                    baudrate=int(opts.get("baud") or self.baudrate),
                    faults=opts.get("faults"),
                    seed=int(opts["seed"]) if "seed" in opts else None,
                    boot_delay=float(opts.get("boot", 0.05)),
                    log_traffic=opts.get("log") in ("1", "true", "yes"),
                    pace_input=opts.get("pace_input", "1") not in ("0", "false", "no"),
                    jitter=float(opts.get("jitter", 0)) / 1000.0, segment_limit=int(opts.get("segment_limit", 65535)),
                    quirks=opts.get("quirks"), profile=opts.get("profile"),
                )
            except (OSError, ValueError) as e:   # a bad quirk name, an unreadable profile
                raise SerialException(f"wizemu: {e}") from None
            emu.start()
            self._own = True
        self._host, self._far = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._host.setblocking(False)
        self._far.setblocking(False)
        self._abort_r, self._abort_w = os.pipe()
        os.set_blocking(self._abort_r, False)
        self._emu = emu
        self._far_wake = trio.Event()
        self._far_stopped = False
        try:
            # not emu.call: the port may be opened from a thread running trio
            emu.call_soon(self._start_far_end, emu)
        except BaseException:
            self._far.close()
            self._close_fds()
            if self._own:
                emu.stop()
            raise
        emu.attach(self._sink, self._unread)
        self.is_open = True
        self._update_rts_state()

    def _reconfigure_port(self, force_update: bool = False) -> None:
        pass  # a baud rate change is seen by the far end through self.baudrate

    def close(self) -> None:
        if not self.is_open:
            return
        self.is_open = False
        emu, self._emu = self._emu, None
        if emu is not None:
            emu.detach(self._sink)
            try:
                emu.call_soon(self._stop_far_end)
            except (trio.RunFinishedError, AttributeError):
                # the emulator's loop is gone: nothing waits on the far end now
                if self._far is not None:
                    self._far.close()
            if self._own:
                emu.stop()
        self._close_fds()

    def _close_fds(self) -> None:
        # the far end belongs to the emulator's loop, which closes it (a task may
        # be waiting on it there)
        if self._host is not None:
            self._host.close()
        for fd in (self._abort_r, self._abort_w):
            if fd >= 0:
                os.close(fd)
        self._abort_r = self._abort_w = -1

    @property
    def emulator(self) -> Any:
        return self._emu

    def fileno(self) -> int:
        """The host's end of the wire (non-blocking), for an event loop to wait on."""
        if not self.is_open or self._host is None:
            raise PortNotOpenError()
        return self._host.fileno()

    # ------------------------------------------------ the far end (emulator thread)
    def _start_far_end(self, emu: Any) -> None:
        # emu is passed in, not read from self: close() in the host's thread may
        # already have cleared self._emu while this call waited in the loop's queue
        if self._far_stopped:            # closed before the loop got here
            return
        self._far_scope = trio.CancelScope()
        try:
            emu.nursery.start_soon(self._far_end)
        except RuntimeError:             # the emulator is stopping
            self._stop_far_end()

    def _stop_far_end(self) -> None:
        self._far_stopped = True
        if self._far_scope is not None:
            self._far_scope.cancel()
        else:
            assert self._far is not None
            self._far.close()

    async def _far_end(self) -> None:
        far = self._far
        assert far is not None and self._far_scope is not None
        try:
            with self._far_scope:
                async with trio.open_nursery() as n:
                    n.start_soon(self._far_flusher, far)
                    await self._far_reader(far)
                    n.cancel_scope.cancel()
        finally:
            trio.lowlevel.notify_closing(far)
            far.close()

    async def _far_reader(self, far: socket.socket) -> None:
        """Host -> module: what the host wrote, as the module's UART receives it."""
        emu = self._emu
        while True:
            await trio.lowlevel.wait_readable(far)
            try:
                data = far.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                return
            if not data:
                return               # the host's end was closed
            if emu.baud != self.baudrate:
                # at the wrong rate the module receives garbage
                data = garble(data, self.baudrate, emu.baud)
            emu.feed(data)

    async def _far_flusher(self, far: socket.socket) -> None:
        """Module output the socket's buffer could not take at once (a host not reading)."""
        while True:
            while self._pending:
                await trio.lowlevel.wait_writable(far)
                try:
                    n = far.send(self._pending)
                except BlockingIOError:
                    continue
                except OSError:
                    self._pending.clear()
                    return
                del self._pending[:n]
            assert self._far_wake is not None
            await self._far_wake.wait()
            self._far_wake = trio.Event()

    def _unread(self) -> int:  # emulator thread: module output the host has not read yet
        far = self._far
        if far is None:
            return 0
        # an AF_UNIX sender's queue holds a segment until the receiver has read it
        queued: int = struct.unpack("i", fcntl.ioctl(far.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        return len(self._pending) + queued

    def _sink(self, data: bytes, baud: int) -> None:  # emulator thread, paced output
        if baud != self.baudrate:
            data = garble(data, baud, self.baudrate)
        far = self._far
        if far is None:
            return
        if self._pending:                # keep the order: behind what waits already
            self._pending += data
            return
        try:
            n = far.send(data)
        except BlockingIOError:
            n = 0
        except OSError:                  # closed meanwhile
            return
        if n < len(data):
            self._pending += data[n:]
            if self._far_wake is not None:
                self._far_wake.set()

    # ------------------------------------------------ the host's end (pyserial API)
    def _sock(self) -> socket.socket:
        if not self.is_open or self._host is None:
            raise PortNotOpenError()
        return self._host

    @property
    def in_waiting(self) -> int:
        sock = self._sock()
        buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        return int(struct.unpack("I", buf)[0])

    def read(self, size: int = 1) -> bytes:
        sock = self._sock()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        out = bytearray()
        while len(out) < size:
            try:
                chunk = sock.recv(size - len(out))
            except BlockingIOError:
                chunk = None
            except OSError as exc:
                if not self.is_open:
                    break
                raise SerialException(f"wizemu read failed: {exc}") from exc
            if chunk == b"":
                break                    # the emulator went away
            if chunk:
                out += chunk
                continue
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            try:
                ready, _, _ = select.select([sock.fileno(), self._abort_r], [], [], left)
            except (OSError, ValueError):    # closed by another thread
                break
            if self._abort_r in ready:
                try:
                    os.read(self._abort_r, 1000)
                except BlockingIOError:
                    pass
                break
            if not ready:
                break
        return bytes(out)

    def write(self, data: Any) -> int:
        sock = self._sock()
        data = serial.to_bytes(data)  # type: ignore[attr-defined]  # pyserial has it; types-pyserial lacks it
        view = memoryview(data)
        deadline = (None if self.write_timeout is None
                    else time.monotonic() + self.write_timeout)
        while view:
            try:
                view = view[sock.send(view):]
                continue
            except BlockingIOError:
                pass
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise SerialTimeoutException("Write timeout")
            select.select([], [sock], [], left)
        return len(data)

    def flush(self) -> None:
        pass

    def reset_input_buffer(self) -> None:
        sock = self._sock()
        while True:
            try:
                if not sock.recv(65536):
                    return
            except (BlockingIOError, OSError):
                return

    def reset_output_buffer(self) -> None:
        pass

    def cancel_read(self) -> None:
        if self._abort_w >= 0:
            os.write(self._abort_w, b"x")

    def cancel_write(self) -> None:
        pass

    def _update_rts_state(self) -> None:
        if self._emu is not None:
            self._emu.set_rts(self.rts)

    def _update_dtr_state(self) -> None:
        pass

    def _update_break_state(self) -> None:
        pass

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True
