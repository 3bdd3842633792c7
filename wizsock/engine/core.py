"""The engine: one owner of the UART, one command in flight, links, recovery.

Structure (all on one trio loop):

* the **reader** task reads the port's descriptor from the event loop
  (``wait_readable``, then everything available) -- ttys, ptys, ``socket://``
  and ``wizemu://`` have one; a port without one is read in a worker thread --
  and feeds every byte to ONE framer; nothing else reads or flushes the port.
  Writes go to the same descriptor (``wait_writable`` when the port is full).  Events are dispatched synchronously, in order, by ``_dispatch``:
  URCs (``+IPD``, ``<id>,CLOSED``, ``ready``, MQTT messages, ...) go to their
  owner whatever command is running; the rest belongs to the command in flight.
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
import weakref
from collections import deque
from types import MappingProxyType
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional

import trio

from .. import errors as E
from .. import protocol as P
from ..framer import (Busy, Data, Echo, Framer, Garbage, Info, LinkEvent, Prompt, Ready,
                      Recv, Result, SendBufAck, Subscription, Text, Wifi)

log = logging.getLogger("wizsock.engine")
wire_log = logging.getLogger("wizsock.engine.at")

#: the module's UART rates (spec 3.1.7), in the order tried after the configured one
BAUD_RATES = (115200, 921600, 2000000, 1500000, 1000000, 460800, 230400, 57600, 38400,
              19200, 14400, 9600, 4800, 2400, 1800, 1200, 600)
MAX_LINKS = 5
MAX_SEND = 2048            # AT+CIPSEND / CIPSENDBUF length limit
SENDBUF_SIZE = 21900       # the module's TCP send buffer (spec 3.3.11)
READ_MAX = 1 << 16         # bytes per read of the port
DRAIN_MAX = 1 << 18        # bytes the reader takes per wake-up before letting others run
WRITE_TIMEOUT = 30.0       # a write the port does not take in this long fails (CTS held off)
#: the reader's gathering pause on a flowing stream (see Engine._read_loop_fd)
COALESCE_MIN = 256         # a read at least this long means a stream is flowing
COALESCE_BYTES = 4096      # gather about this much wire time (a tty buffers 4 KiB per read)
COALESCE_MAX = 0.020       # ... but never pause longer than this

FINAL = frozenset({"OK", "ERROR", "FAIL", "SEND OK", "SEND FAIL"})
PROMPT_COMMANDS = frozenset({"CIPSEND", "CIPSENDEX", "CIPSENDBUF", "CASEND", "CLICASEND",
                             "AWSPKSEND"})
SEND_COMMANDS = frozenset({"CIPSEND", "CIPSENDEX", "CIPSENDBUF"})

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
#: a "busy" may be stale (the tail of an earlier burst): wait this long for a late
#: result before repeating the command
BUSY_GRACE = 0.25

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
#: an OK that comes before any of the lines its command prints is held this long:
#: lines that follow at once show it was a stray OK, not an empty answer
OK_GRACE = 0.03
#: a payload line that would start an AT command if the module's command parser
#: read it (after a real reset): such a payload is never written as a filler
_COMMAND_LIKE = re.compile(rb"(?:^|[\r\n])[\x00- ]*[Aa][Tt]")

#: what a UART glitch leaves between two units: a short burst of non-printing bytes.
#: A spilled payload tail is the peer's bytes, with a printable one in it unless it
#: is a few bytes long and all below 0x20 (probability 1/8 per byte)
_NOISE = re.compile(rb"[\x00-\x1f]{1,8}")

_SEG_FAIL = re.compile(r"^(?:(\d+),)?(\d+),SEND FAIL$")
_URC_INFO = frozenset({"STA_CONNECTED", "DIST_STA_IP", "STA_DISCONNECTED"})


class Response:
    """What a finished command produced."""

    __slots__ = ("name", "form", "result", "events", "notes", "recv", "record")

    def __init__(self, name, form):
        self.name = name
        self.form = form
        self.result: Optional[str] = None
        self.events: List[Any] = []
        self.notes: List[str] = []
        self.recv: Optional[int] = None
        self.record = None

    @property
    def ok(self):
        return self.result in ("OK", "SEND OK")

    def lines(self):
        out = []
        for ev in self.events:
            if isinstance(ev, Info):
                out.append(f"+{ev.name}" + ("" if ev.value is None else ":" + ev.value))
            elif isinstance(ev, Text):
                out.append(ev.text)
            elif isinstance(ev, LinkEvent):
                out.append(ev.state if ev.link is None else f"{ev.link},{ev.state}")
        return out + list(self.notes)

    def __repr__(self):
        return f"Response({self.name!r}, {self.result!r}, lines={self.lines()!r})"


class _Cmd:
    """The command in flight (seen by the dispatcher)."""

    def __init__(self, req, wants_prompt):
        self.req = req
        self.name = req.name
        self.resp = Response(req.name, req.form)
        self.wants_prompt = wants_prompt
        self.prompted = False
        self.data_written = False
        self.busy_at: Optional[float] = None
        self.ok_at: Optional[float] = None     # an OK held back (OK_GRACE)
        self.expects_lines = _expects_lines(req)
        self.final = False
        self.error: Optional[BaseException] = None
        self._changed = trio.Event()

    def kick(self):
        self._changed.set()

    async def wait_change(self):
        await self._changed.wait()
        self._changed = trio.Event()

    def finish(self, code):
        self.resp.result = code
        self.final = True
        self.kick()


def port_fd(port) -> Optional[int]:
    """The descriptor the engine reads and writes itself, or None (worker threads then).

    pyserial's ttys/ptys and ``socket://`` expose theirs through ``fileno()``, as
    ``wizemu://`` does.  Only when the class that implements ``read`` and ``write``
    is the one that gives the descriptor: a wrapper that overrides them (``spy://``
    logs the traffic) must keep seeing every byte.  POSIX only (on Windows
    ``os.read`` cannot read a socket handle)."""
    if os.name != "posix":
        return None
    cls = type(port)

    def owner(name):
        return next((k for k in cls.__mro__ if name in vars(k)), None)

    if owner("fileno") is None or not (owner("fileno") is owner("read") is owner("write")):
        return None
    try:
        fd = port.fileno()
    except (OSError, ValueError, AttributeError):   # io.UnsupportedOperation is an OSError
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


def _expects_lines(request) -> bool:
    """Whether the module prints lines before this command's OK (a response shape)."""
    spec = P.COMMANDS.get(request.name) if hasattr(P.COMMANDS, "get") else None
    form = getattr(spec, "forms", {}).get(request.form) if spec is not None else None
    return getattr(form, "response", None) is not None


