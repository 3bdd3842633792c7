"""The engine: one owner of the UART, one command in flight, links, recovery.

Structure (all on one trio loop):

* the **reader** task reads the port's descriptor from the event loop
  (``wait_readable``, then everything available) -- ttys, ptys, ``socket://``
  and ``wizemu://`` have one; a port without one is read in a worker thread --
  and feeds every byte to ONE framer; nothing else reads or flushes the port.
  Writes go to the same descriptor (``wait_writable`` when the port is full).  Events go
  synchronously, in order, to the sans-I/O :class:`~wizsock.engine.session.Session`,
  which keeps the rules (the command in flight, the link table, what unsolicited
  output means); ``_dispatch`` carries out what it reports (``_EFFECTS``): data to
  a link's buffer, a link closed, a waiter woken, a reset declared.
* **commands** go through ``Engine.command``: a FIFO lock keeps one in flight;
  once written, a command runs to its final result or its own timeout under a
  cancel shield, so a cancelled caller never leaves the module half way
  through an exchange (the caller sees its cancellation right after).
* the **sender** task drains the links' send queues round-robin, 2048 bytes per
  command, with AT+CIPSENDBUF (pipelined, acknowledged by segment id) for TCP
  and AT+CIPSEND (stop and wait) for SSL and UDP.
* the **supervisor** task re-initialises the module after a reset (``ready``,
  boot noise, a module that stopped answering): links fail with
  :class:`~wizsock.errors.ModuleReset`, the baud rate is found again, echo,
  CIPMUX and CIPDINFO are set again.
* stray output (a ``ready`` mid-send, a false ``CLOSED``, a ``+IPD`` length that
  lies, an answer that cannot be read) is handled by asking what the module may
  still be waiting for or still be printing: docs/design.md section 4f.
"""
from __future__ import annotations

import logging
import os
import re
import time
from typing import Any, Callable, ClassVar, Dict, List, Mapping, NoReturn, Optional, Tuple, Union

import trio

from .. import errors as E
from .. import protocol as P
from ..framer import Data, Echo, Event, Framer, Garbage, Info, LinkEvent, Subscription, Text
from ..protocol import MAX_SEND
from ..protocol import request as req
from . import session as S
from .session import (BUSY_GRACE, FINAL, MAX_LINKS, OK_GRACE, PROMPT_COMMANDS,
                      SEND_COMMANDS, SENDBUF_SIZE, Command, LinkLimit, Response, Session)

__all__ = ["Engine", "Response", "Command", "req", "port_fd", "BAUD_RATES", "MAX_LINKS",
           "MAX_SEND", "SENDBUF_SIZE", "FINAL", "PROMPT_COMMANDS", "SEND_COMMANDS", "OK_GRACE",
           "BUSY_GRACE", "BUSY_BACKOFF", "DEFAULT_TIMEOUT", "TIMEOUTS"]

Buffer = Union[bytes, bytearray, memoryview]

log = logging.getLogger("wizsock.engine")
wire_log = logging.getLogger("wizsock.engine.at")

#: the module's UART rates (spec 3.1.7), in the order tried after the configured one
BAUD_RATES = (115200, 921600, 2000000, 1500000, 1000000, 460800, 230400, 57600, 38400,
              19200, 14400, 9600, 4800, 2400, 1800, 1200, 600)
READ_MAX = 1 << 16         # bytes per read of the port
DRAIN_MAX = 1 << 18        # bytes the reader takes per wake-up before letting others run
#: a connect still waiting for a link is logged (DEBUG) again this often
LINK_WAIT_NOTE = 5.0
#: see Engine.close_linger
CLOSE_LINGER = 0.25
#: the result of a guarded command whose guard said no right before its bytes would go
WITHDRAWN = "WITHDRAWN"
WRITE_TIMEOUT = 30.0       # a write the port does not take in this long fails (CTS held off)
#: the reader's gathering pause on a flowing stream (see Engine._read_loop_fd)
COALESCE_MIN = 256         # a read at least this long means a stream is flowing
COALESCE_BYTES = 8192      # gather about this much wire time (a tty holds 64 KiB before it drops)
COALESCE_MAX = 0.040       # ... but never pause longer than this

#: the baud hunt (Engine._find_module): AT probes at the configured rate (0.25 s each,
#: for a module still booting), then one per other rate lasting HUNT_WAIT plus the wire
#: time of HUNT_WIRE_BYTES (the probe and its answer) at that rate
BOOT_TRIES = 6
HUNT_WAIT = 0.2
HUNT_WIRE_BYTES = 20

#: per-command timeouts (seconds); everything else gets DEFAULT_TIMEOUT
DEFAULT_TIMEOUT = 3.0
TIMEOUTS: Dict[str, float] = {
    "": 1.0, "E0": 1.0, "E1": 1.0, "RST": 6.0, "RESTORE": 6.0, "GSLP": 2.0,
    "CWJAP_CUR": 25.0, "CWJAP_DEF": 25.0, "CWLAP": 15.0, "CWQAP": 5.0,
    "CIPSTART": 15.0, "CIPDOMAIN": 12.0, "PING": 12.0, "CIPCLOSE": 6.0,
    "CIPSEND": 10.0, "CIPSENDEX": 10.0, "CIPSENDBUF": 10.0,
    "CASEND": 10.0, "CLICASEND": 10.0, "AWSPKSEND": 10.0,
    "MQTTCON": 20.0, "MQTTDIS": 6.0, "MQTTPUB": 8.0, "AZCON": 25.0, "AWSCON": 25.0,
    "CIUPDATE": 300.0, "WPS": 6.0, "CWSTARTSMART": 6.0, "CWSTOPSMART": 6.0,
    "WIZ_NETCONFIG": 6.0, "CIPSNTPTIME": 4.0, "CWDHCP_CUR": 6.0, "CWDHCP_DEF": 6.0,
    "CWSAP_CUR": 6.0, "CWSAP_DEF": 6.0, "UART_CUR": 2.0, "UART_DEF": 2.0,
}
#: a busy answer is retried after these pauses (then the command fails with errors.Busy)
BUSY_BACKOFF = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.5, 0.8, 1.0, 1.0)

#: a +IPD payload still incomplete after this long with the UART quiet announced more
#: bytes than it carried (the module prints a +IPD unit in one go, pausing at most
#: about a second)
IPD_STALL = 1.3
#: a payload held for the line after it (see Engine._on_data) this long: probe
HOLD_PROBE = 0.2
#: a payload spill is reported this late, so boot noise followed by ``ready`` (a
#: module reset) fails the link with ModuleReset instead
SPILL_VERDICT = 0.5
#: after a suspicious exchange (a reset, an unreadable answer, a payload the module
#: may still have been waiting for): wait for this much silence before the next
#: command, at most SETTLE_MAX, so late answers are not taken for the next one's
SETTLE_QUIET = 0.05
SETTLE_MAX = 1.0


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


