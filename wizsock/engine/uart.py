"""The port: the engine's I/O on the UART (docs/design.md, the driver).

Owns the descriptor I/O (the reader task reading from the event loop, or a worker
thread for a port without a descriptor), the gathering pause on a flowing stream, the
framer feed, every write to the port (commands and the payload written the moment
its ``>`` is read), RTS hysteresis (flow control) and following an AT+UART_CUR.
"""
from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Dict, Optional

import trio

from .. import errors as E
from .. import protocol as P
from ..framer import Event
from .base import Buffer, EngineBase, log, wire_log
from .redaction import redact_event
from .session import Command

READ_MAX = 1 << 16         # bytes per read of the port
DRAIN_MAX = 1 << 18        # bytes the reader takes per wake-up before letting others run
WRITE_TIMEOUT = 30.0       # a write the port does not take in this long fails (CTS held off)
#: the reader's gathering pause on a flowing stream (see Engine._read_loop_fd)
COALESCE_MIN = 256         # a read at least this long means a stream is flowing
COALESCE_BYTES = 8192      # gather about this much wire time (a tty holds 64 KiB before it drops)
COALESCE_MAX = 0.040       # ... but never pause longer than this


def port_fd(port: Any) -> Optional[int]:
    """The descriptor the engine reads and writes itself, or None (worker threads then).

    pyserial's ttys/ptys and ``socket://`` expose theirs through ``fileno()``, as
    ``wizemu://`` does.  Only when the class that implements ``read`` and ``write``
    is the one that gives the descriptor: a wrapper that overrides them (``spy://``
    logs the traffic) must keep seeing every byte.  POSIX only (on Windows
    ``os.read`` cannot read a socket handle)."""
    if os.name != "posix":
        return None
    cls = type(port)

    def owner(name: str) -> Optional[type]:
        return next((k for k in cls.__mro__ if name in vars(k)), None)

    if owner("fileno") is None or not (owner("fileno") is owner("read") is owner("write")):
        return None
    try:
        fd = port.fileno()
    except (OSError, ValueError, AttributeError):   # io.UnsupportedOperation is an OSError
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


