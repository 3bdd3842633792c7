"""The emulated WizFi360: UART model, command loop, URCs, boot, flash.

Threading: `Emulator.start()` runs a trio loop in a daemon thread.  Transports
feed host bytes in with `feed()` (any thread) and receive module bytes through a
sink callable `sink(data, baud)` called on the emulator thread, paced at the
current baud rate (8N1: 10 bits per byte).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import random
import socket
import tempfile
import threading
import time
from collections import Counter, deque
from importlib import resources
from typing import IO, TYPE_CHECKING, Any, Callable, Deque, Dict, Iterable, List, Literal, Optional, Tuple, TypeVar, Union

import trio

from wizsock.emulator import atparse
from wizsock.emulator.clock import PreciseClock
from wizsock.emulator.faults import Faults
from wizsock.emulator.firmware import BOOT_NOISE, derive_ap_mac
from wizsock.emulator.registry import CommandFailed, Context, ModuleState, Settings, lookup
from wizsock.emulator.uartlog import IDLE as UART_LOG_IDLE, UartLog
from wizsock.emulator.tail import Tail
from wizsock.protocol import Request

if TYPE_CHECKING:
    from wizsock.emulator.net import Net
    from wizsock.emulator.profile import TimingProfile
    from wizsock.emulator.transports import PtyTransport, TcpTransport

_T = TypeVar("_T")

log = logging.getLogger("wizsock.emulator")

# What the emulator keeps of its past, for tests and tools that read it: bounded, so
# a module that runs for months (or a suite's tens of thousands of connections) stays
# flat (issue 21).  The readers: timing and segment tests read the last few hundred
# events; traffic and command-line checks read one test's worth of traffic.
EVENT_TAIL = 1000
TRANSCRIPT_BYTES = 4 << 20
COMMAND_LINES_BYTES = 1 << 20

#: AT+CIPSENDBUF's segment counter is 16 bits on real firmware: the segment after 65535
#: is answered ERROR and the count does not wrap (WIZnet forum topic 9959, WIZnet:
#: "In F/W 1.0.7.5 [and] 1.1.x.x, the variable to manage segment ID is set to 2 bytes
#: ... if the segment ID exceeds 65535, ERROR is returned"; AT+CIPBUFRESET restarts it).
SEGMENT_LIMIT = 65535
OUT_HIGH_WATER = 4096   # bytes queued for the UART before writers wait (back-pressure)
CATCH_UP = 0.25         # seconds a late pacer may catch up on: the line rate stays exact over a loaded host's stalls
SLICE = 0.002           # a flowing stream is handed over in slices of this much wire time
SPIN_AHEAD = 0.0003     # the end of a queue is awaited spinning for its last this-many seconds
#: the `chunk` fault's cut: the bytes after it wait until the host has read those before
#: it (polled from CUT_POLL on, doubling), at most CUT_WAIT; where the transport cannot
#: tell what the host has read, CUT_GAP instead.  The wire clock runs on meanwhile, so
#: the bytes keep arriving at the line rate and the next hand-over carries them all.
CUT_POLL = 0.00005
CUT_WAIT = 0.003
CUT_GAP = 0.0005
#: how the server picks an accepted connection's id: "lowest" free (the evidence,
#: net.Net.free_id) or "rotate" (the next free one after the last given)
LINK_ID_ORDERS = ("lowest", "rotate")
BAUDS = (2000000, 1500000, 1000000, 921600, 460800, 230400, 115200, 57600, 38400,
         19200, 14400, 9600, 4800, 2400, 1800, 1200, 600)

_registry: Dict[str, "Emulator"] = {}  # name -> Emulator (wizemu://<name>)
_registry_lock = threading.Lock()


def find(name: str) -> Optional["Emulator"]:
    with _registry_lock:
        return _registry.get(name)


def load_world(world: Union[None, str, os.PathLike[str], Dict[str, Any]]) -> Dict[str, Any]:
    if world is None:
        text = resources.files("wizsock.emulator").joinpath("default_world.json").read_text()
        loaded: Dict[str, Any] = json.loads(text)
        return loaded
    if isinstance(world, dict):
        return copy.deepcopy(world)
    with open(world, "r", encoding="utf-8") as f:
        loaded = json.load(f)
    return loaded


def factory_defaults(sta_mac: str, baud: int) -> Dict[str, Any]:
    tail = sta_mac.replace(":", "")[-6:].upper()
    return {
        "uart": [baud, 8, 1, 0, 0],
        "cwmode": 2,
        "dhcp": 3,                      # bit0 SoftAP DHCP, bit1 Station DHCP
        "sap": ["WizFi360_" + tail, "", 1, 0, 4, 0],
        "dhcps": [120, "192.168.36.2", "192.168.36.101"],
        "autoconn": 1,
        "stamac": sta_mac,
        "sta_ip": ["192.168.1.1", "192.168.1.1", "255.255.255.0"],
        "ap_ip": ["192.168.36.1", "192.168.36.1", "255.255.255.0"],
        "country": [0, "CN", 1],
        "jap": None,                    # [ssid, pwd, bssid] saved by CWJAP_DEF
        "dns": [0, ["208.67.220.220"]],
        "sslconf": 0,
        "ca": None,
        "translink": None,
        "sleep": 2,
    }


class _Buffer:
    """A byte buffer with a trio wake-up for waiters (emulator thread only)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._event = trio.Event()

    def changed(self) -> None:
        self._event.set()
        self._event = trio.Event()

    def append(self, data: bytes) -> None:
        self.data += data

    async def wait(self) -> None:
        await self._event.wait()


