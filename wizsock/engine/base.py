"""The engine's state: its settings, the fields its parts share, and the views on them.

Owns the constructor of :class:`wizsock.engine.core.Engine` (every field the driver
keeps: the port, the framer, the sans-I/O session, the locks and events its tasks
wait on), the per-command timeouts, the session views (``mux``, ``server``,
``passthrough_session``...) and the UART taps (trace, ``wizsock spy``).  The layers
above (uart, runner, sender, recovery, core) each add one responsibility on top.
"""
from __future__ import annotations

import collections
import logging
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, List, Mapping, Optional, Tuple, Union

import trio

from ..framer import Data, Framer
from .session import Command, Session


Buffer = Union[bytes, bytearray, memoryview]

log = logging.getLogger("wizsock.engine")
wire_log = logging.getLogger("wizsock.engine.at")
#: see Engine.close_linger
CLOSE_LINGER = 0.25

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


class EngineBase:
    """The engine's fields and the views on them (see the module docstring)."""

    if TYPE_CHECKING:   # provided by the layers above (engine.core.Engine)
        def _make_accepted(self, lid: int, generation: int, remote: Any) -> Any: ...


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
        #: sans-I/O, docs/design.md section 3a; the engine does its I/O and waiting
        self.session: Session[Any] = Session(self._make_accepted, name=self.name)
        self.reset_count = 0
        #: accepted connections closed by a CIPCLOSE already on the wire for the id's
        #: previous connection (see _on_stale_close_hit)
        self.stale_close_hits = 0
        # when the latest resets came (monotonic); the count above keeps them all
        self.resets: Deque[float] = collections.deque(maxlen=100)
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
        # when the port last gave bytes, +IPD payload included: a command's timeout and
        # the +IPD stall watch count from it.  Not the session's last_line (the last
        # complete line or prompt), which the settle wait uses because data must not
        # hold it off
        self._last_rx = 0.0
        self._replay: Dict[str, Any] = {}     # CUR settings replayed after a reset
        self.api = None
        self._tx_wakeup = trio.Event()
        self._rr = 0
        self._mqtt = None  # set by api.Mqtt
        self._urc_callbacks: List[Any] = []
        self.token: Optional[trio.lowlevel.TrioToken] = None
        self._taps: List[Callable[[str, Any, Optional[str]], None]] = []
        self._trace = None
        if trace is not None:       # a path or an open text file: docs/design.md 3d
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
        """The module's TCP server (links.Server) while one is registered, else None;
        the session holds it (its ``server``)."""
        return self.session.server

    @server.setter
    def server(self, server: Any) -> None:
        self.session.set_server(server)

    @property
    def passthrough_session(self) -> Any:
        """The open passthrough session (it receives every byte of data), else None;
        the session holds it (its ``passthrough``)."""
        return self.session.passthrough

    @passthrough_session.setter
    def passthrough_session(self, session: Any) -> None:
        self.session.set_passthrough(session)

    def stop_accepting(self) -> None:
        """The server is closing: a connection from now on is nobody's (links.Server)."""
        self.session.stop_accepting()

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