class PortIO(EngineBase):
    """The port's I/O (see the module docstring)."""

    if TYPE_CHECKING:   # provided by the layers above (engine.core.Engine)
        _EFFECTS: ClassVar[Dict[type, Callable[..., None]]]
        def _dispatch(self, ev: Event) -> None: ...
        def _fail_everything(self, err: BaseException) -> None: ...


    def close_port(self) -> None:
        if self._trace is not None:
            self._trace.close()
        if self._port is not None:
            try:
                self._port.close()
            except Exception:  # pragma: no cover
                pass

    # ------------------------------------------------------------------ reading
    def _read_some(self) -> bytes:
        port = self._port
        data: bytes = port.read(1)
        if data:
            n = port.in_waiting
            if n:
                data += port.read(min(n, READ_MAX))
        return data

    async def _reader(self) -> None:
        try:
            with self._reader_scope:
                if self._fd is not None:
                    await self._read_loop_fd(self._fd)
                else:
                    await self._read_loop()
        finally:
            self._reader_done.set()

    async def _read_loop_fd(self, fd: int) -> None:
        """Read the port's descriptor from the event loop: no thread, everything available.

        Wait, then read until the port has nothing more (a tty hands over at most
        4095 bytes per read: one read would cap the reader at that much per
        wake-up, and a reader that fell behind would never catch up).  pyserial sets
        a tty to VMIN=0/VTIME=0, where a read with nothing pending returns b""
        rather than EAGAIN, so only an empty first read of a descriptor reported
        readable means the end (a tty hung up, USB unplugged, the peer of
        ``socket://`` closed), as pyserial itself decides.

        While a stream flows in (COALESCE_MIN bytes or more in a pass) and no
        command waits for its answer, the reader then lets up to COALESCE_MAX
        seconds of it gather: one wake-up per few KB rather than one per 2 ms
        slice the UART driver hands over.  Any write ends the pause (its answer
        is awaited)."""
        while not self._closing:
            await trio.lowlevel.wait_readable(fd)
            total = 0
            while total < DRAIN_MAX:
                try:
                    data = os.read(fd, READ_MAX)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if not self._closing:
                        self._port_failed(exc)
                    return
                if not data:
                    if total or self._taken_early:
                        break          # drained (a tty answers b"" when empty), or by
                                       # _read_pending between our wake-up and this read
                    if not self._closing:
                        self._port_failed(EOFError("the port reports readable but gives no "
                                                   "data (device disconnected or peer closed)"))
                    return
                total += len(data)
                self._feed(data)
                if self._closing:
                    return
            self._taken_early = False
            if total >= COALESCE_MIN and self.session.command is None:
                with trio.move_on_after(self._coalesce_delay()) as self._coalescing:
                    await trio.sleep_forever()
                self._coalescing = None

    def _read_pending(self) -> None:
        """Read and dispatch what the port holds now, without waiting (the reader may be
        in its gathering pause): a decision about to be written then knows all the
        module has said.  Ports without a descriptor are read by their thread only."""
        fd = self._fd
        if fd is None or self._closing:
            return
        total = 0
        while total < DRAIN_MAX:
            try:
                data = os.read(fd, READ_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return          # the reader sees it too, and fails the port
            if not data:
                return          # empty (a tty's VMIN=0 read); a hang-up is the reader's
            total += len(data)
            self._taken_early = True
            self._feed(data)

    def _coalesce_delay(self) -> float:
        try:
            baud = float(self._port.baudrate) or 115200.0
        except (TypeError, ValueError, AttributeError):
            baud = 115200.0
        return min(COALESCE_MAX, COALESCE_BYTES * 10.0 / baud)

    async def _read_loop(self) -> None:
        """Ports without a descriptor (rfc2217://, loop://, wrappers): a blocking read in a thread."""
        while not self._closing:
            try:
                data = await trio.to_thread.run_sync(self._read_some, abandon_on_cancel=True)
            except Exception as exc:
                if self._closing:
                    return
                self._port_failed(exc)
                return
            if data:
                self._feed(data)

    def _port_failed(self, exc: BaseException) -> None:
        log.error("%s: serial read failed: %r", self.name, exc)
        self._fail_everything(E.WizError(f"serial port failed: {exc!r}"))

    @property
    def port_io(self) -> str:
        """``"loop"``: the port's descriptor is read and written from the event loop;
        ``"thread"``: through pyserial in worker threads (a port without one)."""
        return "loop" if self._fd is not None else "thread"

    def _feed(self, data: bytes) -> None:
        self.rx_reads += 1
        self.rx_bytes += len(data)
        self._last_rx = trio.current_time()
        try:
            events = self._framer.feed(data)
        except Exception:  # never fatal: log and resynchronise
            log.exception("%s: framer failed on %d bytes; resetting it", self.name, len(data))
            self._framer.reset()
            return
        for ev in events:
            try:
                self._dispatch(ev)
            except Exception:
                log.exception("%s: dispatching %s failed", self.name, redact_event(ev))

    def _payload_done(self, cmd: Command) -> None:
        for sev in self.session.payload_written(cmd):
            self._EFFECTS[type(sev)](self, sev)

    def _write_payload_now(self, cmd: Command, payload: bytes) -> None:
        """The ``>`` was just read: write the payload from the reader, before anything
        else is dispatched.  The wire idles from the header's last byte until the
        payload's first, once per 2048-byte segment: the hop to the waiting task (a
        scheduling round, often a cold wake-up) was a tenth of an upload's wire time.
        Whatever a full port does not take now, :meth:`_wait` writes."""
        fd = self._fd
        lock = self._write_lock
        if fd is None or lock.locked():
            return                              # the waiting task writes it
        self.session.writing_payload(cmd)
        self._log_write(payload, None)
        lock.acquire_nowait()
        try:
            view = memoryview(payload)
            while view:
                try:
                    n = os.write(fd, view)
                except BlockingIOError:
                    break
                except OSError as exc:
                    self._port_failed(exc)
                    return
                view = view[n:]
        finally:
            lock.release()
        if view:
            self._payload_rest = view
        else:
            self._payload_done(cmd)

    def _log_write(self, data: Buffer, redacted: Optional[bool]) -> None:
        if self._taps:
            self._tap("tx" if redacted else "data", data)
        if wire_log.isEnabledFor(logging.DEBUG):
            if redacted:
                wire_log.debug("%s -> %r", self.name, P.redact(bytes(data).rstrip(b"\r\n")))
            else:
                wire_log.debug("%s -> <%d bytes of data>", self.name, len(data))

    async def write(self, data: Buffer, redacted: Optional[bool] = True,
                    tapped: bool = False) -> None:
        """Write ``data`` to the port (``tapped``: the taps and the wire log have it)."""
        if not tapped:
            self._log_write(data, redacted)
        lock = self._write_lock
        try:
            # free (the usual case): no scheduling round before the bytes go; the
            # payload after a '>' is on an upload's critical path, once per segment
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()
        try:
            fd = self._fd
            if fd is None:
                await trio.to_thread.run_sync(self._port.write, bytes(data))
                return
            await trio.lowlevel.checkpoint_if_cancelled()
            # a copy unless immutable: the caller's buffer may grow while we wait
            view = memoryview(data if type(data) is bytes else bytes(data))
            with trio.move_on_after(WRITE_TIMEOUT) as cs:
                while view:
                    try:
                        n = os.write(fd, view)
                    except BlockingIOError:
                        await trio.lowlevel.wait_writable(fd)
                        continue
                    view = view[n:]
            if cs.cancelled_caught:
                raise E.WizError(f"{self.name}: serial write stalled for {WRITE_TIMEOUT:.0f} s "
                                 f"({len(view)} of {len(data)} bytes unwritten)")
        finally:
            lock.release()

    # ------------------------------------------------------------------ flow control
    def buffered(self) -> int:
        return sum(l.buffered for l in self.session.links.values())

    def update_rts(self) -> None:
        if not self.flow_control or self._port is None:
            return
        total = self.buffered()
        if self.session.active is not None:
            # a command's answer queues behind the data: let it through (up to the
            # hard per-link limit) rather than deadlock the command on our own RTS
            want = total < self.rx_limit
        elif self._rts:
            want = total < self.rx_high
        else:
            want = total <= self.rx_low
        if want != self._rts:
            self._rts = want
            log.debug("%s: RTS %s (%d bytes buffered)", self.name,
                      "asserted" if want else "de-asserted", total)
            try:
                self._port.rts = want
            except Exception as exc:  # pragma: no cover
                log.warning("%s: could not set RTS: %r", self.name, exc)

    async def wait_reader_done(self) -> None:
        """Wait until the reader task has ended (after :meth:`aclose`); at once if
        it never started (the port could not be opened)."""
        if self._reader_started:
            await self._reader_done.wait()

    @property
    def raw(self) -> bool:
        """The framer takes every byte as data (passthrough); False: it reads lines."""
        return self._framer.raw

    @raw.setter
    def raw(self, value: bool) -> None:
        self._framer.raw = value

    @property
    def raw_on_prompt(self) -> bool:
        """The framer turns raw at the next ``>`` (set by :meth:`await_prompt`)."""
        return self._framer.raw_on_prompt

    @raw_on_prompt.setter
    def raw_on_prompt(self, value: bool) -> None:
        self._framer.raw_on_prompt = value

    async def follow_uart(self, baudrate: int, flow_control: Any) -> None:
        """The module took AT+UART_CUR: the host port follows (rate, RTS/CTS) between
        commands."""
        port = self._port
        await trio.sleep(0.01)
        async with self._cmd_lock:
            port.baudrate = baudrate
            self.baudrate = baudrate
            self.flow_control = bool(flow_control)
            self._framer.reset()
            if not self.flow_control:
                self._rts = True
                try:
                    port.rts = True
                except Exception:
                    pass
        self.update_rts()