def req(name: str, form: str, **params):
    """Build a request through the codec (the only place AT text is made)."""
    spec = P.COMMANDS[name]
    return getattr(spec, form)(**params)


class Engine:
    """One module.  Use :func:`wizsock.open_module` rather than this class directly."""

    def __init__(self, port, baudrate=115200, *, timeouts: Optional[Dict[str, float]] = None,
                 hunt_baud=True, flow_control=False, rx_limit=1 << 20, rx_high=None,
                 rx_low=None, use_sendbuf=True, read_timeout=0.02, serial_kwargs=None,
                 probe_interval: Optional[float] = None, name=None, trace=None):
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
        self.mux = True
        self.wifi_state: Optional[str] = None
        self.station_ip: Optional[str] = None
        self.reset_count = 0
        self.resets: List[float] = []
        self.last_reset_reason: Optional[str] = None

        self._port = None
        self._framer = Framer(max_ipd=8192, max_line=4096)
        self._cmd: Optional[_Cmd] = None
        self._cmd_lock = trio.Lock()
        self._write_lock = trio.Lock()
        self._usable = trio.Event()       # set when initialised and not recovering
        self._need_init = trio.Event()
        self._closing = False
        self._nursery: Optional[trio.Nursery] = None
        self._garbage_times: deque = deque(maxlen=8)
        self._rts = True
        self._reader_done = trio.Event()
        self._reader_scope = trio.CancelScope()
        self._fd: Optional[int] = None     # the port's descriptor when the loop does its I/O
        self._coalescing: Optional[trio.CancelScope] = None   # the reader's gathering pause
        #: reads of the port and the bytes they gave (diagnostics, benchmarks)
        self.rx_reads = 0
        self.rx_bytes = 0
        self._initialising = False
        self._init_ready_seen = False
        self._last_rx = 0.0
        self._last_garbage_probe = 0.0
        self._session: Dict[str, Any] = {}
        self.api = None
        # recovery (see _owe, _settle): bytes the module may still be waiting for after a
        # prompt command ended early; whether late answers may still be on their way;
        # links the module reported CLOSED (a later +IPD on the id proves it false)
        self._owed: Optional[bytes] = None
        self._resync = False
        self._ghosts: Dict[int, Any] = {}
        self._last_data: Optional[tuple] = None
        self._held: Optional[tuple] = None      # (link, payload, remote): see _on_data
        self._cut: "weakref.WeakSet[Any]" = weakref.WeakSet()   # links whose stream is cut
        self._last_line = 0.0       # when the last line/prompt (not +IPD data) arrived

        # links
        from .links import Link, Server  # noqa: F401  (cycle-free import)
        self._links: Dict[int, Any] = {}
        self._generations = [0] * MAX_LINKS
        # the link scheduler: ids handed to waiters (FIFO) but not yet opened
        self._reserved: set = set()
        self._id_waiters: deque = deque()
        self._server = None
        self._tx_wakeup = trio.Event()
        self._rr = 0
        self._mqtt = None  # set by api.Mqtt
        self._pt = None    # the passthrough session (passthrough.Passthrough) while one is open
        self._urc_callbacks: List[Any] = []
        self.token: Optional[trio.lowlevel.TrioToken] = None
        self._taps: List[Callable[[str, Any, Optional[str]], None]] = []
        self._trace = None
        if trace is not None:       # a path or an open text file: docs/design.md 4e
            from .trace import TraceWriter
            self._trace = TraceWriter(trace, port=port, baudrate=self.baudrate)
            self.add_tap(self._trace)

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

    def _tap(self, kind, item):
        cmd = self._cmd
        name = cmd.name if cmd is not None and not cmd.final else None
        for cb in list(self._taps):
            try:
                cb(kind, item, name)
            except Exception:
                log.exception("%s: UART tap %r failed; removed", self.name, cb)
                if cb in self._taps:
                    self._taps.remove(cb)

    # ------------------------------------------------------------------ lifecycle
    async def start(self, nursery: trio.Nursery):
        import serial
        from .. import _orig
        kw = dict(baudrate=self.baudrate, timeout=self.read_timeout, write_timeout=30)
        kw.update(self.serial_kwargs)
        if isinstance(self.port_url, str):
            with _orig.internal():
                self._port = await trio.to_thread.run_sync(
                    lambda: serial.serial_for_url(self.port_url, **kw))
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

    async def aclose(self):
        if self._closing:
            return
        with trio.CancelScope(shield=True):
            # close links politely while the module still answers
            with trio.move_on_after(3):
                for link in list(self._links.values()):
                    if hasattr(link, "aclose"):
                        with trio.move_on_after(1.5):
                            try:
                                await link.aclose()
                            except Exception:
                                pass
            pt = self._pt
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
            for link in list(self._links.values()):
                link.fail(err)
            self._links.clear()
            if self._cmd is not None and not self._cmd.final:
                self._cmd.error = E.LinkClosed("module closed")
                self._cmd.kick()
            if self._mqtt is not None:
                self._mqtt.shutdown()
            self._reader_scope.cancel()
            port = self._port
            if port is not None and self._fd is None:
                try:
                    port.cancel_read()   # the reader's thread
                except Exception:
                    pass

    def close_port(self):
        if self._trace is not None:
            self._trace.close()
        if self._port is not None:
            try:
                self._port.close()
            except Exception:  # pragma: no cover
                pass

    # ------------------------------------------------------------------ reading
    def _read_some(self):
        port = self._port
        data = port.read(1)
        if data:
            n = port.in_waiting
            if n:
                data += port.read(min(n, READ_MAX))
        return data

    async def _reader(self):
        try:
            with self._reader_scope:
                if self._fd is not None:
                    await self._read_loop_fd(self._fd)
                else:
                    await self._read_loop()
        finally:
            self._reader_done.set()

    async def _read_loop_fd(self, fd):
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
                    if total:
                        break          # drained (a tty answers b"" when empty)
                    if not self._closing:
                        self._port_failed(EOFError("the port reports readable but gives no "
                                                   "data (device disconnected or peer closed)"))
                    return
                total += len(data)
                self._feed(data)
                if self._closing:
                    return
            if total >= COALESCE_MIN and self._cmd is None:
                with trio.move_on_after(self._coalesce_delay()) as self._coalescing:
                    await trio.sleep_forever()
                self._coalescing = None

    def _coalesce_delay(self):
        try:
            baud = float(self._port.baudrate) or 115200.0
        except (TypeError, ValueError, AttributeError):
            baud = 115200.0
        return min(COALESCE_MAX, COALESCE_BYTES * 10.0 / baud)

    async def _read_loop(self):
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

    def _port_failed(self, exc):
        log.error("%s: serial read failed: %r", self.name, exc)
        self._fail_everything(E.WizError(f"serial port failed: {exc!r}"))

    @property
    def port_io(self) -> str:
        """``"loop"``: the port's descriptor is read and written from the event loop;
        ``"thread"``: through pyserial in worker threads (a port without one)."""
        return "loop" if self._fd is not None else "thread"

    def _feed(self, data):
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
    def _dispatch(self, ev):
        if self._taps:
            self._tap("rx", ev)
        cls = type(ev)
        cmd = self._cmd
        held, self._held = self._held, None
        after_data, self._last_data = self._last_data, None
        if held is not None or after_data is not None:
            # the unit after a +IPD payload: an unreadable line, or text that the
            # command in flight (if any) does not print, means its length lied
            spill = (cls is Garbage and not _NOISE.fullmatch(bytes(ev.data))) or (
                cls is Text and (cmd is None or cmd.final or not cmd.expects_lines)
                and not _SEG_FAIL.match(ev.text))
            if held is not None:
                if spill:
                    self._on_ipd_spill(held[0], 0)      # never delivered
                else:
                    self._deliver(*held)
                    self._last_data = None
            elif spill:
                self._on_ipd_spill(*after_data)
        if cls is Data:
            self._on_data(ev)
            return
        self._last_line = trio.current_time()
        if wire_log.isEnabledFor(logging.DEBUG):
            wire_log.debug("%s <- %s", self.name,
                           _redact_event(ev, cmd.name if cmd is not None else None))
        if cls is LinkEvent:
            if ev.link is None or not self.mux:
                if cmd is not None and not cmd.final:
                    cmd.resp.events.append(ev)
                elif self._mqtt is not None:
                    self._mqtt.link_event_received(ev)
                return
            self._on_link_event(ev)
            return
        if cls is SendBufAck:
            self._on_sendbuf_ack(ev)
            return
        if cls is Ready:
            self._on_ready()
            return
        if cls is Subscription:
            if self._mqtt is not None:
                self._mqtt.message_received(ev)
            else:
                log.info("%s: subscription message with no MQTT client: %r", self.name, ev.topic)
            return
        if cls is Wifi:
            self.wifi_state = ev.state
            if ev.state == "DISCONNECT":
                self.station_ip = None
            for cb in list(self._urc_callbacks):
                cb(ev)
            return
        if cls is Garbage:
            log.debug("%s: garbage from module: %s", self.name, _redact_event(ev))
            self._on_garbage()
            return
        if cls is Echo:
            return
        if cls is Info and ev.name in _URC_INFO:
            for cb in list(self._urc_callbacks):
                cb(ev)
            return
        if cls is Text:
            m = _SEG_FAIL.match(ev.text)
            if m:
                self._on_async_send_fail(int(m.group(1)) if m.group(1) else None, int(m.group(2)))
                return
        if cmd is None or cmd.final:
            if cls is Result and ev.code == "SEND FAIL":
                self._on_async_send_fail(None, None)
            elif cls is Busy:
                log.debug("%s: busy with no command in flight (tail of a burst)", self.name)
            else:
                log.debug("%s: unsolicited %s", self.name, _redact_event(ev))
            return
        # ---- belongs to the command in flight
        if cls is Result:
            code = ev.code
            if code in ("SEND OK", "SEND FAIL"):
                if cmd.name in ("CIPSEND", "CIPSENDEX") and cmd.data_written:
                    cmd.finish(code)
                elif code == "SEND FAIL":
                    self._on_async_send_fail(None, None)
                return
            if code == "OK" and cmd.wants_prompt and not cmd.prompted:
                cmd.resp.notes.append(code)      # CIPSEND prints OK before ">"
                return
            if (code == "OK" and cmd.expects_lines and not cmd.resp.events
                    and cmd.ok_at is None):
                # its own OK (an empty answer) or a stray one: lines that follow tell
                cmd.ok_at = time.monotonic()
                cmd.kick()
                return
            if code in ("ERROR", "FAIL"):
                # possibly a stray one, and the command's real answer still to come
                self._resync = True
            if code in FINAL:
                cmd.finish(code)
            elif code == "CLOSE" and cmd.name == "MQTTDIS":
                cmd.finish(code)
            else:
                cmd.resp.notes.append(code)
                if code in ("ALREADY CONNECTED", "link is not valid") and cmd.wants_prompt:
                    cmd.finish("ERROR")
            return
        if cls is Prompt:
            if cmd.wants_prompt and not cmd.prompted:
                cmd.prompted = True
                cmd.busy_at = None
                cmd.kick()
            else:
                log.debug("%s: stray prompt during %s", self.name, cmd.name)
            return
        if cls is Busy:
            if cmd.data_written:
                # data went out and the module says busy: whether it was taken is
                # unknown, so the send fails (it is never repeated)
                cmd.resp.notes.append("busy " + ev.kind)
                cmd.finish("BUSY")
            elif not cmd.prompted:
                cmd.busy_at = time.monotonic()
                cmd.kick()
            return
        if cls is Recv:
            cmd.resp.recv = ev.n
            if cmd.name == "CIPSENDBUF" and cmd.data_written:
                cmd.finish("OK")
            return
        if cmd.ok_at is not None:
            log.warning("%s: an OK came before the answer to %s; it was not its own",
                        self.name, cmd.name)
            cmd.ok_at = None
            self._resync = True
        cmd.resp.events.append(ev)

    # ------------------------------------------------------------------ commands
    def timeout_for(self, name, override=None):
        if override is not None:
            return override
        return self.timeouts.get(name, DEFAULT_TIMEOUT)

    async def wait_usable(self, timeout):
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

    async def command(self, request, *, timeout=None, payload=None, retry_busy=True,
                      check=True, parse=True, parse_opts=None):
        """Run one command; returns a :class:`Response` (``.record`` parsed by the codec).

        With ``check`` (default) ERROR/FAIL raise :class:`~wizsock.errors.CommandError`.
        ``payload`` is written after the ``>`` prompt.  Cancel-safe: once the
        command is on the wire it runs to completion under a shield.
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
                resp = await self._exec(request, tmo, payload=payload, retry_busy=retry_busy)
        if parse:
            self._parse(request, resp, parse_opts)
        if check:
            _check(resp)
        return resp

    def _parse(self, request, resp, opts=None):
        spec = P.COMMANDS.get(request.name) if hasattr(P.COMMANDS, "get") else None
        if spec is None or resp.result not in ("OK", "SEND OK"):
            return
        try:
            resp.record = spec.parse_response(request.form, resp.events, **(opts or {}))
        except Exception as exc:
            lines = resp.lines()
            log.warning("%s: could not parse the %s response (%d line(s)): %s", self.name,
                        request.name, len(lines), type(exc).__name__)
            # a final result without the lines it needs is often a stray or early one:
            # the real answer may still come, so the next command waits for silence
            self._resync = True
            secret = request.name in _SECRET_ANSWERS
            raise E.BadResponse(
                f"{self.name}: the answer to {request.name} cannot be read ({len(lines)} "
                f"line(s) before {resp.result}; {type(exc).__name__})",
                command=request.name, lines=() if secret else lines) from None

    async def _exec(self, request, timeout, *, payload=None, retry_busy=True, internal=False):
        """Send one command and wait for its final result.  Caller holds the lock."""
        wire = request.encode()
        wants_prompt = payload is not None
        attempt = 0
        started = trio.current_time()
        while True:
            await self._settle()
            cmd = _Cmd(request, wants_prompt)
            self._cmd = cmd
            self.update_rts()
            outcome = None
            try:
                await self.write(wire, redacted=True)
                outcome = await self._wait(cmd, timeout, payload)
            finally:
                if self._cmd is cmd:
                    self._cmd = None
                self.update_rts()
                if wants_prompt and not cmd.data_written and not cmd.final and outcome != "busy":
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
            return cmd.resp

    async def _wait(self, cmd, timeout, payload):
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
            if cmd.wants_prompt and cmd.prompted and not cmd.data_written:
                # set before the write: the answer may be dispatched before it returns
                cmd.data_written = True
                await self.write(payload, redacted=None)
                if cmd.name == "CIPSENDBUF" and not cmd.final:
                    # the module answers nothing after CIPSENDBUF data (spec 3.3.9):
                    # the segment is in its buffer; "<link>,<seg>,SEND OK" comes later
                    cmd.finish("OK")
                continue
            wait_until = deadline
            if cmd.ok_at is not None:
                wait_until = min(deadline, trio.current_time() + max(
                    0.0, OK_GRACE - (time.monotonic() - cmd.ok_at)))
            if cmd.busy_at is not None:
                grace_end = trio.current_time() + max(
                    0.0, BUSY_GRACE - (time.monotonic() - cmd.busy_at))
                wait_until = min(deadline, grace_end)
            with trio.move_on_at(wait_until):
                await cmd.wait_change()
                continue
            if cmd.final or cmd.error is not None or (cmd.prompted and not cmd.data_written):
                continue
            if cmd.ok_at is not None and time.monotonic() - cmd.ok_at >= OK_GRACE - 1e-3:
                cmd.finish("OK")        # nothing followed: the answer is empty
                continue
            if cmd.busy_at is not None and time.monotonic() - cmd.busy_at >= BUSY_GRACE - 1e-3:
                return "busy"
            if trio.current_time() >= min(hard, max(deadline, self._last_rx + timeout)):
                return "timeout"

    async def _after_timeout(self, request, timeout):
        """A command got no answer: probe; an unresponsive module is recovered."""
        log.warning("%s: no answer to %s within %.1fs; probing", self.name, request.name, timeout)
        if await self.probe(tries=3, wait=0.5):
            raise E.CommandTimeout(f"{self.name}: no answer to {request.name} within {timeout}s "
                                   f"(the module answers AT)", command=request.name,
                                   timeout=timeout)
        self.declare_reset(f"module stopped answering (after {request.name})")
        raise E.ModuleUnresponsive(f"{self.name}: module stopped answering ({request.name}); "
                                   f"recovering", command=request.name, timeout=timeout)

    async def write(self, data, redacted=True):
        """Write bytes to the port (one writer at a time).  ``redacted``: a command line
        (tapped as ``"tx"``, logged redacted); otherwise payload (``"data"``, logged by size)."""
        if self._taps:
            self._tap("tx" if redacted else "data", data)
        if wire_log.isEnabledFor(logging.DEBUG):
            if redacted:
                wire_log.debug("%s -> %r", self.name, P.redact(bytes(data).rstrip(b"\r\n")))
            else:
                wire_log.debug("%s -> <%d bytes of data>", self.name, len(data))
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

    async def probe(self, tries=3, wait=0.3):
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
    async def _initialise(self, first=False):
        """Find the module, sync, set echo off, CIPMUX=1, CIPDINFO=1, learn the version.

        Caller holds the command lock.  A ``ready`` seen meanwhile (the module
        was still booting) starts the sequence again."""
        self._initialising = True
        try:
            for _ in range(5):
                self._init_ready_seen = False
                await self._initialise_once(first)
                if not self._init_ready_seen:
                    break
                log.info("%s: module restarted during initialisation; again", self.name)
            await self._restore_session()
        finally:
            self._initialising = False

    async def _restore_session(self):
        """After a reset: the WiFi mode and the AP joined through this engine (CUR settings)."""
        for name in ("CWMODE_CUR", "CWJAP_CUR"):
            r = self._session.get(name)
            if r is None:
                continue
            try:
                resp = await self._exec(r, self.timeout_for(r.name), internal=True)
                if resp.result != "OK":
                    log.warning("%s: restoring %s after reset: %s", self.name, name, resp.result)
            except E.WizError as exc:
                log.warning("%s: restoring %s after reset: %s", self.name, name, exc)

    def remember(self, request):
        """Keep a CUR setting to replay after a module reset (mode, join)."""
        self._session[request.name] = request

    def forget(self, name):
        self._session.pop(name, None)

    async def _initialise_once(self, first):
        self._framer.reset()
        found = await self._find_module()
        if not found:
            raise E.ModuleUnresponsive(f"{self.name}: no answer to AT at any baud rate")
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
        self.mux = True
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

    async def _find_module(self):
        port = self._port
        rates = [self.baudrate] + [r for r in BAUD_RATES if r != self.baudrate]
        if not self.hunt_baud:
            rates = rates[:1]
        for rate in rates:
            if port.baudrate != rate:
                port.baudrate = rate
                self._framer.reset()
            # a fresh module may still be booting: a few tries at the configured rate
            tries = 6 if rate == self.baudrate else 2
            if await self.probe(tries=tries, wait=0.25):
                # discard whatever was pending before the probe's OK
                if rate != self.baudrate:
                    await self._switch_baud(rate)
                return True
        return False

    async def _switch_baud(self, found_rate):
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
    def _on_ready(self):
        if self._initialising:
            self._init_ready_seen = True
            return
        self.declare_reset("module reset (ready)")

    def _on_garbage(self):
        now = time.monotonic()
        self._garbage_times.append(now)
        # a burst of unreadable lines with nothing valid between: boot noise or a
        # baud-rate change; probe (handled by the supervisor)
        # (one probe per 0.5 s at most; a probe is a 4-byte AT)
        if now - self._last_garbage_probe > 0.5:
            self._last_garbage_probe = now
            if self._usable.is_set() and self._nursery is not None and not self._closing:
                self._nursery.start_soon(self._check_alive)

    async def _check_alive(self):
        try:
            async with self._cmd_lock:
                if not self._usable.is_set() or self._closing:
                    return
                with trio.CancelScope(shield=True):
                    if not await self.probe(tries=3, wait=0.4):
                        self.declare_reset("module unreadable (boot noise or baud change)")
        except E.WizError as exc:          # a reset meanwhile: the supervisor handles it
            log.debug("%s: liveness probe: %s", self.name, exc)

    async def _watchdog(self):
        while not self._closing:
            await trio.sleep(self.probe_interval)
            if self._cmd_lock.locked() or not self._usable.is_set():
                continue
            await self._check_alive()

    def declare_reset(self, reason):
        """The module reset (or must be taken as reset): everything open fails with
        ModuleReset and the supervisor re-initialises it."""
        if self._closing:
            return
        self.reset_count += 1
        self.resets.append(time.monotonic())
        self.last_reset_reason = reason
        if self._trace is not None:
            self._trace.note(reason)
        log.warning("%s: %s: failing %d link(s) and re-initialising", self.name, reason,
                    len(self._links))
        # the module may not have reset at all and still finish what it was printing
        self._resync = True
        self._usable = trio.Event() if self._usable.is_set() else self._usable
        # a reset module is in command mode whatever it was doing
        self._framer.raw = False
        self._framer.raw_on_prompt = False
        err = E.ModuleReset(f"{self.name}: {reason}")
        if self._pt is not None:
            self._pt.fail(err)
        for link in list(self._links.values()):
            link.fail(err)
        self._links.clear()
        if self._server is not None:
            self._server.fail(err)
            self._server = None
        if self._mqtt is not None:
            self._mqtt.module_reset(err)
        cmd = self._cmd
        if cmd is not None and not cmd.final:
            cmd.error = err
            cmd.kick()
        self._need_init.set()

    def _fail_everything(self, err):
        self._closing = True
        for link in list(self._links.values()):
            link.fail(err)
        self._links.clear()
        cmd = self._cmd
        if cmd is not None and not cmd.final:
            cmd.error = err
            cmd.kick()

    def _owe(self, request, payload):
        """A prompt command ended before its payload was written (reset declared,
        timeout, an answer lost): the module may have printed ``>`` (or be about to)
        and then reads exactly that many bytes as data, whatever they are, so every
        AT probe would vanish into the payload.  The next exchange first writes
        bytes that complete it (see :meth:`_settle`)."""
        if request.name in SEND_COMMANDS:
            data = bytes(payload)
            # the module may also have really reset: then these bytes reach its
            # command parser, so the user's bytes are written only if no line of
            # them could start a command; otherwise NULs of the same length
            self._owed = data if not _COMMAND_LIKE.search(data) else bytes(len(data))
        else:
            # PEM uploads read up to an END line: give one (the module then refuses
            # the upload; in command mode it is one line answered ERROR)
            self._owed = b"\r\n-----END -----\r\n"
        log.warning("%s: %s ended before its %d-byte payload was written; the module may "
                    "still wait for it", self.name, request.name, len(payload))

    async def _settle(self):
        """Before a command: pay what the module may still be waiting for, and let
        late answers of an earlier exchange arrive (and be dropped as unsolicited)."""
        if self._owed is not None:
            await self._quiet(SETTLE_QUIET, SETTLE_MAX)    # its ">" comes first
            owed, self._owed = self._owed, None
            log.warning("%s: writing %d byte(s) to complete a payload the module may be "
                        "waiting for", self.name, len(owed))
            await self.write(owed, redacted=None)
            self._resync = True
        if self._resync:
            self._resync = False
            await self._quiet(SETTLE_QUIET, SETTLE_MAX)

    async def _quiet(self, gap, limit):
        """Wait until no line or prompt arrived for ``gap`` seconds (at most ``limit``);
        +IPD data does not count (a busy link must not stall the recovery)."""
        end = trio.current_time() + limit
        while True:
            now = trio.current_time()
            left = self._last_line + gap - now
            if left <= 0 or now >= end:
                return
            await trio.sleep(min(left, end - now))

    async def _ipd_watch(self):
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
            elif (self._held is not None and quiet >= HOLD_PROBE and probed_at != self._last_rx
                  and (self._cmd is None or self._cmd.final) and self._nursery is not None):
                probed_at = self._last_rx
                self._nursery.start_soon(self._check_alive)

    def _on_ipd_stall(self, lid, missing):
        self._framer.reset()
        log.warning("%s: +IPD for link %s stalled %d byte(s) short; framer resynchronised",
                    self.name, lid, missing)
        what = (f"a +IPD for link {lid} announced {missing} byte(s) more than came; "
                f"what followed it was taken as its data")
        link = self._links.get(lid if self.mux else 0)
        if link is not None:
            self._cut.add(link)
            link.fail(E.ProtocolError(f"{self.name}: {what}: the link's data is cut",
                                       link=link.id))
            if self._nursery is not None and not self._closing:
                self._nursery.start_soon(self._close_quietly, link)
        cmd = self._cmd
        if cmd is not None and not cmd.final:
            # its answer may be among the swallowed bytes: whether it ran is unknown
            cmd.error = E.BadResponse(f"{self.name}: {what}: the answer to {cmd.name} "
                                      f"may have been lost", command=cmd.name)
            cmd.kick()
        self._resync = True
        if self._nursery is not None and not self._closing:
            self._nursery.start_soon(self._check_not_reset)

    async def _check_not_reset(self):
        """Output was lost (a stalled +IPD): a ``ready`` may have been among it.  A module
        that reset has CIPMUX=0 again; then it is re-initialised like after any reset."""
        r = req("CIPMUX", "query")
        try:
            async with self._cmd_lock:
                if not self._usable.is_set() or self._closing:
                    return
                with trio.CancelScope(shield=True):
                    resp = await self._exec(r, 2.0, internal=True)
                    self._parse(r, resp)
        except E.WizError as exc:
            log.debug("%s: state check after lost output: %r", self.name, exc)
            resp = None
        if resp is None or getattr(resp.record, "mode", None) != 1:
            self.declare_reset("module state lost with the output a +IPD swallowed")

    def _on_ipd_spill(self, link, n):
        """A line the framer cannot read (or text no command asked for) right after a
        +IPD payload: the module's lines start cleanly, so the length lied.  Too short:
        the payload's tail spilled out as that line; too long: the payload took the
        start of the next unit.  Either way the last payload is not the peer's data:
        it is withdrawn if still unread, and the link fails with ProtocolError."""
        if link in self._cut or link.owner_closed:
            return
        self._cut.add(link)
        withdrawn = link.withdraw_tail(n)
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

    async def _cut_verdict(self, link, err):
        """Boot noise right after a payload looks like a spill: if the module turns out
        to have reset (``ready`` within SPILL_VERDICT) the link fails with ModuleReset,
        otherwise with ProtocolError.  Nothing after the cut is delivered meanwhile."""
        resets = self.reset_count
        await trio.sleep(SPILL_VERDICT)
        if self.reset_count != resets or link.error is not None:
            return
        link.fail(err)
        await self._close_quietly(link)

    def _on_ghost_data(self, lid):
        """Data on an id whose CLOSED we took: that CLOSED was false (the module still
        holds the connection).  The handle's stream is cut, which its reader must learn
        as an error rather than an end of file; the id is closed on the module so it can
        be used again."""
        ghost = self._ghosts.pop(lid, None)
        if ghost is None or ghost.generation != self._generations[lid] or self._closing:
            return
        log.warning("%s: data on link %d after its CLOSED: the CLOSED was false", self.name, lid)
        ghost.fail(E.ProtocolError(
            f"{self.name}: the module reported link {lid} CLOSED, then delivered more data "
            f"on it: the stream is cut", link=lid))
        if self._nursery is not None:
            self._nursery.start_soon(self._close_id_quietly, lid, ghost.generation)

    async def _close_id_quietly(self, lid, generation):
        try:
            async with self._cmd_lock:
                if lid in self._links or self._generations[lid] != generation:
                    return          # handed out meanwhile: reclaim_id deals with it
                with trio.CancelScope(shield=True):
                    await self._exec(req("CIPCLOSE", "set", link=lid if self.mux else None),
                                     self.timeout_for("CIPCLOSE"), internal=True)
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
        if lid in self._links:
            return                  # a CONNECT arrived meanwhile
        if held and held[0].tcp_type == 1 and self._server is not None:
            self._server.add_connection(lid, (held[0].remote_ip, held[0].remote_port))
            return
        if held or not resp.ok:
            log.warning("%s: link %d is held by the module but by no handle; closing it",
                        self.name, lid)
            await self.command(req("CIPCLOSE", "set", link=lid if self.mux else None),
                               check=False, parse=False)

    async def _supervisor(self):
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

    # ------------------------------------------------------------------ links: incoming
    def _on_data(self, ev):
        if self._pt is not None:          # passthrough: the UART carries one stream
            self._pt.data_received(ev.payload)
            return
        lid = ev.link if self.mux else 0
        link = self._links.get(lid)
        if link is None:
            if self._server is not None and lid is not None:
                link = self._server.implicit_accept(lid, ev.remote)
            if link is None:
                log.warning("%s: %d bytes for link %s which nobody holds; dropped", self.name,
                            len(ev.payload), lid)
                self._on_ghost_data(lid)
                return
        if link in self._cut:
            return      # its stream was cut: nothing after the cut may reach the reader
        if self._framer.mid_line:
            # the read ended inside the line after this payload: if that line turns out
            # unreadable, the +IPD length lied and this payload is not the peer's data;
            # it waits for the line (microseconds, or IPD_STALL if the line never ends)
            self._held = (link, ev.payload, ev.remote)
            return
        self._deliver(link, ev.payload, ev.remote)

    def _deliver(self, link, payload, remote):
        link.data_received(payload, remote)
        self._last_data = (link, len(payload))
        self.update_rts()

    def _on_link_event(self, ev):
        link = self._links.get(ev.link)
        if ev.state == "CONNECT":
            if link is not None:
                link.connection_made()
            elif self._server is not None:
                self._server.connection_made(ev.link)
            else:
                log.debug("%s: CONNECT on link %d which nobody opened", self.name, ev.link)
        elif ev.state == "CLOSED":
            if link is not None and link.kind == "MQTT" and self._mqtt is not None:
                self._mqtt.link_event_received(ev)
            if link is not None:
                link.connection_closed()
                if not link.opening:
                    self.free_link(link)
                    self._ghosts[ev.link] = link
            self.update_rts()
        elif ev.state == "CONNECT FAIL":
            if link is not None:
                link.connection_closed()

    def free_link(self, link):
        """Take ``link`` out of the link table if it still holds its id; the id goes
        to a waiting connect."""
        if self._links.get(link.id) is link:
            del self._links[link.id]
        self._grant_ids()

    def _on_sendbuf_ack(self, ev):
        lid = ev.link if self.mux else 0
        link = self._links.get(lid)
        if link is not None:
            link.segment_acked(ev.segment)
        self.wake_sender()

    def _on_async_send_fail(self, lid, segment):
        """SEND FAIL for CIPSENDBUF data (possibly without a link id)."""
        if lid is not None:
            cands = [self._links.get(lid)] if self._links.get(lid) is not None else []
        else:
            cands = [l for l in self._links.values() if l.unacked_segments]
        if not cands:
            log.debug("%s: SEND FAIL with no send outstanding (after a close)", self.name)
            return
        for link in cands:
            link.fail(E.SendFailed(f"link {link.id}: the module reported SEND FAIL; the "
                                    f"stream has a hole and is abandoned", link=link.id))
            if self._nursery is not None:
                self._nursery.start_soon(self._close_quietly, link)
        self.wake_sender()

    async def _close_quietly(self, link):
        try:
            await link.module_close()
        except Exception as exc:
            log.debug("%s: closing failed link %d: %r", self.name, link.id, exc)

    # ------------------------------------------------------------------ flow control
    def buffered(self):
        """Bytes received and not yet read, over all links."""
        return sum(l.buffered for l in self._links.values())

    def update_rts(self):
        """Drive RTS (hardware flow control) from the data buffered over all links;
        called whenever a link's buffer or the command in flight changed."""
        if not self.flow_control or self._port is None:
            return
        total = self.buffered()
        cmd = self._cmd
        if cmd is not None and not cmd.final:
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
    def alloc_id(self, kind):
        """A free id now, or LinkLimitError.  Waiters queued for a link come first:
        free ids are handed to them as they appear (_grant_ids), so none is free while
        anyone waits."""
        self._check_ssl_limit(kind)
        lid = None if self._id_waiters else self._free_id()
        if lid is None:
            raise E.LinkLimitError(self._limit_message())
        return lid

    def _limit_message(self, waited=None):
        held = sorted(self._links)
        msg = (f"{self.name}: all {MAX_LINKS} links are in use (the WizFi360 carries at most "
               f"{MAX_LINKS} connections at once; held: {held}")
        if self._id_waiters:
            msg += f"; {len(self._id_waiters)} connect(s) waiting"
        msg += ")"
        if waited is not None:
            msg += f"; no link was freed within {waited:g} s"
        return msg

    def _check_ssl_limit(self, kind):
        if kind == "SSL" and any(l.kind == "SSL" for l in self._links.values()):
            raise E.LinkLimitError(f"{self.name}: the module carries one SSL link at most "
                                   f"(link {next(l.id for l in self._links.values() if l.kind == 'SSL')} is SSL)")

    def _free_id(self):
        # from the top: the module numbers server connections from 0
        for lid in range(MAX_LINKS - 1, -1, -1):
            if lid not in self._links and lid not in self._reserved:
                return lid
        return None

    def _grant_ids(self):
        """Hand free ids to waiting connects, first come first served."""
        while self._id_waiters:
            lid = self._free_id()
            if lid is None:
                return
            waiter = self._id_waiters.popleft()
            self._reserved.add(lid)
            waiter["lid"] = lid
            waiter["event"].set()

    async def reserve_id(self, kind, wait):
        """Wait (FIFO, at most ``wait`` seconds; None: no limit) for a free link id and
        reserve it; the caller must hand it to :meth:`take_reserved` or
        :meth:`release_id`.  Cancellable: a cancelled waiter leaves no reservation."""
        self._check_ssl_limit(kind)
        if not self._id_waiters:
            lid = self._free_id()
            if lid is not None:
                self._reserved.add(lid)
                return lid
        if wait is not None and wait <= 0:
            raise E.LinkLimitError(self._limit_message())
        waiter = {"lid": None, "event": trio.Event()}
        self._id_waiters.append(waiter)
        try:
            with trio.move_on_after(float("inf") if wait is None else wait):
                while waiter["lid"] is None:
                    # links cleared by a reset or shutdown free ids without free_link: look again
                    self._grant_ids()
                    with trio.move_on_after(0.5):
                        await waiter["event"].wait()
        except BaseException:
            self._drop_waiter(waiter)
            raise
        if waiter["lid"] is None:
            self._drop_waiter(waiter)
            raise E.LinkLimitError(self._limit_message(waited=wait))
        return waiter["lid"]

    def _drop_waiter(self, waiter):
        try:
            self._id_waiters.remove(waiter)
        except ValueError:
            pass
        if waiter["lid"] is not None:
            self.release_id(waiter["lid"])

    def take_reserved(self, lid):
        """The reserved id becomes a link's (the caller puts it in _links at once)."""
        self._reserved.discard(lid)

    def release_id(self, lid):
        """Give back a reservation that was not used."""
        if lid in self._reserved:
            self._reserved.discard(lid)
            self._grant_ids()

    def new_generation(self, lid):
        """The next generation number of link id ``lid`` (for a new Link on it)."""
        self._generations[lid] += 1
        return self._generations[lid]

    # ------------------------------------------------------------------ between engine modules
    # (api, links and passthrough use these rather than the engine's private state:
    # docs/design.md 4c "Between engine modules")
    @property
    def links(self) -> Mapping[int, Any]:
        """Read-only view: link id -> the Link that holds it."""
        return MappingProxyType(self._links)

    def add_link(self, link) -> None:
        """Enter a new Link in the link table under its id (allocated, reserved or accepted)."""
        self._links[link.id] = link

    def drop_link(self, lid: int) -> None:
        """Take id ``lid`` out of the link table without handing it to a waiting connect
        (the caller examines the id itself next: :meth:`reclaim_id`)."""
        self._links.pop(lid, None)

    @property
    def server(self):
        """The module's TCP server (links.Server) while one listens, else None."""
        return self._server

    @server.setter
    def server(self, server) -> None:
        self._server = server

    @property
    def passthrough_session(self):
        """The open passthrough session (it receives every byte of data), else None."""
        return self._pt

    @passthrough_session.setter
    def passthrough_session(self, session) -> None:
        self._pt = session

    def attach_mqtt(self, client) -> None:
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
        """Wait until the reader task has ended (after :meth:`aclose`)."""
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

    def close_link_soon(self, link) -> bool:
        """CIPCLOSE a failed link in the background (errors logged); False before start."""
        return self.spawn(self._close_quietly, link)

    def exclusive(self) -> trio.Lock:
        """The command lock, for ``async with``: while held no other command runs (a
        passthrough session holds it; use :meth:`command_held` meanwhile)."""
        return self._cmd_lock

    async def command_held(self, request, timeout: Optional[float] = None, *,
                           parse: bool = True) -> Response:
        """Run one command while the caller holds the command lock (:meth:`exclusive`).
        No timeout recovery: no answer raises CommandTimeout; ERROR is returned, not raised."""
        resp = await self._exec(request, self.timeout_for(request.name, timeout), internal=True)
        if parse:
            self._parse(request, resp)
        return resp

    async def await_prompt(self, request, timeout: float) -> _Cmd:
        """Write a command that answers ``>`` (AT+CIPSEND in passthrough) with the framer
        set to turn raw at the prompt, and wait at most ``timeout`` for the prompt, a final
        result, a busy or an error; returns the command (the framer stays raw only if it
        was prompted).  The caller holds the command lock."""
        cmd = _Cmd(request, True)
        self._framer.raw_on_prompt = True
        self._cmd = cmd
        try:
            await self.write(request.encode())
            with trio.move_on_after(timeout):
                while not (cmd.prompted or cmd.final or cmd.error is not None
                           or cmd.busy_at is not None):
                    await cmd.wait_change()
        finally:
            if self._cmd is cmd:
                self._cmd = None
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
    def wake_sender(self):
        """Tell the sender task that a link may have bytes to send (or room again)."""
        self._tx_wakeup.set()

    async def _sender(self):
        while not self._closing:
            await self._tx_wakeup.wait()
            self._tx_wakeup = trio.Event()
            while not self._closing:
                ready = [l for l in self._links.values() if l.tx_ready()]
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


def _check(resp: Response):
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


def _firmware_of(resp):
    for line in resp.lines():
        if line.startswith("AT version:"):
            return line[len("AT version:"):].split("(")[0].strip()
    return None


#: responses that carry a secret in lines the codec's redact cannot recognise alone
_SECRET_ANSWERS = frozenset({"MQTTSET", "AZSET", "CWSAP_CUR", "CWSAP_DEF", "AWSPKSEND",
                             "CLICASEND", "CASEND"})
_PASSWORD_TEXT = re.compile(r"(?i)(password\s*[:=]\s*).*")


def _redact_event(ev, command=None):
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