class Engine:
    """One module.  Use :func:`wizsock.open_module` rather than this class directly."""

    def __init__(self, port: Any, baudrate: int = 115200, *,
                 timeouts: Optional[Dict[str, float]] = None, hunt_baud: bool = True,
                 flow_control: bool = False, rx_limit: int = 1 << 20,
                 rx_high: Optional[int] = None, rx_low: Optional[int] = None,
                 use_sendbuf: bool = True, read_timeout: float = 0.02,
                 serial_kwargs: Optional[Dict[str, Any]] = None,
                 probe_interval: Optional[float] = None, name: Optional[str] = None,
                 trace: Any = None) -> None:
        self.port_url = port
        self.baudrate = int(baudrate)
        self.timeouts = dict(TIMEOUTS)
        if timeouts:
            self.timeouts.update(timeouts)
        self.hunt_baud = hunt_baud
        #: hardware flow control (AT+UART_CUR ...,1): RTS is driven by buffered data
        self.flow_control = bool(flow_control)
        #: per-link receive limit without flow control (BufferOverflow beyond it);
        #: with flow control, the hard limit past which a link still fails
        self.rx_limit = int(rx_limit)
        #: while a server listens, how long a close waits for the peer's own CLOSED before
        #: its AT+CIPCLOSE (links.Link.aclose: a close crossing the peer's names the id's
        #: next connection)
        self.close_linger = CLOSE_LINGER
        self.rx_high = int(rx_high if rx_high is not None else max(4096, self.rx_limit // 4))
        self.rx_low = int(rx_low if rx_low is not None else self.rx_high // 2)
        self.use_sendbuf = use_sendbuf
        self.read_timeout = read_timeout
        self.serial_kwargs = dict(serial_kwargs or {})
        self.probe_interval = probe_interval
        self.name = name or (port if isinstance(port, str) else getattr(port, "port", None)
                             or repr(port))

        self.firmware: Optional[str] = None
        self.version = None           # the codec's record for AT+GMR
        #: the rules of the conversation (command in flight, link table, recovery state):
        #: sans-I/O, docs/design.md section 4g; the engine does its I/O and waiting
        self.session: Session[Any] = Session(self._make_accepted, name=self.name)
        self.reset_count = 0
        #: accepted connections closed by a CIPCLOSE already on the wire for the id's
        #: previous connection (see _on_stale_close_hit)
        self.stale_close_hits = 0
        self.resets: List[float] = []
        self.last_reset_reason: Optional[str] = None

        self._port: Any = None     # a pyserial port (or one given by the caller)
        self._framer = Framer(max_ipd=8192, max_line=4096)
        self._cmd_changed = trio.Event()   # the command in flight changed (see _kick)
        self._cmd_lock = trio.Lock()
        self._write_lock = trio.Lock()
        self._usable = trio.Event()       # set when initialised and not recovering
        self._need_init = trio.Event()
        self._closing = False
        self._nursery: Optional[trio.Nursery] = None
        self._rts = True
        self._reader_done = trio.Event()
        self._reader_started = False
        self._reader_scope = trio.CancelScope()
        self._fd: Optional[int] = None     # the port's descriptor when the loop does its I/O
        self._coalescing: Optional[trio.CancelScope] = None   # the reader's gathering pause
        self._taken_early = False     # _read_pending read what woke the reader
        # the payload of the prompt command in flight, for the reader to write the moment
        # its '>' is read (_on_prompt_ready); what a full port did not take yet, for _wait
        self._prompt_payload: Optional[Tuple[Command, bytes]] = None
        self._payload_rest: Optional[memoryview] = None
        #: reads of the port and the bytes they gave (diagnostics, benchmarks)
        self.rx_reads = 0
        self.rx_bytes = 0
        self._last_rx = 0.0
        self._replay: Dict[str, Any] = {}     # CUR settings replayed after a reset
        self.api = None
        # connects waiting for a link id: the session's FIFO records, woken from here
        self._id_events: Dict[S.IdWaiter, trio.Event] = {}
        self._server = None
        self._tx_wakeup = trio.Event()
        self._rr = 0
        self._mqtt = None  # set by api.Mqtt
        self._passthrough = None   # the passthrough stream (passthrough.Passthrough) while open
        self._urc_callbacks: List[Any] = []
        self.token: Optional[trio.lowlevel.TrioToken] = None
        self._taps: List[Callable[[str, Any, Optional[str]], None]] = []
        self._trace = None
        if trace is not None:       # a path or an open text file: docs/design.md 4e
            from .trace import TraceWriter
            self._trace = TraceWriter(trace, port=port, baudrate=self.baudrate)
            self.add_tap(self._trace)

    # ------------------------------------------------------------------ session state
    @property
    def mux(self) -> bool:
        """CIPMUX=1 (links carry ids); the session's setting."""
        return self.session.mux

    @mux.setter
    def mux(self, on: bool) -> None:
        self.session.mux = bool(on)

    @property
    def wifi_state(self) -> Optional[str]:
        return self.session.wifi_state

    @property
    def station_ip(self) -> Optional[str]:
        return self.session.station_ip

    @station_ip.setter
    def station_ip(self, ip: Optional[str]) -> None:
        self.session.station_ip = ip

    @property
    def links(self) -> Mapping[int, Any]:
        """Read-only view: link id -> Link held now."""
        return self.session.links

    @property
    def server(self) -> Any:
        """The module's TCP server (links.Server) while one listens, else None."""
        return self._server

    @server.setter
    def server(self, server: Any) -> None:
        self._server = server
        self.session.set_accepting(server is not None)

    @property
    def passthrough_session(self) -> Any:
        """The open passthrough session (it receives every byte of data), else None."""
        return self._passthrough

    @passthrough_session.setter
    def passthrough_session(self, session: Any) -> None:
        self._passthrough = session
        self.session.set_passthrough(session is not None)

    def stop_accepting(self) -> None:
        """The server is closing: a connection from now on is nobody's (links.Server)."""
        self.session.set_accepting(False)

    def _make_accepted(self, lid: int, generation: int, remote: Any) -> Any:
        """The session's factory for a connection the server accepted."""
        from .links import Link
        port = self._server.port if self._server is not None else 0
        return Link(self, lid, generation, "TCP", remote=remote,
                    local=(self.station_ip or "0.0.0.0", port), accepted=True)

    # ------------------------------------------------------------------ the command in flight
    def start_command(self, request: P.Request, wants_prompt: bool) -> Command:
        """``request`` is about to be written: what comes now is its answer (caller holds
        the command lock; :meth:`end_command` when done)."""
        self._cmd_changed = trio.Event()
        return self.session.start_command(request, wants_prompt, trio.current_time())

    def end_command(self, cmd: Command) -> None:
        self.session.end_command(cmd)

    async def wait_command_change(self) -> None:
        """Until the command in flight changes (prompt, result, busy, held OK, error)."""
        await self._cmd_changed.wait()
        self._cmd_changed = trio.Event()

    def _kick(self) -> None:
        self._cmd_changed.set()

    def _abort_command(self, err: BaseException) -> None:
        if self.session.abort_command(err) is not None:
            self._kick()

    # ------------------------------------------------------------------ taps
    def add_tap(self, callback: Callable[[str, Any, Optional[str]], None]) -> Callable[[], None]:
        """Call ``callback(kind, item, command)`` on the engine's loop for all UART traffic.

        ``kind`` is ``"tx"`` (a command line the host wrote, bytes, NOT redacted),
        ``"data"`` (bytes written after a ``>`` prompt or in passthrough) or ``"rx"``
        (every framer event, URCs and ``Data`` included, before it is dispatched);
        ``command`` is the name of the command in flight, or None.  The callback must
        not block; one that raises is removed.  Returns a function that removes it."""
        self._taps.append(callback)

        def remove() -> None:
            if callback in self._taps:
                self._taps.remove(callback)
        return remove

    def _tap(self, kind: str, item: Any) -> None:
        name = self.session.command_name
        for cb in list(self._taps):
            try:
                cb(kind, item, name)
            except Exception:
                log.exception("%s: UART tap %r failed; removed", self.name, cb)
                if cb in self._taps:
                    self._taps.remove(cb)

    # ------------------------------------------------------------------ lifecycle
    async def start(self, nursery: trio.Nursery) -> None:
        from .. import _orig
        from .port import open_port
        kw: Dict[str, Any] = dict(baudrate=self.baudrate, timeout=self.read_timeout,
                                  write_timeout=30)
        kw.update(self.serial_kwargs)
        if isinstance(self.port_url, str):
            with _orig.internal():      # (errors.PortError when it cannot be opened)
                self._port = await trio.to_thread.run_sync(
                    lambda: open_port(self.port_url, **kw))
        else:                       # an open pyserial port object (custom transports)
            self._port = self.port_url
            self._port.timeout = self.read_timeout
            if self._port.baudrate != self.baudrate:
                self._port.baudrate = self.baudrate
        try:
            self._port.rts = True
        except Exception:  # pragma: no cover - ports without modem lines
            pass
        self._fd = port_fd(self._port)
        if self._fd is not None:
            os.set_blocking(self._fd, False)
        log.debug("%s: port I/O %s", self.name,
                  "on the event loop (fd %d)" % self._fd if self._fd is not None
                  else "in worker threads (the port has no descriptor)")
        self.token = trio.lowlevel.current_trio_token()
        self._nursery = nursery
        self._reader_started = True
        nursery.start_soon(self._reader)
        async with self._cmd_lock:
            for attempt in range(4):
                try:
                    await self._initialise(first=attempt == 0)
                    break
                except (E.CommandTimeout, E.CommandError, E.ModuleReset) as exc:
                    # a garbled or lost answer, or the module restarting: again
                    if attempt == 3 or isinstance(exc, E.ModuleUnresponsive):
                        raise
                    log.warning("%s: start-up attempt %d failed (%s); again", self.name,
                                attempt + 1, exc)
                    await trio.sleep(0.2)
        self._usable.set()
        nursery.start_soon(self._supervisor)
        nursery.start_soon(self._sender)
        nursery.start_soon(self._ipd_watch)
        if self.probe_interval:
            nursery.start_soon(self._watchdog)

    async def aclose(self) -> None:
        if self._closing:
            return
        with trio.CancelScope(shield=True):
            # close links politely while the module still answers
            with trio.move_on_after(3):
                for link in list(self.session.links.values()):
                    if hasattr(link, "aclose"):
                        with trio.move_on_after(1.5):
                            try:
                                await link.aclose()
                            except Exception:
                                pass
            pt = self._passthrough
            if pt is not None:
                with trio.move_on_after(4):
                    try:
                        await pt.aclose()
                    except Exception:
                        pass
                pt.fail(E.LinkClosed("module closed"))
                pt.end_session()
            self._closing = True
            err = E.LinkClosed("module closed")
            for link in self.session.clear_links():
                link.fail(err)
            self._apply(self.session.take_grants())
            self._abort_command(E.LinkClosed("module closed"))
            if self._mqtt is not None:
                self._mqtt.shutdown()
            self._reader_scope.cancel()
            port = self._port
            if port is not None and self._fd is None:
                try:
                    port.cancel_read()   # the reader's thread
                except Exception:
                    pass

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
                log.exception("%s: dispatching %s failed", self.name, _redact_event(ev))

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, ev: Event) -> None:
        if self._taps:
            self._tap("rx", ev)
        if wire_log.isEnabledFor(logging.DEBUG) and type(ev) is not Data:
            wire_log.debug("%s <- %s", self.name, _redact_event(ev, self.session.command_name))
        for sev in self.session.receive(ev, trio.current_time(), mid_line=self._framer.mid_line):
            self._EFFECTS[type(sev)](self, sev)

    # what the engine does about what the session reports (the table _EFFECTS, at the end)
    def _on_command_event(self, sev: S.CommandEvent) -> None:
        self._kick()

    def _on_prompt_ready(self, sev: S.PromptReady) -> None:
        pending = self._prompt_payload
        if pending is not None and pending[0] is sev.command and not sev.command.data_written:
            self._write_payload_now(*pending)
        self._kick()

    def _on_stray_ok(self, sev: S.StrayOk) -> None:
        log.warning("%s: an OK came before the answer to %s; it was not its own",
                    self.name, sev.command.name)

    def _on_data_received(self, sev: S.DataReceived[Any]) -> None:
        sev.link.data_received(sev.payload, sev.remote)
        self.update_rts()

    def _on_passthrough_data(self, sev: S.PassthroughData) -> None:
        if self._passthrough is not None:
            self._passthrough.data_received(sev.payload)

    def _on_link_accepted(self, sev: S.LinkAccepted[Any]) -> None:
        if sev.implicit:
            log.debug("data on link %d before its CONNECT; taking it as accepted", sev.link.id)
        if self._server is not None:
            self._server.accepted(sev.link)

    def _on_link_connected(self, sev: S.LinkConnected[Any]) -> None:
        pass        # (the session's transition woke whoever waits on the link)

    def _on_link_closed(self, sev: S.LinkClosed[Any]) -> None:
        link = sev.link
        if link.kind == "MQTT" and self._mqtt is not None:
            self._mqtt.link_event_received(LinkEvent(link.id, "CLOSED"))
        self.update_rts()

    def _on_link_connect_failed(self, sev: S.LinkConnectFailed[Any]) -> None:
        pass        # (the open's CIPSTART fails; the transition woke the link's waiters)

    def _on_stale_close_hit(self, sev: S.StaleCloseHit[Any]) -> None:
        """A client the server accepted was closed by the host's CIPCLOSE meant for the
        connection the id carried before (both were on the wire at once: docs/design.md
        4g, "Closing when the module reuses ids").  Said loudly, and the dead
        connection is not handed to accept()."""
        link = sev.link
        self.stale_close_hits += 1
        log.warning("%s: link %d: a connection accepted while the host's AT+CIPCLOSE=%d for "
                    "the previous connection on that id was already on the wire was closed "
                    "by it (the client sees its connection closed)", self.name, link.id, link.id)
        if self._server is not None:
            self._server.withdraw(link)

    def _on_bare_link_event(self, sev: S.BareLinkEvent) -> None:
        if self._mqtt is not None:
            self._mqtt.link_event_received(sev.event)

    def _on_segment_acked(self, sev: S.SegmentAcked[Any]) -> None:
        if sev.link is not None:
            sev.link.segment_acked(sev.segment)
        self.wake_sender()

    def _on_send_failed(self, sev: S.SendFailed[Any]) -> None:
        link = sev.link
        link.fail(E.SendFailed(f"link {link.id}: the module reported SEND FAIL; the "
                                f"stream has a hole and is abandoned", link=link.id))
        if self._nursery is not None:
            self._nursery.start_soon(self._close_quietly, link)
        self.wake_sender()

    def _on_id_granted(self, sev: S.IdGranted) -> None:
        self._wake_waiters([sev.waiter])

    def _apply(self, events: List[S.SessionEvent]) -> None:
        for sev in events:
            self._EFFECTS[type(sev)](self, sev)

    def _on_ghost(self, sev: S.GhostData[Any]) -> None:
        """Data on an id whose CLOSED we took: that CLOSED was false (the module still
        holds the connection).  The handle's stream is cut, which its reader must learn
        as an error rather than an end of file; the id is closed on the module so it can
        be used again."""
        if self._closing:
            return
        ghost, lid = sev.link, sev.link.id
        log.warning("%s: data on link %d after its CLOSED: the CLOSED was false", self.name, lid)
        ghost.fail(E.ProtocolError(
            f"{self.name}: the module reported link {lid} CLOSED, then delivered more data "
            f"on it: the stream is cut", link=lid))
        if self._nursery is not None:
            self._nursery.start_soon(self._close_id_quietly, lid, ghost.generation)

    def _on_module_reset(self, sev: S.ModuleReset) -> None:
        self.declare_reset(sev.reason)

    def _on_probe_wanted(self, sev: S.ProbeWanted) -> None:
        if self._usable.is_set() and self._nursery is not None and not self._closing:
            self._nursery.start_soon(self._check_alive)

    def _on_urc(self, sev: Any) -> None:
        for cb in list(self._urc_callbacks):
            cb(sev.event)

    def _on_mqtt_message(self, sev: S.MqttMessage) -> None:
        if self._mqtt is not None:
            self._mqtt.message_received(sev.event)
        else:
            log.info("%s: subscription message with no MQTT client: %r", self.name,
                     sev.event.topic)

    def _on_ignored(self, sev: S.Ignored) -> None:
        if type(sev.event) is Data:
            log.warning("%s: %d bytes dropped: %s", self.name, len(sev.event.payload), sev.why)
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("%s: %s: %s", self.name, sev.why, _redact_event(sev.event))


    # ------------------------------------------------------------------ commands
    def timeout_for(self, name: str, override: Optional[float] = None) -> float:
        if override is not None:
            return override
        return self.timeouts.get(name, DEFAULT_TIMEOUT)

    async def wait_usable(self, timeout: float) -> None:
        if self._closing:
            raise E.LinkClosed("module closed")
        if not self._usable.is_set():
            with trio.move_on_after(timeout) as cs:
                await self._usable.wait()
            if cs.cancelled_caught:
                raise E.ModuleUnresponsive(f"{self.name}: module not usable (recovering)",
                                           timeout=timeout)
        if self._closing:
            raise E.LinkClosed("module closed")

    async def command(self, request: P.Request, *, timeout: Optional[float] = None,
                      payload: Optional[Buffer] = None, retry_busy: bool = True,
                      check: bool = True, parse: bool = True,
                      parse_opts: Optional[Dict[str, Any]] = None,
                      guard: Optional[Callable[[], bool]] = None,
                      on_write: Optional[Callable[[], None]] = None) -> Response:
        """Run one command; returns a :class:`Response` (``.record`` parsed by the codec).

        With ``check`` (default) ERROR/FAIL raise :class:`~wizsock.errors.CommandError`.
        ``payload`` is written after the ``>`` prompt.  Cancel-safe: once the
        command is on the wire it runs to completion under a shield.
        ``guard``: asked right before the bytes go out (after what the module sent so
        far was read); False withdraws the command (result ``WITHDRAWN``, nothing
        written).  ``on_write``: called as they go.
        """
        if payload is not None:
            # the codec's gate for what follows ">": nothing beyond it can run as a command
            payload = P.payload_for(request, payload)
        tmo = self.timeout_for(request.name, timeout)
        await self.wait_usable(max(tmo, 10.0))
        async with self._cmd_lock:
            if not self._usable.is_set():
                raise E.ModuleReset(f"{self.name}: module reset before the command was sent")
            with trio.CancelScope(shield=True):
                resp = await self._exec(request, tmo, payload=payload, retry_busy=retry_busy,
                                        guard=guard, on_write=on_write)
        if resp.result == WITHDRAWN:
            return resp
        if parse:
            self._parse(request, resp, parse_opts)
        if check:
            _check(resp)
        return resp

    def _parse(self, request: P.Request, resp: Response,
               opts: Optional[Dict[str, Any]] = None) -> None:
        spec = P.COMMANDS.get(request.name) if hasattr(P.COMMANDS, "get") else None
        if spec is None or resp.result not in ("OK", "SEND OK"):
            return
        try:
            resp.parsed(spec.parse_response(request.form, resp.events, **(opts or {})))
        except Exception as exc:
            lines = resp.lines()
            log.warning("%s: could not parse the %s response (%d line(s)): %s", self.name,
                        request.name, len(lines), type(exc).__name__)
            # a final result without the lines it needs is often a stray or early one:
            # the real answer may still come, so the next command waits for silence
            self.session.expect_late_answers()
            secret = request.name in _SECRET_ANSWERS
            raise E.BadResponse(
                f"{self.name}: the answer to {request.name} cannot be read ({len(lines)} "
                f"line(s) before {resp.result}; {type(exc).__name__})",
                command=request.name, lines=() if secret else lines) from None

    async def _exec(self, request: P.Request, timeout: float, *, payload: Optional[bytes] = None,
                    retry_busy: bool = True, internal: bool = False,
                    guard: Optional[Callable[[], bool]] = None,
                    on_write: Optional[Callable[[], None]] = None) -> Response:
        """Send one command and wait for its final result.  Caller holds the lock."""
        wire = request.encode()
        wants_prompt = payload is not None
        attempt = 0
        started = trio.current_time()
        while True:
            await self._settle()
            if guard is not None:
                # decide on the freshest knowledge: what the module printed and the
                # port holds is read first (from here to the write nothing yields)
                self._read_pending()
                if not guard():
                    withdrawn = Response(request.name, request.form)
                    withdrawn.result = WITHDRAWN
                    return withdrawn
                if on_write is not None:
                    on_write()
            cmd = self.start_command(request, wants_prompt)
            self.update_rts()
            outcome = None
            if payload is not None:
                self._prompt_payload = (cmd, payload)
            try:
                await self.write(wire, redacted=True)
                outcome = await self._wait(cmd, timeout, payload)
            finally:
                self._prompt_payload = None
                self._payload_rest = None
                self.end_command(cmd)
                self.update_rts()
                if (payload is not None and not cmd.data_written and not cmd.final
                        and outcome != "busy"):
                    self._owe(request, payload)
            if outcome == "busy":
                # retried with back-off for as long as the command's own timeout
                if not retry_busy or (attempt >= len(BUSY_BACKOFF)
                                      and trio.current_time() - started > timeout):
                    raise E.Busy(f"{self.name}: module busy, {request.name} not run "
                                 f"({attempt + 1} tries)", command=request.name, result="busy")
                pause = BUSY_BACKOFF[min(attempt, len(BUSY_BACKOFF) - 1)]
                attempt += 1
                log.debug("%s: busy answer to %s; retry %d in %.2fs", self.name,
                          request.name, attempt, pause)
                await trio.sleep(pause)
                continue
            if outcome == "timeout":
                if internal:
                    raise E.CommandTimeout(f"{self.name}: no answer to {request.name}",
                                           command=request.name, timeout=timeout)
                await self._after_timeout(request, timeout)
            return cmd.response

    async def _wait(self, cmd: Command, timeout: float, payload: Optional[bytes]) -> str:
        # The answer queues behind whatever the module is still printing (+IPD data
        # at the UART rate), so the timeout counts from the last byte received,
        # up to a hard cap.
        start = trio.current_time()
        hard = start + 4 * timeout + 20.0
        deadline = start + timeout
        while True:
            deadline = min(hard, max(deadline, self._last_rx + timeout))
            if cmd.error is not None:
                raise cmd.error
            if cmd.final:
                return "final"
            rest = self._payload_rest
            if rest is not None:                # the reader began it; the port was full
                self._payload_rest = None
                await self.write(rest, redacted=None, tapped=True)
                self._payload_done(cmd)
                continue
            if cmd.wants_prompt and cmd.prompted and not cmd.data_written:
                assert payload is not None          # (wants_prompt: a payload was given)
                self.session.writing_payload(cmd)
                await self.write(payload, redacted=None)
                self._payload_done(cmd)
                continue
            wait_until = deadline
            grace_end = self.session.next_deadline()     # an OK or a busy in its grace
            if grace_end is not None:
                wait_until = min(deadline, grace_end)
            with trio.move_on_at(wait_until):
                await self.wait_command_change()
                continue
            if cmd.final or cmd.error is not None or (cmd.prompted and not cmd.data_written):
                continue
            if any(type(sev) is S.BusyExpired for sev in self.session.timer(trio.current_time())):
                return "busy"
            if cmd.final:
                continue        # an OK held in grace with nothing after it: the empty answer
            if trio.current_time() >= min(hard, max(deadline, self._last_rx + timeout)):
                return "timeout"

    async def _after_timeout(self, request: P.Request, timeout: float) -> NoReturn:
        """A command got no answer: probe; an unresponsive module is recovered."""
        log.warning("%s: no answer to %s within %.1fs; probing", self.name, request.name, timeout)
        if await self.probe(tries=3, wait=0.5):
            raise E.CommandTimeout(f"{self.name}: no answer to {request.name} within {timeout}s "
                                   f"(the module answers AT)", command=request.name,
                                   timeout=timeout)
        self.declare_reset(f"module stopped answering (after {request.name})")
        raise E.ModuleUnresponsive(f"{self.name}: module stopped answering ({request.name}); "
                                   f"recovering", command=request.name, timeout=timeout)

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

    async def probe(self, tries: int = 3, wait: float = 0.3) -> bool:
        """``AT`` until ``OK``; returns True if the module answered."""
        for _ in range(tries):
            try:
                resp = await self._exec(req("", "execute"), wait, internal=True, retry_busy=False)
            except E.Busy:
                return True          # busy is an answer: the module is alive
            except E.CommandTimeout:
                continue
            if resp.result in ("OK", "ERROR"):
                return True
        return False

    # ------------------------------------------------------------------ initialisation
    async def _initialise(self, first: bool = False) -> None:
        """Find the module, sync, set echo off, CIPMUX=1, CIPDINFO=1, learn the version.

        Caller holds the command lock.  A ``ready`` seen meanwhile (the module
        was still booting) starts the sequence again."""
        self.session.start_initialising()
        try:
            for _ in range(5):
                self.session.new_init_attempt()
                await self._initialise_once(first)
                if not self.session.init_ready_seen:
                    break
                log.info("%s: module restarted during initialisation; again", self.name)
            await self._restore_session()
        finally:
            self.session.stop_initialising()

    async def _restore_session(self) -> None:
        """After a reset: the WiFi mode and the AP joined through this engine (CUR settings)."""
        for name in ("CWMODE_CUR", "CWJAP_CUR"):
            r = self._replay.get(name)
            if r is None:
                continue
            try:
                resp = await self._exec(r, self.timeout_for(r.name), internal=True)
                if resp.result != "OK":
                    log.warning("%s: restoring %s after reset: %s", self.name, name, resp.result)
            except E.WizError as exc:
                log.warning("%s: restoring %s after reset: %s", self.name, name, exc)

    def remember(self, request: P.Request) -> None:
        """Keep a CUR setting to replay after a module reset (mode, join)."""
        self._replay[request.name] = request

    def forget(self, name: str) -> None:
        self._replay.pop(name, None)

    async def _initialise_once(self, first: bool) -> None:
        self._framer.reset()
        tried = await self._find_module()
        if tried:
            rates = ", ".join(map(str, tried))
            where = (f"at {rates} baud" if len(tried) == 1 else
                     f"at any of the {len(tried)} baud rates tried ({rates})")
            raise E.ModuleUnresponsive(f"no answer to AT on {self.name} {where}", command="",
                                       timeout=HUNT_WAIT, rates=tried, port=str(self.name))
        for r in (req("E0", "execute"), req("CIPMUX", "set", mode=1),
                  req("CIPDINFO", "set", mode=1)):
            resp = await self._exec(r, self.timeout_for(r.name), internal=True)
            if r.name == "CIPMUX" and resp.result != "OK":
                # a server, link or passthrough setting survived (no reset after all):
                # close all and retry
                await self._exec(req("CIPMODE", "set", mode=0), 2.0, internal=True)
                await self._exec(req("CIPSERVER", "set", mode=0), 2.0, internal=True)
                await self._exec(req("CIPCLOSE", "set", link=5), 3.0, internal=True)
                resp = await self._exec(r, 2.0, internal=True)
            if resp.result != "OK":
                raise E.CommandError(f"{self.name}: start-up {r.name} failed: {resp.result}",
                                     command=r.name, result=resp.result, lines=resp.lines())
        self.session.mux = True
        if not first:
            # the module may not have restarted (it stopped answering for a while):
            # its links belong to handles that were failed; close them all
            await self._exec(req("CIPCLOSE", "set", link=5), 3.0, internal=True)
        gmr = req("GMR", "execute")
        resp = await self._exec(gmr, 2.0, internal=True)
        self._parse(gmr, resp)
        self.version = resp.record
        self.firmware = _firmware_of(resp)
        log.info("%s: module ready at %d baud, firmware %s", self.name, self._port.baudrate,
                 self.firmware)

    async def _find_module(self) -> List[int]:
        """Probe with AT at the configured rate, then (``hunt_baud``) at the spec's
        others; [] once the module answers, else the rates tried, in order.

        A silent port takes BOOT_TRIES probes at the configured rate (a module
        still booting), then one short probe per other rate (HUNT_WAIT plus the
        rate's wire time for the probe and its answer): 5.5 s in all for the 17
        rates (bench/bench_first_contact.py; two 0.25 s probes a rate took 9.5 s).
        A rate at which anything at all came back (a module at a rate near it
        echoing garbled bytes, or an answer late under load) gets a second probe."""
        port = self._port
        rates = [self.baudrate] + [r for r in BAUD_RATES if r != self.baudrate]
        if not self.hunt_baud:
            rates = rates[:1]
        tried: List[int] = []
        for rate in rates:
            if port.baudrate != rate:
                port.baudrate = rate
                self._framer.reset()
            tried.append(rate)
            if rate == self.baudrate:
                # a fresh module may still be booting: a few tries at the configured rate
                found = await self.probe(tries=BOOT_TRIES, wait=0.25)
            else:
                wait = HUNT_WAIT + HUNT_WIRE_BYTES * 10.0 / rate
                heard = self.rx_bytes
                found = await self.probe(tries=1, wait=wait)
                if not found and self.rx_bytes != heard:
                    found = await self.probe(tries=1, wait=wait)
            if found:
                # discard whatever was pending before the probe's OK
                if rate != self.baudrate:
                    await self._switch_baud(rate)
                return []
        return tried

    async def _switch_baud(self, found_rate: int) -> None:
        """Found at another rate: bring the module to the configured one (AT+UART_CUR)."""
        r = req("UART_CUR", "set", baudrate=self.baudrate, databits=8, stopbits=1, parity=0,
                flow_control=1 if self.flow_control else 0)
        resp = await self._exec(r, 2.0, internal=True)
        if resp.result == "OK":
            await trio.sleep(0.02)
            self._port.baudrate = self.baudrate
            self._framer.reset()
            if await self.probe(tries=4, wait=0.25):
                log.info("%s: module found at %d baud, switched to %d", self.name, found_rate,
                         self.baudrate)
                return
            self._port.baudrate = found_rate
            self._framer.reset()
        log.warning("%s: module stays at %d baud", self.name, found_rate)
        await self.probe(tries=2, wait=0.25)

    # ------------------------------------------------------------------ recovery
    async def _check_alive(self) -> None:
        try:
            async with self._cmd_lock:
                if not self._usable.is_set() or self._closing:
                    return
                with trio.CancelScope(shield=True):
                    if not await self.probe(tries=3, wait=0.4):
                        self.declare_reset("module unreadable (boot noise or baud change)")
        except E.WizError as exc:          # a reset meanwhile: the supervisor handles it
            log.debug("%s: liveness probe: %s", self.name, exc)

    async def _watchdog(self) -> None:
        interval = self.probe_interval or 0.0
        while not self._closing:
            await trio.sleep(interval)
            if self._cmd_lock.locked() or not self._usable.is_set():
                continue
            await self._check_alive()

    def declare_reset(self, reason: str) -> None:
        if self._closing:
            return
        self.reset_count += 1
        self.resets.append(time.monotonic())
        self.last_reset_reason = reason
        if self._trace is not None:
            self._trace.note(reason)
        # the module may not have reset at all and still finish what it was printing
        gone = self.session.module_reset()
        log.warning("%s: %s: failing %d link(s) and re-initialising", self.name, reason,
                    len(gone))
        self._usable = trio.Event() if self._usable.is_set() else self._usable
        # a reset module is in command mode whatever it was doing
        self._framer.raw = False
        self._framer.raw_on_prompt = False
        err = E.ModuleReset(f"{self.name}: {reason}")
        if self._passthrough is not None:
            self._passthrough.fail(err)
        for link in gone:
            link.fail(err)
        if self._server is not None:
            self._server.fail(err)
            self.server = None
        if self._mqtt is not None:
            self._mqtt.module_reset(err)
        self._abort_command(err)
        # waiters for an id need not wait for their next look: the ids are free now
        self._apply(self.session.take_grants())
        self._need_init.set()

    def _fail_everything(self, err: BaseException) -> None:
        self._closing = True
        for link in self.session.clear_links():
            link.fail(err)
        self._apply(self.session.take_grants())
        self._abort_command(err)

    def _owe(self, request: P.Request, payload: bytes) -> None:
        """A prompt command ended before its payload was written (reset declared,
        timeout, an answer lost): the module may have printed ``>`` (or be about to)
        and then reads exactly that many bytes as data, whatever they are, so every
        AT probe would vanish into the payload.  The next exchange first writes
        bytes that complete it (see :meth:`_settle`)."""
        self.session.owe(request, payload)     # what completes it: Session.owe
        log.warning("%s: %s ended before its %d-byte payload was written; the module may "
                    "still wait for it", self.name, request.name, len(payload))

    async def _settle(self) -> None:
        """Before a command: pay what the module may still be waiting for, and let
        late answers of an earlier exchange arrive (and be dropped as unsolicited)."""
        session = self.session
        if session.owed is not None:
            await self._quiet(SETTLE_QUIET, SETTLE_MAX)    # its ">" comes first
            owed = session.take_owed()
            if owed is not None:
                log.warning("%s: writing %d byte(s) to complete a payload the module may be "
                            "waiting for", self.name, len(owed))
                await self.write(owed, redacted=None)
            session.expect_late_answers()
        if session.take_resync():
            await self._quiet(SETTLE_QUIET, SETTLE_MAX)

    async def _quiet(self, gap: float, limit: float) -> None:
        """Wait until no line or prompt arrived for ``gap`` seconds (at most ``limit``);
        +IPD data does not count (a busy link must not stall the recovery)."""
        end = trio.current_time() + limit
        while True:
            now = trio.current_time()
            left = self.session.last_line + gap - now
            if left <= 0 or now >= end:
                return
            await trio.sleep(min(left, end - now))

    async def _ipd_watch(self) -> None:
        """Units the module left unfinished while the UART went quiet.

        * Inside a +IPD payload for IPD_STALL: the module prints a +IPD unit in one go
          (pauses of up to about a second happen; the emulator's ``stall`` fault models
          them), so a payload incomplete for longer announced more bytes than it
          carried, and the framer would take the module's later output (answers, URCs)
          as payload until the count is reached: the framer is resynchronised, the
          link's data and the answer of the command in flight fail (ProtocolError,
          BadResponse).
        * A payload held because the line after it is unfinished (see ``_on_data``),
          with no command in flight to make the module speak: an ``AT`` probe does,
          and the line its answer ends tells whether the payload stands.  No bytes are
          made up: ending the line artificially could cut a real unit in two."""
        probed_at = None
        while not self._closing:
            await trio.sleep(HOLD_PROBE / 2)
            framer = self._framer
            if framer.raw or not self._rts:
                continue
            quiet = trio.current_time() - self._last_rx
            pending = framer.ipd_pending
            if pending is not None and quiet >= IPD_STALL:
                self._on_ipd_stall(*pending)
            elif (self.session.held is not None and quiet >= HOLD_PROBE
                  and probed_at != self._last_rx and self.session.active is None
                  and self._nursery is not None):
                probed_at = self._last_rx
                self._nursery.start_soon(self._check_alive)

    def _on_ipd_stall(self, lid: int, missing: int) -> None:
        self._framer.reset()
        log.warning("%s: +IPD for link %s stalled %d byte(s) short; framer resynchronised",
                    self.name, lid, missing)
        what = (f"a +IPD for link {lid} announced {missing} byte(s) more than came; "
                f"what followed it was taken as its data")
        for sev in self.session.ipd_stalled(lid):
            link = sev.link
            link.fail(E.ProtocolError(f"{self.name}: {what}: the link's data is cut",
                                       link=link.id))
            if self._nursery is not None and not self._closing:
                self._nursery.start_soon(self._close_quietly, link)
        cmd = self.session.active
        if cmd is not None:
            # its answer may be among the swallowed bytes: whether it ran is unknown
            self._abort_command(E.BadResponse(f"{self.name}: {what}: the answer to "
                                              f"{cmd.name} may have been lost",
                                              command=cmd.name))
        if self._nursery is not None and not self._closing:
            self._nursery.start_soon(self._check_not_reset,
                                     "module state lost with the output a +IPD swallowed")

    def _on_state_check_wanted(self, sev: S.StateCheckWanted) -> None:
        if (self._usable.is_set() and self._nursery is not None and not self._closing
                and not self._checking_state):
            self._nursery.start_soon(self._check_not_reset, f"module restarted unseen: {sev.reason}",
                                     False)

    _checking_state = False

    async def _check_not_reset(self, reason: str, unanswered_is_reset: bool = True) -> None:
        """A ``ready`` may have been lost (with output a stalled +IPD swallowed; or the
        module echoes again, or refuses link ids).  A module that reset has CIPMUX=0
        again; then it is re-initialised like after any reset.  A hint alone (echo, a
        refusal) does not fail every link on a query that got no answer (busy)."""
        r = req("CIPMUX", "query")
        self._checking_state = True
        try:
            async with self._cmd_lock:
                if not self._usable.is_set() or self._closing:
                    return
                with trio.CancelScope(shield=True):
                    resp = await self._exec(r, 2.0, internal=True)
                    self._parse(r, resp)
        except E.WizError as exc:
            log.debug("%s: state check (%s): %r", self.name, reason, exc)
            resp = None
        finally:
            self._checking_state = False
        if resp is None or resp.result != "OK":
            if unanswered_is_reset:
                self.declare_reset(reason)
            return
        if getattr(resp.record, "mode", None) != (1 if self.mux else 0):
            self.declare_reset(reason)

    def _on_ipd_spill(self, sev: S.IpdSpill[Any]) -> None:
        """A line the framer cannot read (or text no command asked for) right after a
        +IPD payload: the module's lines start cleanly, so the length lied.  Too short:
        the payload's tail spilled out as that line; too long: the payload took the
        start of the next unit.  Either way the last payload is not the peer's data:
        it is withdrawn if still unread, and the link fails with ProtocolError."""
        link = sev.link
        withdrawn = link.withdraw_tail(sev.withdraw)
        log.warning("%s: +IPD length on link %d did not match its data; %s", self.name,
                    link.id, "payload withdrawn" if withdrawn else "payload already read")
        err = E.ProtocolError(
            f"{self.name}: a +IPD on link {link.id} announced a length that did not match "
            f"the data that came (the next line was unreadable); the link's data is cut"
            + ("" if withdrawn else " (the suspect payload had already been read)"),
            link=link.id)
        if self._nursery is None or self._closing:
            link.fail(err)
            return
        self._nursery.start_soon(self._cut_verdict, link, err)

    async def _cut_verdict(self, link: Any, err: BaseException) -> None:
        """Boot noise right after a payload looks like a spill: if the module turns out
        to have reset (``ready`` within SPILL_VERDICT) the link fails with ModuleReset,
        otherwise with ProtocolError.  Nothing after the cut is delivered meanwhile."""
        resets = self.reset_count
        await trio.sleep(SPILL_VERDICT)
        if self.reset_count != resets or link.error is not None:
            return
        link.fail(err)
        await self._close_quietly(link)

    async def _close_id_quietly(self, lid: int, generation: int) -> None:
        try:
            session = self.session

            def still_free() -> bool:
                # handed out meanwhile (reclaim_id deals with it), or CLOSED after all
                return (session.link(lid) is None and session.generation(lid) == generation
                        and lid not in session.reserved)

            async with self._cmd_lock:
                with trio.CancelScope(shield=True):
                    await self._exec(req("CIPCLOSE", "set", link=lid if self.mux else None),
                                     self.timeout_for("CIPCLOSE"), internal=True,
                                     guard=still_free)
        except E.WizError as exc:
            log.debug("%s: closing ghost link %d: %r", self.name, lid, exc)

    async def reclaim_id(self, lid: int) -> None:
        """The module holds link ``lid`` although the engine took it for free
        (``ALREADY CONNECTED``): after a false CLOSED, or a connection the server
        accepted before its CONNECT was seen.  AT+CIPSTATUS decides: a server
        connection becomes an accepted Link; anything else is closed (AT+CIPCLOSE),
        so the id serves again instead of failing every later open."""
        resp = await self.command(req("CIPSTATUS", "execute"), check=False)
        rec = resp.record
        held = [ls for ls in (getattr(rec, "links", ()) or ()) if ls.link == lid]
        if self.session.link(lid) is not None:
            return                  # a CONNECT arrived meanwhile
        if held and held[0].tcp_type == 1 and self._server is not None:
            link = self.session.accept(lid, (held[0].remote_ip, held[0].remote_port))
            self._server.accepted(link)
            return
        if held or not resp.ok:
            log.warning("%s: link %d is held by the module but by no handle; closing it",
                        self.name, lid)
            await self.command(req("CIPCLOSE", "set", link=lid if self.mux else None),
                               check=False, parse=False)

    async def _supervisor(self) -> None:
        while not self._closing:
            await self._need_init.wait()
            self._need_init = trio.Event()
            if self._closing:
                return
            delay = 0.0
            while not self._closing:
                await trio.sleep(delay)
                async with self._cmd_lock:
                    self._need_init = trio.Event()
                    try:
                        await self._initialise()
                    except (E.WizError, trio.TooSlowError) as exc:
                        log.error("%s: re-initialisation failed: %s", self.name, exc)
                        delay = min(2.0, delay * 2 or 0.2)
                        continue
                if self._need_init.is_set():     # reset again while initialising
                    self._need_init = trio.Event()
                    continue
                self._usable.set()
                log.info("%s: recovered", self.name)
                break

    # ------------------------------------------------------------------ links
    def link_event(self, link: Any, event: str) -> bool:
        """Tell the session what happened to ``link`` (an event of its lifecycle table,
        session.TRANSITIONS); connects waiting get an id it freed.  True if the state
        changed."""
        before = link.state
        self._apply(self.session.transition(link, event))
        return link.state is not before

    async def close_on_module(self, link: Any) -> Optional[Response]:
        """AT+CIPCLOSE ``link``'s id if the host still holds it for this generation.

        Whether it is still wanted is decided right before its bytes go out, after
        reading what the module has already sent: a CLOSED seen for this generation
        withdraws it (the id may already carry a new connection).  None if nothing
        was written.  The id is let go of in every case."""
        if not self.link_event(link, "close"):
            return None
        try:
            resp = await self.command(req("CIPCLOSE", "set", link=link.id if self.mux else None),
                                      check=False, parse=False,
                                      guard=lambda: self.session.close_wanted(link),
                                      on_write=lambda: self.session.closing(link))
        finally:
            self.session.close_answered()
            self.link_event(link, "closed")
        return None if resp.result == WITHDRAWN else resp

    async def _close_quietly(self, link: Any) -> None:
        try:
            await link.module_close()
        except Exception as exc:
            log.debug("%s: closing failed link %d: %r", self.name, link.id, exc)

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

    # ------------------------------------------------------------------ links: allocation
    # (the rules are the session's: ids from the top, five links, one SSL link, FIFO
    # waiters; the engine turns its LinkLimit into LinkLimitError and wakes the waiters)
    def alloc_id(self, kind: str) -> int:
        """A free id now, or LinkLimitError.  Waiters queued for a link come first."""
        try:
            return self.session.alloc_id(kind)
        except LinkLimit as exc:
            raise E.LinkLimitError(str(exc)) from None

    def new_generation(self, lid: int) -> int:
        return self.session.new_generation(lid)

    def add_link(self, link: Any) -> None:
        """``link`` holds its id from now on (its reservation, if any, is used up)."""
        self.session.add(link)

    def _wake_waiters(self, granted: List[S.IdWaiter]) -> None:
        for waiter in granted:
            event = self._id_events.get(waiter)
            if event is not None:
                event.set()

    async def reserve_id(self, kind: str, wait: Optional[float]) -> int:
        """Wait (FIFO, at most ``wait`` seconds; None: no limit) for a free link id and
        reserve it; the caller must hand it to :meth:`take_reserved` or
        :meth:`release_id`.  Cancellable: a cancelled waiter leaves no reservation."""
        session = self.session
        try:
            lid = session.reserve(kind)
        except LinkLimit as exc:
            raise E.LinkLimitError(str(exc)) from None
        if lid is not None:
            return lid
        if wait is not None and wait <= 0:
            raise E.LinkLimitError(session.limit_message())
        waiter = session.enqueue(kind)
        event = self._id_events[waiter] = trio.Event()
        began = trio.current_time()
        self._log_link_wait(session.waiting, None)
        try:
            with trio.move_on_after(float("inf") if wait is None else wait):
                next_note = began + LINK_WAIT_NOTE
                while waiter.lid is None:
                    # a freed id is granted in the transition that frees it; this look
                    # is only a safety net
                    self._wake_waiters(session.grant_ids())
                    with trio.move_on_after(0.5):
                        await event.wait()
                    if waiter.lid is None and trio.current_time() >= next_note:
                        next_note += LINK_WAIT_NOTE
                        self._log_link_wait(session.waiting, trio.current_time() - began)
        except BaseException:
            self._drop_waiter(waiter)
            raise
        finally:
            del self._id_events[waiter]
        if waiter.lid is None:
            self._drop_waiter(waiter)
            raise E.LinkLimitError(session.limit_message(waited=wait))
        log.debug("%s: a connect got link %d after waiting %.2f s", self.name, waiter.lid,
                  trio.current_time() - began)
        return waiter.lid

    def _log_link_wait(self, waiting: int, waited: Optional[float]) -> None:
        """DEBUG: a connect waits for a link: who holds the five, and for how long."""
        if not log.isEnabledFor(logging.DEBUG):
            return
        now = time.monotonic()
        held = [link.describe(now) if hasattr(link, "describe") else repr(link)
                for link in self.session.links.values()]
        reserved = sorted(self.session.reserved)
        log.debug("%s: a connect %s for a link (%d waiting); held: %s%s", self.name,
                  "waits" if waited is None else f"has waited {waited:.1f} s", waiting,
                  "; ".join(held) or "none",
                  f"; reserved for opens under way: {reserved}" if reserved else "")

    def _drop_waiter(self, waiter: S.IdWaiter) -> None:
        self._wake_waiters(self.session.drop_waiter(waiter))

    def take_reserved(self, lid: int) -> None:
        """The reserved id becomes a link's (the caller adds the link at once)."""
        self.session.take_reserved(lid)

    def release_id(self, lid: int) -> None:
        """Give back a reservation that was not used."""
        self._wake_waiters(self.session.release_id(lid))

    # ------------------------------------------------------------------ between engine modules
    # (api, links and passthrough use these rather than the engine's private state:
    # docs/design.md 4c "Between engine modules")
    def drop_link(self, lid: int) -> None:
        """Take id ``lid`` out of the link table without handing it to a waiting connect:
        it stays reserved for the caller, who examines it next (:meth:`reclaim_id`) and
        then opens on it (:meth:`take_reserved`) or gives it back (:meth:`release_id`)."""
        self.session.remove(lid)

    def attach_mqtt(self, client: Any) -> None:
        """The module's MQTT client (api.Mqtt): it gets subscription messages, MQTT link
        events and resets."""
        self._mqtt = client

    def on_urc(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for WiFi/SoftAP URCs; returns a function that removes it."""
        self._urc_callbacks.append(callback)
        return lambda: self._urc_callbacks.remove(callback)

    @property
    def usable(self) -> bool:
        """The module is initialised and not recovering: commands may run."""
        return self._usable.is_set()

    async def until_usable(self) -> None:
        """Wait, with no limit, until the module is usable (see :meth:`wait_usable`)."""
        await self._usable.wait()

    async def wait_reader_done(self) -> None:
        """Wait until the reader task has ended (after :meth:`aclose`); at once if
        it never started (the port could not be opened)."""
        if self._reader_started:
            await self._reader_done.wait()

    def spawn(self, async_fn: Callable[..., Any], *args: Any) -> bool:
        """Run ``async_fn(*args)`` as a background task of the engine; False (nothing
        started) before :meth:`start`."""
        if self._nursery is None:
            return False
        self._nursery.start_soon(async_fn, *args)
        return True

    async def start_task(self, async_fn: Callable[..., Any], *args: Any) -> Any:
        """Start ``async_fn(*args)`` as a task of the engine and wait for its
        ``task_status.started()`` (trio's ``Nursery.start``)."""
        if self._nursery is None:
            raise RuntimeError(f"{self.name}: the engine is not started")
        return await self._nursery.start(async_fn, *args)

    def close_link_soon(self, link: Any) -> bool:
        """CIPCLOSE a failed link in the background (errors logged); False before start."""
        return self.spawn(self._close_quietly, link)

    def exclusive(self) -> trio.Lock:
        """The command lock, for ``async with``: while held no other command runs (a
        passthrough session holds it; use :meth:`command_held` meanwhile)."""
        return self._cmd_lock

    async def command_held(self, request: P.Request, timeout: Optional[float] = None, *,
                           parse: bool = True) -> Response:
        """Run one command while the caller holds the command lock (:meth:`exclusive`).
        No timeout recovery: no answer raises CommandTimeout; ERROR is returned, not raised."""
        resp = await self._exec(request, self.timeout_for(request.name, timeout), internal=True)
        if parse:
            self._parse(request, resp)
        return resp

    async def await_prompt(self, request: P.Request, timeout: float) -> Command:
        """Write a command that answers ``>`` (AT+CIPSEND in passthrough) with the framer
        set to turn raw at the prompt, and wait at most ``timeout`` for the prompt, a final
        result, a busy or an error; returns the command (the framer stays raw only if it
        was prompted).  The caller holds the command lock."""
        self._framer.raw_on_prompt = True
        cmd = self.start_command(request, True)
        try:
            await self.write(request.encode())
            with trio.move_on_after(timeout):
                while not (cmd.prompted or cmd.final or cmd.error is not None
                           or cmd.busy_at is not None):
                    await self.wait_command_change()
        finally:
            self.end_command(cmd)
        if not cmd.prompted:
            self._framer.raw_on_prompt = False
        return cmd

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

    # ------------------------------------------------------------------ sending
    def wake_sender(self) -> None:
        self._tx_wakeup.set()

    async def _sender(self) -> None:
        while not self._closing:
            await self._tx_wakeup.wait()
            self._tx_wakeup = trio.Event()
            while not self._closing:
                ready = [l for l in self.session.links.values() if l.tx_ready()]
                if not ready:
                    break
                ready.sort(key=lambda l: (l.id - self._rr) % MAX_LINKS)
                link = ready[0]
                self._rr = (link.id + 1) % MAX_LINKS
                try:
                    await link.send_some()
                except E.WizError as exc:
                    log.debug("%s: send on link %d: %r", self.name, link.id, exc)
                except Exception:
                    log.exception("%s: sender failed on link %d", self.name, link.id)
                    link.fail(E.SendFailed("internal error while sending", link=link.id))

    #: what the engine does about each thing the session reports
    _EFFECTS: ClassVar[Dict[type, Callable[..., None]]] = {
        S.PromptReady: _on_prompt_ready,
        S.CommandFinished: _on_command_event,
        S.OkHeld: _on_command_event,
        S.BusySeen: _on_command_event,
        S.BusyExpired: _on_command_event,
        S.StrayOk: _on_stray_ok,
        S.DataReceived: _on_data_received,
        S.PassthroughData: _on_passthrough_data,
        S.LinkAccepted: _on_link_accepted,
        S.LinkConnected: _on_link_connected,
        S.LinkClosed: _on_link_closed,
        S.LinkConnectFailed: _on_link_connect_failed,
        S.StaleCloseHit: _on_stale_close_hit,
        S.BareLinkEvent: _on_bare_link_event,
        S.SegmentAcked: _on_segment_acked,
        S.SendFailed: _on_send_failed,
        S.IdGranted: _on_id_granted,
        S.IpdSpill: _on_ipd_spill,
        S.GhostData: _on_ghost,
        S.ModuleReset: _on_module_reset,
        S.ProbeWanted: _on_probe_wanted,
        S.StateCheckWanted: _on_state_check_wanted,
        S.WifiChanged: _on_urc,
        S.InfoUrc: _on_urc,
        S.MqttMessage: _on_mqtt_message,
        S.Ignored: _on_ignored,
    }


def _check(resp: Response) -> None:
    if resp.result in ("OK", "SEND OK", "CLOSE"):
        return
    lines = resp.lines()
    if "NOT OUTPUT MODE!" in resp.notes:
        raise E.NotOutputMode(f"{resp.name}: NOT OUTPUT MODE!", command=resp.name,
                              result=resp.result, lines=lines)
    if "NOT GPIO MODE!" in resp.notes:
        raise E.NotGpioMode(f"{resp.name}: NOT GPIO MODE!", command=resp.name,
                            result=resp.result, lines=lines)
    if resp.result == "BUSY":
        raise E.Busy(f"{resp.name}: busy after the data was written", command=resp.name,
                     result="busy", lines=lines)
    detail = "; ".join(lines)
    raise E.CommandError(f"{resp.name} failed: {resp.result}" + (f" ({detail})" if detail else ""),
                         command=resp.name, result=resp.result, lines=lines)


def _firmware_of(resp: Response) -> Optional[str]:
    for line in resp.lines():
        if line.startswith("AT version:"):
            return line[len("AT version:"):].split("(")[0].strip()
    return None


#: responses that carry a secret in lines the codec's redact cannot recognise alone
_SECRET_ANSWERS = frozenset({"MQTTSET", "AZSET", "CWSAP_CUR", "CWSAP_DEF", "AWSPKSEND",
                             "CLICASEND", "CASEND"})
_PASSWORD_TEXT = re.compile(r"(?i)(password\s*[:=]\s*).*")


def _redact_event(ev: Event, command: Optional[str] = None) -> str:
    if isinstance(ev, (Info, Text)):
        try:
            line = (f"+{ev.name}:{ev.value}" if isinstance(ev, Info) else ev.text)
            if command in _SECRET_ANSWERS:
                return f"<{len(line)}-character {command} answer line, redacted>"
            if command is None and isinstance(ev, Text) and line.startswith('"'):
                # a bare answer whose command is unknown (late, after a timeout): it may
                # be AT+MQTTSET?'s, which carries the password
                return f"<{len(line)}-character answer line, redacted>"
            line = _PASSWORD_TEXT.sub(r"\1***", line)
            return P.redact(line.encode("utf-8", "surrogateescape"), command).decode("utf-8", "replace")
        except Exception:
            return "<line>"
    if isinstance(ev, Subscription):
        return f"Subscription(topic={ev.topic!r}, {len(ev.data)} bytes)"
    if isinstance(ev, Echo):
        # the command line itself (ATE1): its password goes through redact like ours
        text = _PASSWORD_TEXT.sub(r"\1***", ev.text)
        return "Echo " + repr(P.redact(text.encode("utf-8", "surrogateescape")))
    if isinstance(ev, Garbage):
        # may be a garbled echo, which no pattern recognises: the size, not the bytes
        return f"Garbage({ev.reason}, {len(ev.data)} bytes)"
    if isinstance(ev, Data):
        return f"Data(link={ev.link}, {len(ev.payload)} bytes)"
    return repr(ev)
