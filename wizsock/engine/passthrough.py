"""UART-WiFi passthrough (transparent transmission, spec 2.4, 3.3.7, 3.3.18).

``async with m.net.passthrough(host, port) as stream`` gives the module's one
single-connection link as a :class:`trio.abc.Stream`: every byte the host
writes goes to the peer, every byte the module prints is the peer's.  The UART
carries nothing else, so while a session is open:

* the engine's command lock is held (by a helper task on the engine nursery):
  other API calls wait for the session to end; no link, server or MQTT client
  may be open (``LinkLimitError`` otherwise);
* the framer is switched to raw mode by the ``>`` itself (``raw_on_prompt``),
  so peer bytes that share a read with the prompt are data, not lines.

Ending (``aclose``, leaving the ``async with``): no host byte for >= 1 s,
``+++`` alone, >= 1 s (spec 2.4 note 2), then command mode is confirmed with
``AT``, and CIPMODE=0, CIPCLOSE, CIPMUX=1, CIPDINFO=1 restore the engine's
multi-link state.  Anything failing there is treated as a module reset (the
supervisor re-initialises, which also turns CIPMODE off).

The exit sequence cannot be formed by user data: the module leaves passthrough
on a *packet* that is exactly ``+++`` (spec 3.3.7: packets end at a 20 ms gap
in the UART input or after 2048 bytes; 2.4 note 2).  A packet that ends at a
gap ends where a write ends, and the writer never ends a write with ``+``: a
trailing run of ``+`` (with the byte before it) is held back and goes out with
the next data.  If none comes, it is flushed on its own after >= ``QUIET`` of
silence on the wire (so it is a packet of its own), in pieces of at most 2048
bytes none of which is ``+++``; a lone ``+++`` goes out as ``++``, ``GUARD``,
``+``.  A packet cut at 2048 bytes is 2048 bytes long.  So no packet the module
forms from user data is ``+++``, whatever the user's timing: ``+++`` sent with
guard pauses around it, then ``AT+RST``, reaches the peer as data.  The cost is
latency for data ending in ``+`` (QUIET, ~0.1 s) and ~1 s for a lone ``+++``.

Remote close: invisible.  In passthrough the module re-establishes a broken
TCP link until ``+++`` (spec 3.3.18 note) and prints no ``CLOSED``; any
``CLOSED`` text would be peer data anyway.  So ``receive_some`` never returns
``b""`` while the session is open: it waits for data.  After ``aclose`` it
raises ``trio.ClosedResourceError``; after a failure (module reset, engine
closed, receive buffer over ``rx_limit``) it delivers what was buffered, then
raises that error.

Module reset: a reset module prints ``ready`` in command mode, but in raw mode
those bytes are indistinguishable from data.  When ``\\nready\\r\\n`` shows up
in the stream the engine holds back the data from that chunk on and checks:
``+++``, ``AT``, ``AT+CIPMODE?``.  Still 1: it was peer data; passthrough is
entered again (``AT+CIPSEND``), the held bytes are delivered, nothing is lost
(sending pauses for the ~2 s check).  0: the module did reset; the held bytes
(boot output) are dropped, the session fails with ``ModuleReset`` and the
engine recovers as after any reset.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

import trio

from .. import errors as E
from ..protocol import request as req

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from .core import Engine, Response

log = logging.getLogger("wizsock.engine")

#: spec 2.4 note 2: "+++" must be alone, with at least 1 s around it
GUARD = 1.05
#: spec 3.3.7: the module ends a passthrough packet at a 20 ms gap or at 2048 bytes
PACKET_GAP = 0.02
MAX_PACKET = 2048
#: silence on the wire before a held tail is flushed on its own: 5 packet gaps,
#: so the flush surely starts a packet of its own
QUIET = 0.1
READY_MARK = b"\nready\r\n"
BUSY_TRIES = 8


class Passthrough(trio.abc.Stream):
    """The byte stream of a passthrough session (see the module docstring)."""

    def __init__(self, engine: Engine, kind: str, remote: Tuple[str, int]) -> None:
        self._e = engine
        self.kind = kind
        self.remote = remote
        self._rx = bytearray()
        self._rx_changed = trio.Event()
        self._held = bytearray()
        self._verifying = False
        self._tail = b""
        self._error: Optional[BaseException] = None
        self._closed = False          # aclose() called
        self._done = False            # session over (module no longer in passthrough for us)
        self._paused = False
        self._resumed = trio.Event()
        self._tx_lock = trio.Lock()
        self._mode_lock = trio.Lock()
        self._wire_free = -GUARD      # when the last byte written has left the UART (estimate)
        self._tx_hold = bytearray()   # trailing "+" run (and the byte before it) not yet written
        self._hold_added = trio.Event()
        self._split_gap = False       # the next flush piece ends a lone "+++" split: wait GUARD
        self._release = trio.Event()  # lets the lock-holding helper task go

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("failed" if self._error else "open")
        return f"<Passthrough {self.kind} {self.remote} {state}>"

    @property
    def error(self) -> Optional[BaseException]:
        """What failed the session (raised once the buffered data is read), or None."""
        return self._error

    # ------------------------------------------------------------ engine side
    def data_received(self, payload: bytes) -> None:
        """Bytes from the module while the session is open (the peer's, or a reset's)."""
        if self._closed or self._done or self._error is not None:
            return
        if self._verifying:
            self._held += payload
            return
        if self._e.raw and (READY_MARK in payload or
                                    READY_MARK in self._tail + bytes(payload[:8])):
            self._verifying = True
            self._held += payload
            self._paused = True
            self._e.spawn(self._verify)
            return
        self._tail = bytes(payload[-8:])
        self._rx += payload
        self._wake()
        if len(self._rx) > self._e.rx_limit:
            self.fail(E.BufferOverflow(f"passthrough: more than {self._e.rx_limit} bytes "
                                        f"unread"))
            self._e.spawn(self._finish)

    def _wake(self) -> None:
        self._rx_changed.set()
        self._rx_changed = trio.Event()

    def fail(self, err: BaseException) -> None:
        """Fail the session with ``err`` (raised once the buffered data is read)."""
        if self._error is None:
            self._error = err
        self._resumed.set()
        self._wake()

    async def _hold_lock(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with self._e.exclusive():
            task_status.started()
            await self._release.wait()

    async def _exec(self, name: str, form: str, timeout: Optional[float] = None, **params: Any) -> Response:
        e = self._e
        r = req(name, form, **params) if params or form == "execute" else req(name, form)
        return await e.command_held(r, timeout)

    async def _cmd_ok(self, name: str, form: str, **params: Any) -> Response:
        resp = await self._exec(name, form, **params)
        if resp.result != "OK":
            lines = resp.lines()
            raise E.CommandError(f"passthrough: {name} failed: {resp.result}"
                                 + (f" ({'; '.join(lines)})" if lines else ""),
                                 command=name, result=resp.result, lines=lines)
        return resp

    async def _enter(self, timeout: float = 10.0) -> None:
        """AT+CIPSEND (execute form) -> ">"; the framer is raw from the prompt on."""
        e = self._e
        r = req("CIPSEND", "execute")
        for attempt in range(BUSY_TRIES):
            cmd = await e.await_prompt(r, timeout)
            if cmd.prompted:
                return
            if cmd.error is not None:
                raise cmd.error
            if cmd.busy_at is not None and not cmd.final:
                await trio.sleep(0.1 * (attempt + 1))
                continue
            if cmd.final:
                lines = cmd.response.lines()
                raise E.CommandError(f"passthrough: AT+CIPSEND failed: {cmd.response.result}",
                                     command="CIPSEND", result=cmd.response.result, lines=lines)
            raise E.CommandTimeout("passthrough: no '>' after AT+CIPSEND", command="CIPSEND",
                                   timeout=timeout)
        raise E.Busy("passthrough: module busy, AT+CIPSEND not run", command="CIPSEND",
                     result="busy")

    async def _leave_raw(self) -> None:
        """Guard time, "+++" alone, guard time, then command mode confirmed with AT."""
        e = self._e
        self._paused = True
        async with self._tx_lock:
            while self._tx_hold:
                await self._flush_piece()
            quiet = self._wire_free + GUARD - trio.current_time()
            if quiet > 0:
                await trio.sleep(quiet)
            await e.write(b"+++", redacted=True)
            await trio.sleep(GUARD)
            e.raw = False
            if not await e.probe(tries=3, wait=0.5):
                raise E.ModuleUnresponsive("passthrough: no answer to AT after +++",
                                           command="", timeout=1.5)

    async def _restore(self) -> None:
        """Back to the engine's state: CIPMODE=0, CIPCLOSE, CIPMUX=1, CIPDINFO=1."""
        e = self._e
        await self._cmd_ok("CIPMODE", "set", mode=0)
        await self._exec("CIPCLOSE", "execute")         # ERROR if the peer closed: fine
        await self._cmd_ok("CIPMUX", "set", mode=1)
        e.mux = True
        await self._cmd_ok("CIPDINFO", "set", mode=1)

    def end_session(self) -> None:
        """The session is over: the engine's data goes to links again, the command lock
        is released."""
        e = self._e
        self._done = True
        self._hold_added.set()
        if e.passthrough_session is self:
            e.passthrough_session = None
        e.raw_on_prompt = False
        self._release.set()

    async def _verify(self) -> None:
        """A "ready" in the stream: a reset, or peer data?  Ask the module."""
        e = self._e
        async with self._mode_lock:
            if self._done or self._error is not None:
                return
            with trio.CancelScope(shield=True):
                try:
                    await self._leave_raw()
                    resp = await self._exec("CIPMODE", "query")
                    mode = getattr(resp.record, "mode", None)
                except E.WizError as exc:
                    mode = None
                    log.debug("%s: passthrough check failed: %r", e.name, exc)
                if mode == 1:
                    log.info("%s: 'ready' in passthrough data was data; resuming", e.name)
                    try:
                        await self._enter()
                    except E.WizError as exc:
                        self.fail(E.SendFailed(f"passthrough could not be resumed: {exc}"))
                        return
                    self._verifying = False
                    self._tail = bytes(self._held[-8:])
                    self._rx += self._held
                    self._held = bytearray()
                    self._paused = False
                    self._resumed.set()
                    self._resumed = trio.Event()
                    self._wake()
                    return
                self._held = bytearray()
                self.fail(E.ModuleReset(f"{e.name}: module reset during passthrough"))
                e.declare_reset("module reset (ready) during passthrough")
                self.end_session()

    async def establish(self, request: Any, timeout: Optional[float] = None) -> None:
        """Take the command lock, CIPMUX=0, CIPMODE=1, ``request`` (the CIPSTART), and
        enter passthrough; undone on failure.  Called once, by ``open_passthrough()``."""
        e = self._e
        e.passthrough_session = self
        try:
            await e.start_task(self._hold_lock)
        except BaseException:
            e.passthrough_session = None
            raise
        try:
            with trio.CancelScope(shield=True):
                if not e.usable:
                    raise E.ModuleReset(f"{e.name}: module reset before passthrough began")
                e.passthrough_session = None
                _check_alone(e)      # something may have been opened while we waited
                e.passthrough_session = self
                await self._cmd_ok("CIPMUX", "set", mode=0)
                e.mux = False
                await self._cmd_ok("CIPMODE", "set", mode=1)
                resp = await e.command_held(request, e.timeout_for("CIPSTART", timeout),
                                            parse=False)
                if resp.result != "OK":
                    lines = resp.lines()
                    if "DNS Fail" in resp.notes:
                        raise E.ResolveError(f"cannot resolve {self.remote[0]!r} (DNS Fail)")
                    raise E.ConnectError(f"passthrough {self.kind} connect to {self.remote[0]}:"
                                         f"{self.remote[1]} failed: "
                                         f"{'; '.join(lines) or resp.result}", lines=lines)
                await self._enter()
                e.spawn(self._flusher)
        except BaseException:
            with trio.CancelScope(shield=True):
                try:
                    if e.passthrough_session is self and e.usable:
                        e.raw = False
                        await self._restore()
                except E.WizError as exc2:
                    log.warning("%s: undoing a failed passthrough set-up failed (%s)", e.name,
                                exc2)
                    e.declare_reset(f"undoing passthrough set-up failed: {exc2}")
                finally:
                    self._closed = True
                    self.end_session()
            raise

    # ------------------------------------------------------------ trio.abc.Stream
    async def send_all(self, data: Buffer) -> None:
        if self._closed:
            raise trio.ClosedResourceError("passthrough stream closed")
        chunk = bytes(data)
        while True:
            if self._error is not None:
                raise self._error
            if self._closed:
                raise trio.ClosedResourceError("passthrough stream closed")
            if self._paused:
                await self._resumed.wait()
                continue
            async with self._tx_lock:
                if self._paused or self._error is not None or self._closed:
                    continue
                out, hold = hold_tail(bytes(self._tx_hold) + chunk)
                self._tx_hold[:] = hold
                self._split_gap = False
                if out:
                    await self._write_data(out)
                else:
                    await trio.lowlevel.checkpoint()
                if hold:
                    self._hold_added.set()
                return

    # ------------------------------------------------------------ the writer
    async def _write_data(self, data: bytes) -> None:
        e = self._e
        await e.write(data, redacted=None)
        # the port may still be shifting the bytes out: silence starts after the last one
        self._wire_free = (max(trio.current_time(), self._wire_free)
                           + len(data) * 10.0 / max(1, e.baudrate))

    async def _flush_piece(self) -> None:
        """Write the first safe piece of the held tail after enough silence (tx lock held)."""
        piece = flush_pieces(bytes(self._tx_hold))[0]
        wait = self._wire_free + (GUARD if self._split_gap else QUIET) - trio.current_time()
        if wait > 0:
            await trio.sleep(wait)
        del self._tx_hold[:len(piece)]
        self._split_gap = piece == b"++" and bytes(self._tx_hold) == b"+"
        await self._write_data(piece)

    async def _flusher(self) -> None:
        """Flush a held tail when no more data follows it (runs for the session)."""
        while not (self._done or self._closed or self._error is not None):
            if not self._tx_hold:
                self._hold_added = trio.Event()
                await self._hold_added.wait()
                continue
            wait = self._wire_free + (GUARD if self._split_gap else QUIET) - trio.current_time()
            if wait > 0:
                # sleeping without the lock: data sent meanwhile takes the tail along
                await trio.sleep(wait)
                continue
            if self._paused:
                # leaving or checking for a reset: that path flushes the tail itself
                await self._resumed.wait()
                continue
            async with self._tx_lock:
                if self._paused or self._done or self._closed or self._error is not None:
                    continue
                if self._tx_hold and (self._wire_free + (GUARD if self._split_gap else QUIET)
                                      <= trio.current_time()):
                    await self._flush_piece()

    async def wait_send_all_might_not_block(self) -> None:
        while self._paused and self._error is None and not self._closed:
            await self._resumed.wait()
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: Optional[int] = None) -> bytes:
        await trio.lowlevel.checkpoint_if_cancelled()
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        while True:
            if self._closed:
                raise trio.ClosedResourceError("passthrough stream closed")
            if self._rx:
                n = len(self._rx) if max_bytes is None else min(max_bytes, len(self._rx))
                out = bytes(self._rx[:n])
                del self._rx[:n]
                await trio.lowlevel.cancel_shielded_checkpoint()
                return out
            if self._error is not None:
                raise self._error
            await self._rx_changed.wait()

    async def aclose(self) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        self._resumed.set()
        self._wake()
        await self._finish()

    async def _finish(self) -> None:
        """Leave passthrough and restore the engine's state (once)."""
        e = self._e
        with trio.CancelScope(shield=True):
            async with self._mode_lock:
                if self._done:
                    return
                try:
                    if e.raw:
                        await self._leave_raw()
                    await self._restore()
                except E.WizError as exc:
                    log.warning("%s: leaving passthrough failed (%s); re-initialising",
                                e.name, exc)
                    e.declare_reset(f"leaving passthrough failed: {exc}")
                finally:
                    self.end_session()