#: short lines without strings (no secrets) whose parse is remembered: the data
#: commands repeat the same few lines, and a parse costs ~0.1 ms of a cold CPU
_PARSED_MAX = 64
_parsed: Dict[bytes, Request] = {}


def _parse(line: bytes) -> Request:
    """The codec Request of a command line; RequestError as atparse."""
    hit = _parsed.get(line)
    if hit is None:
        hit = atparse.parse(line)
        if len(line) <= 48 and b'"' not in line:
            if len(_parsed) >= _PARSED_MAX:
                _parsed.clear()
            _parsed[bytes(line)] = hit
    # a copy for the handler: the remembered one stays as the codec made it
    return dataclasses.replace(hit, params=dict(hit.params))


class Ctx(Context):
    def __init__(self, emu: "Emulator", req: Request, line: bytes) -> None:
        self.emulator = emu
        self.state = emu.state
        self.req = req
        self.line = line

    async def send_line(self, line: bytes) -> None:
        await self.emulator.write_unit(bytes(line) + b"\r\n")

    async def write(self, data: bytes) -> None:
        await self.emulator.write_unit(bytes(data))

    async def prompt(self) -> None:
        await self.emulator.write_unit(b">")

    async def read_data(self, n: Optional[int] = None, until: Optional[bytes] = None,
                        timeout: Optional[float] = None) -> bytes:
        return await self.emulator.read_data(n, until, timeout)

    def urc(self, line: bytes) -> None:
        self.emulator.urc(line)

    def resolve(self, name: str) -> str:
        return self.emulator.resolve(name)

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)