async def open_passthrough(engine: Engine, host: str, port: int, kind: str = "TCP",
                           local_port: Optional[int] = None, timeout: Optional[float] = None) -> Passthrough:
    """Set up a session (see the module docstring); the caller must ``aclose`` it."""
    e = engine
    kind = str(kind).upper()
    if kind not in ("TCP", "UDP"):
        raise ValueError("passthrough carries TCP or UDP (the module refuses SSL)")
    if local_port is not None and kind != "UDP":
        raise ValueError("local_port is for UDP")
    extra: dict[str, int] = {}
    if kind == "UDP" and local_port is not None:
        extra = dict(local_port=int(local_port), mode=0)
    # built (and so checked by the codec) before anything changes on the module: a bad
    # host raises ValueError with no CIPMUX/CIPMODE round trip to undo
    r = req("CIPSTART", "set", link=None, type=kind, remote=str(host), port=int(port), **extra)
    await e.wait_usable(10.0)
    _check_alone(e)
    stream = Passthrough(e, kind, (str(host), int(port)))
    await stream.establish(r, timeout)
    return stream


def _check_alone(e: Engine) -> None:
    """LinkLimitError unless the module carries nothing else (no link, server, session)."""
    busy = sorted(e.links)
    server = e.server
    if e.passthrough_session is not None:
        raise E.LinkLimitError("a passthrough session is already open")
    if busy or server is not None:
        what = (f"link(s) {busy}" if busy else "") + (
            " and " if busy and server is not None else "") + (
            f"a server on port {server.port}" if server is not None else "")
        raise E.LinkLimitError(f"passthrough needs the module to itself: close {what} first")


def hold_tail(data: bytes) -> Tuple[bytes, bytes]:
    """Split data into (write now, hold back): a write never ends with "+", and the
    held tail keeps the byte before its "+" run when it can, so flushing it alone
    is rarely exactly "+++" (see the module docstring)."""
    t = len(data.rstrip(b"+"))
    if t == len(data):
        return data, b""
    k = max(t - 1, 0)
    while k > 0 and data[k - 1] == 0x2B:        # "+": the write must end before the run
        k -= 1
    return data[:k], data[k:]


def flush_pieces(held: bytes) -> List[bytes]:
    """A held tail as writes of at most MAX_PACKET bytes, none of them exactly "+++"."""
    pieces = [held[i:i + MAX_PACKET] for i in range(0, len(held), MAX_PACKET)]
    if pieces[-1] == b"+++":
        if len(pieces) > 1:
            pieces[-2:] = [pieces[-2][:-1], pieces[-2][-1:] + pieces[-1]]
        else:
            pieces = [b"++", b"+"]
    return pieces