class Emulator:
    """A software WizFi360.  See design.md §3."""

    def __init__(self, world: Union[None, str, os.PathLike[str], Dict[str, Any]] = None,
                 flash: Union[None, str, os.PathLike[str]] = None, rtt: float = 0.0,
                 baudrate: int = 115200, faults: Union[None, str, Faults] = None,
                 seed: Optional[int] = None, boot_delay: float = 0.05, bind_host: str = "127.0.0.1",
                 name: Optional[str] = None, log_traffic: bool = False, log_file: Optional[IO[str]] = None,
                 pace_input: bool = True, jitter: float = 0.0, segment_limit: int = SEGMENT_LIMIT,
                 link_ids: str = "lowest",
                 quirks: Optional[Iterable[str]] = None,
                 profile: Union[None, str, os.PathLike[str], "TimingProfile"] = None) -> None:
        from wizsock.emulator.profile import TimingProfile
        from wizsock.emulator.quirks import parse_quirks
        self.world = load_world(world)
        if link_ids not in LINK_ID_ORDERS:
            raise ValueError(f"link_ids must be one of {', '.join(LINK_ID_ORDERS)}")
        self.link_ids = link_ids           # which id an accepted connection gets (net.Net.free_id)
        #: firmware variants switched on (wizsock.emulator.quirks; all off by default)
        self.quirks = parse_quirks(quirks)
        #: the timing the module answers with (wizsock.emulator.profile; default: no processing time)
        if profile is None or isinstance(profile, TimingProfile):
            self.profile = profile or TimingProfile()
        else:
            self.profile = TimingProfile.load(profile)
        if self.profile.boot is not None:
            boot_delay = self.profile.boot
        self.rtt = float(rtt)
        self.jitter = float(jitter)
        if self.rtt < 0 or self.jitter < 0:
            raise ValueError("rtt and jitter must be >= 0")
        self.segment_limit = int(segment_limit)
        if not 1 <= self.segment_limit <= SEGMENT_LIMIT:
            raise ValueError(f"segment_limit must be 1..{SEGMENT_LIMIT}")
        self.seed = seed
        self.rng = random.Random(seed)
        # the network's own generator, so jitter draws do not shift generated identities
        self.net_rng = random.Random(None if seed is None else ("net", seed).__repr__())
        self.faults = faults if isinstance(faults, Faults) else Faults(faults, seed)
        self.boot_delay = boot_delay
        self.bind_host = bind_host
        self.factory_baud = int(baudrate)
        self.log_traffic = log_traffic
        self.pace_input = pace_input       # host bytes reach the module at the line rate too
        self.log_file = log_file
        self._tmp_flash = None
        if flash is None:
            fd, flash = tempfile.mkstemp(prefix="wizemu-flash-", suffix=".json")
            os.close(fd)
            os.unlink(flash)
            self._tmp_flash = flash
        self.flash_path = str(flash)
        mac_rng = random.Random(seed if seed is not None else os.getpid() ^ id(self))
        self._factory_mac = "00:08:dc:%02x:%02x:%02x" % tuple(mac_rng.randrange(256) for _ in range(3))
        self.state = ModuleState()
        self.state.world = self.world
        self._load_flash()
        self.baud = self.state.flash["uart"][0]
        self.flow = bool(self.state.flash["uart"][4])
        self.echo = True
        self.rts = True                 # host's RTS (hardware flow control)
        self._sink: Optional[Callable[[bytes, int], None]] = None
        self._unread: Optional[Callable[[], int]] = None
        self._thread: Optional[threading.Thread] = None
        self._token: Optional[trio.lowlevel.TrioToken] = None
        self._started = threading.Event()
        self._loop_thread: Optional[int] = None
        self._stopped = False
        self._urcs: Deque[bytes] = deque()
        self._urc_lock = threading.Lock()
        self.name = name or f"emu{id(self):x}"
        self.deaf_until = 0.0
        self.busy: Optional[str] = None    # None, "p" or "s"
        self.reading = False
        self.net: Net = None  # type: ignore[assignment]   # set in _main, before any use
        self.transports: List[Union[PtyTransport, TcpTransport]] = []
        # (direction, bytes) when log_traffic: the latest TRANSCRIPT_BYTES of traffic
        self.transcript: Tail[Tuple[str, bytes]] = Tail(TRANSCRIPT_BYTES, lambda e: len(e[1]))
        # the exact UART log (design.md §5e): both directions in wire order, secrets masked
        self._uart_log = UartLog(log_file) if log_file is not None else None
        # every line run as a command, when log_traffic (the latest COMMAND_LINES_BYTES)
        self.command_lines: Tail[bytes] = Tail(COMMAND_LINES_BYTES, len)
        self.generation = 0                # bumps at every reset
        self.ready_count = 0
        # (monotonic time, event, link id, detail): "sent" (data left for the peer), "ipd",
        # "send_ok", "closed", "connect" - the emulator's own clock, for timing tests;
        # the latest EVENT_TAIL only (the counts below keep the whole run)
        self.events: Deque[Tuple[float, str, Optional[int], object]] = deque(maxlen=EVENT_TAIL)
        self.event_counts: Counter[str] = Counter()     # every event ever noted, by name
        # UART accounting per direction ("in": host -> module, "out"): bytes, first, last
        # delivery time and the size of the first slice (the rate is (bytes-first)/(last-first))
        self.wire = {"in": [0, 0.0, 0.0, 0], "out": [0, 0.0, 0.0, 0]}
        # per direction, how late (seconds) each hand-over that emptied the line's queue
        # came after its last byte's wire time: the pacers' precision, for timing tests
        self.lateness: Dict[str, Deque[float]] = {"in": deque(maxlen=1000), "out": deque(maxlen=1000)}

    def quirk(self, name: str) -> bool:
        """Whether the firmware variant `name` (wizsock.emulator.quirks) is switched on."""
        return name in self.quirks

    async def hold(self, seconds: float) -> None:
        """Take `seconds` to the microsecond (a timing profile's share): a trio sleep would
        end on the next millisecond tick, and a replayed profile would drift by one each time."""
        with PreciseClock() as clock:
            await clock.until(time.monotonic() + seconds, SPIN_AHEAD)

    def one_way(self) -> float:
        """One network crossing: half the round trip plus up to `jitter` (seeded)."""
        d = self.rtt / 2
        if self.jitter:
            d += self.net_rng.uniform(0.0, self.jitter)
        return d

    def note(self, event: str, link: Optional[int], detail: object = None) -> None:
        self.events.append((time.monotonic(), event, link, detail))
        self.event_counts[event] += 1

    def wire_rate(self, direction: str) -> Optional[float]:
        """Bytes per second the UART moved in `direction` ("in"/"out") since the last
        `reset_wire()`, measured on the emulator's clock (None before two slices)."""
        n, first, last, head = self.wire[direction]
        if last <= first:
            return None
        return (n - head) / (last - first)

    def reset_wire(self) -> None:
        for w in self.wire.values():
            w[:] = [0, 0.0, 0.0, 0]

    def _account(self, direction: str, n: int) -> None:
        w = self.wire[direction]
        now = time.monotonic()
        if not w[0]:
            w[1], w[3] = now, n
        w[0] += n
        w[2] = now

    # ------------------------------------------------------------------ flash
    def _load_flash(self) -> None:
        data = {}
        if os.path.exists(self.flash_path):
            try:
                with open(self.flash_path, "r", encoding="utf-8") as f:
                    data = json.load(f)
            except (OSError, ValueError):
                data = {}
        # the factory MAC belongs to the device: a flash file keeps it (like OTP)
        self._factory_mac = data.get("factory_mac", self._factory_mac)
        base = factory_defaults(self._factory_mac, self.factory_baud)
        base.update(data)
        base["factory_mac"] = self._factory_mac
        self.state.flash = Settings(base, on_change=self._save_flash)
        self._save_flash()

    def _save_flash(self) -> None:
        # The flash holds the WiFi password and the AWS key: written owner-only
        # (mkstemp's 0600, never a moment readable by others) and replaced atomically.
        d, base = os.path.split(os.path.abspath(self.flash_path))
        fd, tmp = tempfile.mkstemp(prefix=base + ".", suffix=".tmp", dir=d)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(dict(self.state.flash), f)
            os.replace(tmp, self.flash_path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def restore_factory(self, everything: bool) -> None:
        base = factory_defaults(self._factory_mac, self.factory_baud)
        base["factory_mac"] = self._factory_mac
        if everything:
            self.state.flash = Settings(base, on_change=self._save_flash)
        else:
            self.state.flash["stamac"] = base["stamac"]
        self._save_flash()

    # -------------------------------------------------------------- lifecycle
    def start(self) -> "Emulator":
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name=f"wizemu-{self.name}", daemon=True)
        self._thread.start()
        self._started.wait(10)
        with _registry_lock:
            _registry[self.name] = self
        return self

    def _run(self) -> None:
        try:
            from wizsock import _orig
            _orig.mark_internal()  # the module's network side is the host's real network
        except (ImportError, AttributeError):  # pragma: no cover
            pass
        try:
            trio.run(self._main)
        except BaseException:  # pragma: no cover - logged for diagnosis
            log.exception("emulator loop died")
            raise

    async def _main(self) -> None:
        from wizsock.emulator import net, commands  # noqa: F401  (registers handlers)
        _import_plugins()
        self._token = trio.lowlevel.current_trio_token()
        self._loop_thread = threading.get_ident()
        self.inbuf = _Buffer()
        self._wire = bytearray()
        self._wire_wake = _Buffer()
        self._wire_since = self._out_since = self._input_at = time.monotonic()
        # when the command being answered came in (its line's last byte): its answer's
        # wire time counts from there, so the time Python takes to run a handler hides
        # inside the answer's wire time rather than adding to it (a firmware's own
        # processing time is not modelled either way; this only stops the emulator
        # being slower than its wire).  Used once, by the answer's first unit.
        self._answer_from: Optional[float] = None
        self.outbuf = _Buffer()
        self._out_space = _Buffer()
        self._urc_wake = _Buffer()
        self._rts_wake = _Buffer()
        self._stop_event = trio.Event()
        self.net = net.Net(self)
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            nursery.start_soon(self._pacer)
            nursery.start_soon(self._urc_flusher)
            if self.pace_input:
                nursery.start_soon(self._input_pacer)
            if self._uart_log is not None:
                nursery.start_soon(self._log_idle_flusher)
            self._started.set()
            await self._module_life()

    async def _module_life(self) -> None:
        while not self._stopped:
            self._reset_event = trio.Event()
            async with trio.open_nursery() as life:
                self.life = life
                life.start_soon(self._booted_life, life)
                life.start_soon(self._watch_reset, life)
            if self._stopped:
                return

    async def _watch_reset(self, life: trio.Nursery) -> None:
        await self._reset_event.wait()
        life.cancel_scope.cancel()

    def reset(self, noise: bool = True) -> None:
        """Restart the module now (RST, RESTORE, fault): from the emulator thread."""
        self._reset_noise = noise
        self._reset_event.set()

    # the module's UART state, changed by the command handlers through these
    def set_echo(self, on: bool) -> None:
        """ATE0 / ATE1."""
        self.echo = on

    def set_uart(self, baud: int, flow: bool) -> None:
        """AT+UART_*: the line's new rate and RTS/CTS, once the OK has left at the old rate."""
        self.baud = baud
        self.flow = flow

    def stop_listening(self) -> None:
        """Deep sleep: the UART hears nothing until the next reset."""
        self.deaf_until = float("inf")

    def sending_data(self) -> None:
        """A send's data is in: the module answers `busy s...` until the command ends."""
        self.busy = "s"

    async def _booted_life(self, life: trio.Nursery) -> None:
        self.generation += 1
        self.busy = None
        self.reading = False
        await self.net.drop_all(silent=True)
        with self._urc_lock:
            self._urcs.clear()
        self.inbuf.data.clear()
        st = self.state
        st.cur = Settings(copy.deepcopy(dict(st.flash)))
        st.cur.update(cipmux=0, cipmode=0, cipdinfo=0, cipsto=180, servermaxconn=4,
                      lapopt=[0, 0x7FF], sslsize=2048, hostname="WizFi360_" +
                      st.flash["stamac"].replace(":", "")[-6:].upper(),
                      apmac=derive_ap_mac(st.flash["stamac"]), sysio={}, smart=False)
        st.mux = 0
        st.mode = st.cur["cwmode"]
        st.station = None
        st.station_ip = None
        st.transparent = False
        self.baud = st.cur["uart"][0]
        self.flow = bool(st.cur["uart"][4])
        self.echo = True
        if getattr(self, "_reset_noise", False):
            self._raw_out(BOOT_NOISE)
        self.deaf_until = time.monotonic() + self.boot_delay
        await trio.sleep(self.boot_delay)
        await self.write_unit(b"\r\nready\r\n")
        self.ready_count += 1
        self.deaf_until = 0.0
        self.inbuf.data.clear()
        if st.cur["autoconn"] and st.mode in (1, 3) and st.cur.get("jap"):
            life.start_soon(self._autoconnect)
        if any("join_after" in s or "leave_after" in s for s in self.world.get("stations", [])):
            from wizsock.emulator.commands import softap_stations
            life.start_soon(softap_stations, self)
        tl = st.flash.get("translink")
        if tl and tl[0] == 1:
            life.start_soon(self.net.boot_translink, tl)
        await self._command_loop(life)

    async def _autoconnect(self) -> None:
        from wizsock.emulator.commands import join_ap
        ssid, pwd, bssid = self.state.cur["jap"]
        await join_ap(self, ssid, pwd, bssid, urcs=True)

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stopped = True

        def _cancel() -> None:
            self._stop_event.set()
            self.nursery.cancel_scope.cancel()
        try:
            # not trio.from_thread.run_sync: it refuses to run from a thread that runs a
            # trio loop itself (a trio program stopping its emulator), and the cancel was
            # then silently lost until join() gave up after 10 s
            self._loop_token().run_sync_soon(_cancel)
        except trio.RunFinishedError:
            pass
        self._thread.join(10)
        self._thread = None
        if self._uart_log is not None:
            self._uart_log.close()     # the loop is gone: its last partial record is written
        for t in list(self.transports):
            try:
                t.close()
            except Exception:
                pass
        with _registry_lock:
            if _registry.get(self.name) is self:
                del _registry[self.name]
        if self._tmp_flash:
            for p in (self._tmp_flash, self._tmp_flash + ".tmp"):
                try:
                    os.unlink(p)
                except OSError:
                    pass

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"wizemu://{self.name}"

    def serve_pty(self, strict_baud: bool = False) -> str:
        """A pty for the host (its path); ``strict_baud``: a host whose pty speed is not
        the module's rate receives garbage, and the module garbage from it (see
        transports.PtyTransport)."""
        from wizsock.emulator.transports import PtyTransport
        t = PtyTransport(self, strict_baud)
        self.transports.append(t)
        return t.path

    def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> Tuple[str, int]:
        from wizsock.emulator.transports import TcpTransport
        t = TcpTransport(self, host, port)
        self.transports.append(t)
        return t.address

    # ------------------------------------------------------ thread interface
    def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run fn(*args) on the emulator thread, return its result."""
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def call_soon(self, fn: Callable[..., object], *args: Any) -> None:
        self._loop_token().run_sync_soon(fn, *args)

    def _loop_token(self) -> trio.lowlevel.TrioToken:
        # AttributeError before the loop has started, as for the loop's other objects
        # (the _rts_wake & co. that callers reach in the same breath): callers that
        # may run that early catch it
        if self._token is None:
            raise AttributeError("the emulator's loop has not started")
        return self._token

    def attach(self, sink: Callable[[bytes, int], None],
               unread: Optional[Callable[[], int]] = None) -> None:
        """Set where module output goes (sink(data, baud) on the emulator thread);
        `unread()`, where the transport can tell, is how many of those bytes the host
        has not read yet (the `chunk` fault waits for 0 after a cut)."""
        self._sink = sink
        self._unread = unread
        try:
            self._loop_token().run_sync_soon(self._rts_wake.changed)
        except (trio.RunFinishedError, AttributeError):
            pass

    @property
    def sink(self) -> Optional[Callable[[bytes, int], None]]:
        """Where module output goes now (see attach)."""
        return self._sink

    @property
    def unread(self) -> Optional[Callable[[], int]]:
        """The attached transport's count of output the host has not read (see attach)."""
        return self._unread

    def detach(self, sink: Callable[[bytes, int], None]) -> None:
        if self._sink is sink:
            self._sink = None
            self._unread = None

    def feed(self, data: bytes) -> None:
        """Host -> module bytes, from any thread."""
        if not data:
            return
        data = bytes(data)
        take = self._on_wire if self.pace_input else self._on_input
        if threading.get_ident() == self._loop_thread:
            take(data)          # a transport on the emulator's own loop: no hop through its queue
            return
        try:
            self._loop_token().run_sync_soon(take, data)
        except trio.RunFinishedError:
            pass

    def set_rts(self, value: bool) -> None:
        self.rts = bool(value)
        try:
            self._loop_token().run_sync_soon(self._rts_wake.changed)
        except (trio.RunFinishedError, AttributeError):
            pass

    def _on_wire(self, data: bytes) -> None:
        if not self._wire:
            self._wire_since = time.monotonic()   # the line was idle: it starts now
        self._wire += data
        self._wire_wake.changed()

    async def _input_pacer(self) -> None:
        """Deliver host bytes at 10 bits per byte of the current baud rate."""
        await self._pace(self._wire, self._wire_wake, "_wire_since", self._on_input, output=False)

    def _on_input(self, data: bytes) -> None:
        self._account("in", len(data))
        self._input_at = time.monotonic()
        if self.log_traffic or self._uart_log is not None:
            self._log("<<", data)
        if self.deaf_until and time.monotonic() < self.deaf_until:
            return  # asleep or booting: the UART is not listening
        self.inbuf.append(data)
        self.inbuf.changed()

    def _log(self, direction: str, data: bytes) -> None:
        """Every slice the wire hands over, in either direction, in the order handed."""
        if self.log_traffic:    # the in-memory transcript is asked for; a log file alone grows nothing
            self.transcript.append((direction, bytes(data)))
        if self._uart_log is not None:
            self._uart_log.feed(direction, data)

    async def _log_idle_flusher(self) -> None:
        # a line without an ending (the "> " prompt) is written once its direction is quiet
        uart_log = self._uart_log
        assert uart_log is not None
        while True:
            await trio.sleep(UART_LOG_IDLE / 2)
            uart_log.flush_idle()

    # ------------------------------------------------------------- output
    async def write_unit(self, data: Union[bytes, Callable[[], bytes]]) -> None:
        """Queue bytes for the UART as one unit (nothing interleaves inside).

        Every unit boundary is a legal place for a URC: the writer yields first,
        so URCs queued meanwhile (or injected by the `urc` fault) go out between.
        `data` may be a function giving the bytes: it is called when the unit is
        queued, so a unit whose form depends on the module's state (network data
        as `+IPD` or raw in passthrough) is formatted for the state it goes out in.
        """
        await trio.lowlevel.checkpoint()
        while len(self.outbuf.data) > OUT_HIGH_WATER:
            await self._out_space.wait()
        self._raw_out(data() if callable(data) else data)

    def _raw_out(self, data: bytes) -> None:
        f = self.faults
        if not self.outbuf.data:
            # the line was idle: it starts now, or (an answer) when its command came in
            now = time.monotonic()
            since = self._answer_from
            self._out_since = now if since is None else min(now, since)
        self._answer_from = None
        if f and f.hit("garbage"):
            self.outbuf.append(bytes(f.rng.randrange(1, 32) for _ in range(f.rng.randrange(1, 8))) + b"\r\n")
        self.outbuf.append(data)
        self.outbuf.changed()
        if f and f.enabled("urc"):
            self._urc_wake.changed()

    def urc(self, line: bytes) -> None:
        """Unsolicited line at the next boundary; thread-safe."""
        with self._urc_lock:
            self._urcs.append(bytes(line))
        try:
            self._loop_token().run_sync_soon(self._urc_wake.changed)
        except (trio.RunFinishedError, AttributeError):
            pass

    async def _urc_flusher(self) -> None:
        while True:
            await self._urc_wake.wait()
            await trio.sleep(0)
            while True:
                with self._urc_lock:
                    line = self._urcs.popleft() if self._urcs else None
                if line is None:
                    break
                await self.write_unit(line + b"\r\n")
            if self.faults.hit("urc"):
                mac = "%02x:%02x:%02x:%02x:%02x:%02x" % (0x18, 0xcf, 0x5e, *[self.faults.rng.randrange(256) for _ in range(3)])
                self._raw_out(b'+STA_CONNECTED:"%s"\r\n' % mac.encode())
                self._raw_out(b'+STA_DISCONNECTED:"%s"\r\n' % mac.encode())

    async def wait_output_drained(self) -> None:
        while self.outbuf.data:
            await self._out_space.wait()

    async def _pacer(self) -> None:
        """Release output at the line rate: 10 bits per byte at the current baud."""
        await self._pace(self.outbuf.data, self.outbuf, "_out_since", self._hand_out, output=True)

    def _hand_out(self, chunk: bytes) -> None:
        self._out_space.changed()
        if self.log_traffic or self._uart_log is not None:
            self._log(">>", chunk)
        sink = self._sink
        if sink is not None:
            self._account("out", len(chunk))
            try:
                sink(chunk, self.baud)
            except Exception:  # a transport gone away must not kill the module
                log.debug("sink failed", exc_info=True)

    def _line_held(self) -> bool:
        # RTS off (flow control), or no host attached yet: output waits, so an
        # in-process port opened just after start() still sees the banner
        return (self.flow and not self.rts) or self._sink is None

    async def _pace(self, q: bytearray, wake: "_Buffer", since: str,
                    hand_over: Callable[[bytes], None], output: bool) -> None:
        """One direction of the UART: each byte of `q` is handed over once its wire
        time (10 bits at the current rate) has passed since the one before it.

        `t` is when the wire finished the last byte handed over.  Deadlines
        accumulate from it, so scheduler jitter is caught up within CATCH_UP
        seconds and the long-run rate is exact; an idle line restarts the clock
        at the moment bytes were queued on it (the attribute named `since`).  A
        flowing stream goes over in slices of about SLICE seconds (one wake-up
        each, as a USB-serial driver hands data over); what ends the queue (a
        prompt, a short answer, a command line's end) is handed over when its
        last bit is in, on the dot (PreciseClock: no 1 ms timer tick), so an
        exchange of small units costs their wire time, not a tick or a slice.

        The `chunk` fault cuts a hand-over at a seeded random byte (any offset:
        inside `+IPD,0,`, between `\r` and `\n`, inside a payload) and holds what
        follows until the host has read what came before (`_host_caught_up`), so the
        host's reader meets the cut, as it meets a USB-serial bridge's packet ends
        wherever they fall.  The hold is no wire time: the clock `t` runs on, the
        held bytes and those that arrive meanwhile go over together, and the line
        rate stays the configured baud rate.
        """
        clock = PreciseClock()
        f = self.faults if output else None
        chunked = bool(f and f.enabled("chunk"))
        late = self.lateness["out" if output else "in"]
        t = taken = time.monotonic()
        size = 0                       # this slice's bytes
        try:
            while True:
                if not q:
                    while not q:
                        await wake.wait()
                    t = max(t, getattr(self, since))
                    taken = time.monotonic()
                if output and self._line_held():
                    while self._line_held():
                        await self._rts_wake.wait()
                    t = max(t, time.monotonic())
                    continue
                per_byte = 10.0 / self.baud
                if output:
                    per_byte /= self.profile.line_rate_ratio   # a module that pauses between bytes
                if not size:
                    if f and f.hit("stall"):
                        await trio.sleep(f.rng.uniform(0.2, 1.0))
                        t = max(t, time.monotonic())
                    size = max(1, int(SLICE / per_byte))
                now = time.monotonic()
                if t < now - CATCH_UP:
                    t = now - CATCH_UP
                n = min(len(q), size)
                due = t + n * per_byte
                if now < due:
                    # then look again: more may have been queued meanwhile (the
                    # rest of an answer joins its first line in one hand-over);
                    # the end of the queue is what the other side waits for
                    await clock.until(due, SPIN_AHEAD if n == len(q) else 0.0)
                    continue
                # a late wake-up hands over everything whose time has come
                n = max(n, min(len(q), int((now - t) / per_byte)))
                cut = chunked and f is not None and f.hit("chunk")
                if cut:
                    # one draw whatever n is: the seed gives the same cut fractions however
                    # the hand-overs fall in time
                    assert f is not None
                    n = 1 + int(f.rng.random() * n)
                chunk = bytes(q[:n])
                del q[:n]
                t += n * per_byte
                size = 0
                if not q and not chunked:
                    # the pacer's own precision: an answer whose handler outran its wire
                    # time is due before the pacer could have seen it
                    late.append(now - max(t, taken))
                hand_over(chunk)
                if cut and q:
                    await self._host_caught_up(clock)
        finally:
            clock.close()

    async def _host_caught_up(self, clock: PreciseClock) -> None:
        """Wait (bounded) until the host has read all output handed over: the bytes
        after a `chunk` cut then reach it in a read of their own."""
        unread = self._unread
        start = time.monotonic()
        if unread is None:
            await clock.until(start + CUT_GAP)
            return
        step = CUT_POLL
        while True:
            await clock.until(time.monotonic() + step)
            try:
                if unread() <= 0:
                    return
            except OSError:             # the transport went away: nobody reads
                return
            if time.monotonic() - start >= CUT_WAIT:
                return
            step *= 2

    # -------------------------------------------------------------- input
    async def read_line(self) -> Optional[bytes]:
        """The next command line, or None when passthrough began (SAVETRANSLINK at boot)."""
        while True:
            if self.state.transparent:
                return None
            i = self.inbuf.data.find(b"\n")
            if i >= 0:
                line = bytes(self.inbuf.data[:i + 1])
                del self.inbuf.data[:i + 1]
                return line
            await self.inbuf.wait()

    async def read_data(self, n: Optional[int] = None, until: Optional[bytes] = None,
                        timeout: Optional[float] = None) -> bytes:
        self.reading = True
        try:
            with trio.fail_after(timeout) if timeout else _nullcm():
                while True:
                    buf = self.inbuf.data
                    if until is not None:
                        i = buf.find(until)
                        if i >= 0 and (n is None or i + len(until) <= n):
                            out = bytes(buf[:i + len(until)])
                            del buf[:i + len(until)]
                            return out
                    if n is not None and len(buf) >= n:
                        out = bytes(buf[:n])
                        del buf[:n]
                        return out
                    await self.inbuf.wait()
        finally:
            self.reading = False

    async def _busy_watcher(self) -> None:
        while True:
            await self.inbuf.wait()
            await trio.sleep(0)
            while self.busy and not self.reading:
                i = self.inbuf.data.find(b"\n")
                if i < 0:
                    break
                line = bytes(self.inbuf.data[:i + 1])
                del self.inbuf.data[:i + 1]
                if line.strip():  # a bare line end (e.g. after data) is not a command
                    await self.write_unit(b"busy %s...\r\n" % self.busy.encode())

    async def _random_resets(self) -> None:
        """The reset fault also strikes between commands: each second, with its probability."""
        while True:
            await trio.sleep(1.0)
            if self.faults.hit("reset"):
                self.reset()
                return

    async def _command_loop(self, life: trio.Nursery) -> None:
        life.start_soon(self._busy_watcher)
        if self.faults.enabled("reset"):
            life.start_soon(self._random_resets)
        while True:
            if self.state.transparent:
                await self.net.passthrough()
                continue
            raw = await self.read_line()
            if raw is None:
                continue
            self._answer_from = self._input_at
            if self.log_traffic and raw.strip():
                self.command_lines.append(raw)
            line = raw.rstrip(b"\r\n")
            if self.echo:
                await self.write_unit(raw if raw.endswith(b"\r\n") else line + b"\r\n")
            if not line.strip():
                continue
            f = self.faults
            if f and f.hit("reset"):
                self.reset()
                await trio.sleep_forever()
            if f and f.hit("busy"):
                # a burst, as when the module is still digesting earlier work: "s" while
                # buffered TCP data is in flight, else "p"
                sending = any(getattr(ln, "pending", 0) for ln in self.state.links.values())
                kind = b"s" if sending or f.rng.random() < 0.3 else b"p"
                for _ in range(f.rng.randint(1, 3)):
                    await self.write_unit(b"busy %s...\r\n" % kind)
                continue
            self.busy = "p"
            if b"\n" in self.inbuf.data:
                self.inbuf.changed()  # lines typed ahead meet a busy module too
            try:
                await self.execute(line)
            finally:
                self.busy = None
                self._answer_from = None

    async def execute(self, line: bytes) -> None:
        try:
            req = _parse(line)
        except (atparse.RequestError, ValueError, UnicodeDecodeError):
            await self.write_unit(b"\r\nERROR\r\n")
            return
        fn = lookup(getattr(req, "name", ""))
        if fn is None:
            await self.write_unit(b"\r\nERROR\r\n")
            return
        ctx = Ctx(self, req, line)
        delay = self.profile.delay(req.name, req.form)
        if delay:
            # the module's processing time (a timing profile): its answer's wire time
            # starts after it, as on the part that was measured
            await self.hold(delay)
            self._answer_from = None
        try:
            result = await fn(ctx, req)
        except CommandFailed as e:
            for ln in e.lines:
                await self.write_unit(ln + b"\r\n")
            if e.result:
                await self.write_unit(b"\r\n" + e.result.encode() + b"\r\n")
            return
        except (ValueError, TypeError, IndexError, KeyError) as e:
            log.debug("handler %s rejected %r: %s", getattr(req, "name", "?"), atparse.redact(line),
                      type(e).__name__)
            await self.write_unit(b"\r\nERROR\r\n")
            return
        except trio.TooSlowError:
            await self.write_unit(b"\r\nERROR\r\n")
            return
        except Exception:  # a handler bug must not take the module down
            log.exception("handler %s failed on %r", getattr(req, "name", "?"), atparse.redact(line))
            await self.write_unit(b"\r\nERROR\r\n")
            return
        if result:
            await self.write_unit(b"\r\n" + result.encode() + b"\r\n")

    # ----------------------------------------------------------------- DNS
    def route(self, ip: str, port: int) -> Tuple[str, int]:
        """Where a connection to (ip, port) really goes: the world's `nat` map
        ("ip:port" or "ip" -> "host[:port]") lets tests give remote-looking
        addresses to loopback servers; anything else goes where it says."""
        nat = self.world.get("nat", {})
        target = nat.get(f"{ip}:{port}") or nat.get(ip)
        if not target:
            return ip, port
        host, sep, p = str(target).rpartition(":")
        if not sep:
            return str(target), port
        return host, int(p)

    def resolve(self, name: str) -> str:
        name = str(name)
        # DNS names are case-insensitive and may be written fully qualified.
        key = name.rstrip(".").lower()
        for known, ip in self.world.get("dns", {}).items():
            if known.rstrip(".").lower() == key:
                return str(ip)
        try:
            socket.inet_aton(name)
            return name
        except OSError:
            pass
        # RFC 6761/2606 special-use names are answered here and never sent to the
        # host's resolver: tests use them, and their lookups must not leave the machine.
        if key == "localhost" or key.endswith(".localhost"):
            return "127.0.0.1"
        if ("." + key).endswith(SPECIAL_USE_DOMAINS):
            raise CommandFailed("ERROR", [b"DNS Fail"])
        try:
            return str(socket.getaddrinfo(name, None, socket.AF_INET)[0][4][0])  # AF_INET: (str, int)
        except OSError:
            raise CommandFailed("ERROR", [b"DNS Fail"])


SPECIAL_USE_DOMAINS = (".invalid", ".test", ".example", ".localhost")


class _nullcm:
    def __enter__(self) -> "_nullcm":
        return self

    def __exit__(self, *a: object) -> Literal[False]:
        return False


def _import_plugins() -> None:
    import importlib
    for mod in ("mqtt", "netconfig", "services"):
        try:
            importlib.import_module("wizsock.emulator." + mod)
        except ImportError as e:
            if e.name != "wizsock.emulator." + mod:
                log.warning("emulator plug-in %s failed to import: %s", mod, e)
