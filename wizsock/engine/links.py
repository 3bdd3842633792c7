"""Links (the module's connections 0-4) and the TCP server.

A :class:`Link` is the handle for one generation of one link id: when the
connection ends, the id is freed and the next connection on it is a new
``Link`` object with the next generation number, so a stale handle can only
ever see its own (closed) connection.

Receiving: every ``+IPD`` payload is appended to the link's buffer until the
owner reads it; nothing is dropped.  Without hardware flow control the buffer
of one link is bounded by ``Engine.rx_limit`` (default 1 MiB): past it the link
fails with :class:`~wizsock.errors.BufferOverflow` (after the data already
buffered has been read) and the connection is closed.  With flow control on,
the engine de-asserts RTS when the data buffered over all links passes
``rx_high`` and asserts it again below ``rx_low``; ``rx_limit`` stays the
per-link hard limit.

Sending: ``send`` queues the bytes and returns when the module has taken them
(``Recv N bytes`` checked).  The engine's sender drains queues 2048 bytes per
command; small writes queued while a command is on the wire go out together.
TCP links use AT+CIPSENDBUF (the UART keeps going while earlier segments await
their ``<link>,<segment>,SEND OK``; at most 21,900 bytes unacknowledged); SSL
and UDP links use AT+CIPSEND.  A ``SEND FAIL`` fails the link for good.

Every segment costs one prompt round trip of idle UART, so a stream fed in pieces
that are not multiples of 2048 bytes (a socket pair hands over what its buffer
held) should still go in whole segments: while the UART still carries the previous
segment's payload, a CIPSENDBUF tail shorter than a segment is held (until
``TOP_UP_MARGIN`` before the wire is free) for the next ``send`` to fill, and the
``send`` that queued it returns at once; the tail then goes out whole or alone, and
a failure of it surfaces on the link's next call (as a kernel socket's would).

The module numbers CIPSENDBUF segments with a 16-bit counter that answers ERROR
after segment 65535 instead of wrapping (WIZnet forum topic 9959).  Before a link's
last segment id reaches ``Link.segment_limit`` the sender waits for every segment's
acknowledgement and sends AT+CIPBUFRESET (spec 3.3.10: only when nothing waits to be
sent), so uploads of any length go on; an ERROR to a CIPSENDBUF header (nothing was
sent yet) also gets one reset and one retry, for firmware whose limit is lower.
"""
from __future__ import annotations

import logging
import re
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Deque, List, Optional, Tuple

import trio

from .. import errors as E
from ..protocol import records as R
from ..protocol import MAX_SEND
from ..protocol import request as req
from .session import ENDED, LinkSlot, LinkState

if TYPE_CHECKING:
    from .core import Engine, Response

#: an ``(ip, port)`` address
Address = Tuple[str, int]

log = logging.getLogger("wizsock.engine")

#: the last CIPSENDBUF segment id real firmware accepts (16 bits, no wrap)
SEGMENT_LIMIT = 65535
#: how long the sender waits for the acknowledgements before AT+CIPBUFRESET
RESET_DRAIN_TIMEOUT = 30.0
#: a held CIPSENDBUF tail goes out at the latest this long before the UART finishes the
#: previous payload (its header then still queues behind that payload on the wire)
TOP_UP_MARGIN = 0.002

_INTS = re.compile(r"^\s*(\d+)(?:\s*,\s*(\d+))?(?:\s*,\s*(\d+))?\s*$")


class Link(LinkSlot):
    """One connection on the module (TCP, UDP or SSL)."""

    def __init__(self, engine: Engine, lid: int, generation: int, kind: str,
                 remote: Optional[Address] = None, local: Optional[Address] = None,
                 accepted: bool = False) -> None:
        # id, generation, kind, accepted, its lifecycle state (opening, open, closing, ...:
        # the session's transitions alone change it), cut and the CIPSENDBUF window are
        # the session's (engine.session.LinkSlot): the session's link table holds the Link
        super().__init__(lid, generation, kind, accepted=accepted)
        # (time.monotonic(): read from other threads too, by ``wizsock status``)
        self.since = time.monotonic()
        #: when a byte was last received or queued (``wizsock status``: idle time)
        self.last_active = self.since
        self._engine = engine
        self.remote = remote
        self.local: Optional[Tuple[str, int]] = local
        # receive side
        self._rx = bytearray()
        self._rx_bytes = 0
        self._dgrams: Deque[Tuple[bytes, Optional[Address]]] = deque()
        self._rx_event = trio.Event()
        self._error: Optional[BaseException] = None
        # send side
        self._tx = bytearray()
        self._tx_queued = 0      # bytes ever queued
        self._tx_taken = 0       # bytes the module has taken
        self._tx_event = trio.Event()
        self._ack_wait_since: Optional[float] = None
        self._send_lock = trio.Lock()
        self._wire_free_at = 0.0      # trio time the UART finishes our last payload (estimate)
        self._holding = False         # the sender holds a short tail for the next send()
        self._overflowed = False      # over rx_limit once: later payloads are discarded

    def __repr__(self) -> str:
        handle = (" handle closed" if self.owner_closed else " failed" if self._error else "")
        return (f"<Link {self.id}.{self.generation} {self.kind} {self.remote} "
                f"{self.state.value}{handle}>")

    # ------------------------------------------------------------------ state
    def set_addresses(self, local: Address, remote: Optional[Address]) -> None:
        """What AT+CIPSTATUS said this link's ends are (``remote`` None: keep it)."""
        self.local = local
        if remote is not None:
            self.remote = remote

    def set_pipelined(self, pipelined: Optional[bool]) -> None:
        """Send with AT+CIPSENDBUF (True), stop-and-wait AT+CIPSEND (False) or as the
        engine's ``use_sendbuf`` says (None)."""
        self.pipelined = pipelined

    @property
    def closed(self) -> bool:
        return self.owner_closed or self.module_closed or self._error is not None

    @property
    def error(self) -> Optional[BaseException]:
        return self._error

    def discard(self) -> None:
        """Its open failed: the handle is closed for good (the opener let go of the id)."""
        self.owner_closed = True
        self._wake_rx()
        self._wake_tx()

    def describe(self, now: Optional[float] = None) -> str:
        """One line for diagnostics: id, kind, peer, state (for how long), idle time."""
        now = time.monotonic() if now is None else now
        peer = f"{self.remote[0]}:{self.remote[1]}" if self.remote else "?"
        handle = ", handle closed" if self.owner_closed else ""
        return (f"link {self.id} ({self.kind} {peer}, {'accepted' if self.accepted else 'opened'}"
                f"): {self.state.value} for {now - self.since:.1f} s{handle}, "
                f"idle {now - self.last_active:.1f} s")

    @property
    def idle(self) -> float:
        """Seconds since a byte was last received or queued on it."""
        return time.monotonic() - self.last_active

    @property
    def unacked_segments(self) -> int:
        """CIPSENDBUF segments the module took and has not acknowledged yet."""
        return len(self.segments)

    def _check_usable(self) -> None:
        if self.owner_closed:
            raise E.LinkClosed(f"link {self.id}.{self.generation} is closed")

    def _wake_rx(self) -> None:
        self._rx_event.set()
        self._rx_event = trio.Event()

    def _wake_tx(self) -> None:
        self._tx_event.set()
        self._tx_event = trio.Event()

    def fail(self, err: BaseException) -> None:
        """Fail the link with ``err`` (raised to readers once buffered data is read, and
        to senders)."""
        if self._error is None and not self.owner_closed:
            self._error = err
        self.clear_window()
        self._wake_rx()
        self._wake_tx()

    # ------------------------------------------------------------------ events from the engine
    def state_changed(self, old: LinkState, new: LinkState) -> None:
        """Every transition of the session's lifecycle table lands here: whoever waits on
        the link (a reader, a sender, a close) looks again.  Once the module holds
        nothing for it, bytes never handed to the module fail their send() (see send);
        segments it holds unacknowledged are the remote's business, as with a kernel
        socket."""
        if new in ENDED and old not in ENDED and self.segments:
            log.debug("link %d: closed with %d bytes unacknowledged", self.id, self.inflight)
        self.since = time.monotonic()
        self._wake_rx()
        self._wake_tx()

    def data_received(self, payload: bytes, remote: Optional[Address]) -> None:
        """A ``+IPD`` payload for this link (``remote``: its sender, with CIPDINFO=1)."""
        if self.owner_closed:
            log.debug("link %d: %d bytes after close; discarded", self.id, len(payload))
            return
        self.last_active = time.monotonic()
        n = len(payload)
        limit = self._engine.rx_limit
        if self._overflowed:
            # the stream is cut where the limit was crossed (the reader gets BufferOverflow
            # after what came before): the limit bounds memory while the close is under way,
            # whose CIPCLOSE may queue behind megabytes of +IPD.  For good, not while over
            # the limit: a payload appended after a reader made room would follow a hole
            log.debug("link %d: %d bytes after the receive buffer overflowed; discarded",
                      self.id, n)
            return
        if self.kind == "UDP":
            self._dgrams.append((bytes(payload), remote or self.remote))
        else:
            self._rx += payload
        self._rx_bytes += n
        if self._rx_bytes > limit:
            self._overflowed = True
        if self._overflowed and self._error is None:
            self._error = E.BufferOverflow(
                f"link {self.id}: {self._rx_bytes} bytes unread, over the limit of "
                f"{self._engine.rx_limit} (read faster, raise rx_limit, or enable flow control)")
            log.error("link %d: receive buffer overflow; closing the link", self.id)
            self._engine.close_link_soon(self)
        self._wake_rx()

    def withdraw_tail(self, n: int) -> bool:
        """Take back the last ``n`` bytes received if nobody has read them yet (the
        engine found that the +IPD carrying them lied about its length)."""
        if n == 0:
            return True
        if self.kind == "UDP":
            if self._dgrams and len(self._dgrams[-1][0]) == n:
                self._dgrams.pop()
                self._rx_bytes -= n
                return True
            return False
        if n > len(self._rx):
            return False
        del self._rx[len(self._rx) - n:]
        self._rx_bytes -= n
        return True

    def segment_acked(self, segment: int) -> None:
        """``<link>,<segment>,SEND OK``: the module's TCP delivered every segment up to this."""
        self.ack(segment)          # (again, if the session did: idempotent)
        self._ack_wait_since = None
        self._wake_tx()

    # ------------------------------------------------------------------ receiving
    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` once the remote closed and all was read.

        For UDP links one datagram (truncated to ``max_bytes``).  Raises the
        link's error (ModuleReset, SendFailed, BufferOverflow) once the data
        received before it has been read."""
        if self.kind == "UDP":
            data, _ = await self.receive_from(max_bytes)
            return data
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        while True:
            out = self.receive_nowait(max_bytes)
            if out is not None:
                return out
            await self._rx_event.wait()

    async def receive_from(self, max_bytes: int = 65536) -> Tuple[bytes, Optional[Address]]:
        """One datagram and its sender ``(ip, port)`` (UDP links)."""
        while True:
            self._check_usable()
            if self._dgrams:
                data, remote = self._dgrams.popleft()
                self._rx_bytes -= len(data)
                self._engine.update_rts()
                return data[:max_bytes], remote
            if self.kind != "UDP" and self._rx:
                data = await self.receive(max_bytes)
                return data, self.remote
            if self._error is not None:
                raise self._error
            if self.module_closed:
                return b"", self.remote
            await self._rx_event.wait()

    def receive_nowait(self, max_bytes: int = 65536) -> Optional[bytes]:
        """Buffered bytes without waiting (None if nothing is buffered yet)."""
        self._check_usable()
        if self._rx:
            out = bytes(self._rx[:max_bytes])
            del self._rx[:max_bytes]
            self._rx_bytes -= len(out)
            self._engine.update_rts()
            return out
        if self._error is not None:
            raise self._error
        if self.module_closed:
            return b""
        return None

    @property
    def buffered(self) -> int:
        return self._rx_bytes

    @property
    def unsent(self) -> int:
        """Bytes queued for sending or sent but not yet acknowledged by the remote."""
        return len(self._tx) + self.inflight

    # ------------------------------------------------------------------ sending
    async def send(self, data: bytes) -> None:
        """Send all of ``data``; returns when the module has taken it.

        UDP: one datagram (at most 2048 bytes) to the link's remote."""
        if self.kind == "UDP":
            await self.send_to(data, None)
            return
        data = bytes(data)
        self._check_usable()
        if self._error is not None:
            raise self._error
        if self.module_closed:
            raise E.SendFailed(f"link {self.id}: connection closed by the remote end",
                               link=self.id)
        if not data:
            return
        self._tx += data
        self._tx_queued += len(data)
        self.last_active = time.monotonic()
        target = self._tx_queued
        self._engine.wake_sender()
        if self._holding:
            self._wake_tx()           # the held tail grows: the sender looks again
        while self._tx_taken < target:
            if self._error is not None:
                raise self._error
            if self.owner_closed:
                raise E.LinkClosed(f"link {self.id} closed while sending")
            if self.module_closed and not self._sending:
                raise E.SendFailed(f"link {self.id}: connection closed by the remote end with "
                                   f"{target - self._tx_taken} bytes unsent", link=self.id)
            if self._holding and target - self._tx_taken < MAX_SEND:
                return                # what is left is a short tail the next send() tops up
            await self._tx_event.wait()

    async def send_to(self, data: bytes, addr: Optional[Address]) -> None:
        """One UDP datagram; ``addr`` ``(ip, port)`` or None for the link's remote."""
        data = bytes(data)
        self._check_usable()
        if self._error is not None:
            raise self._error
        if len(data) > MAX_SEND:
            raise E.WizError(90, f"datagram of {len(data)} bytes: the module sends at most "
                                 f"{MAX_SEND}")  # EMSGSIZE
        if not data:
            return
        params: dict[str, Any] = dict(link=self._engine_link_param(), length=len(data))
        if addr is not None:
            params.update(remote=str(addr[0]), port=int(addr[1]))
        async with self._send_lock:
            resp = await self._engine.command(req("CIPSEND", "set", **params), payload=data,
                                              check=False, parse=False)
        self._check_send(resp, len(data), fail_link=False)

    def _engine_link_param(self) -> Optional[int]:
        return self.id if self._engine.mux else None

    def _check_send(self, resp: Response, n: int, fail_link: bool = True) -> None:
        if resp.recv is not None and resp.recv != n:
            err = E.SendFailed(f"link {self.id}: module took {resp.recv} of {n} bytes",
                               link=self.id)
        elif resp.result in ("SEND OK", "OK"):
            return
        elif resp.result == "SEND FAIL":
            err = E.SendFailed(f"link {self.id}: SEND FAIL", link=self.id)
        elif resp.result == "BUSY":
            err = E.SendFailed(f"link {self.id}: module busy after the data was written; "
                               f"whether it was sent is unknown", link=self.id)
        else:
            err = E.SendFailed(f"link {self.id}: send refused ({resp.result}; "
                               f"{'; '.join(resp.lines())})", link=self.id)
        if fail_link:
            self.fail(err)
            if not self.module_closed:
                self._engine.close_link_soon(self)
        raise err

    # called by the engine's sender task
    #: per-link override of Engine.use_sendbuf (None: the engine's setting)
    pipelined: Optional[bool] = None
    #: the segment id after which the sender resets the module's counter (AT+CIPBUFRESET);
    #: lower it (per link) for a module or emulator with a smaller counter
    segment_limit: int = SEGMENT_LIMIT

    def _uses_sendbuf(self) -> bool:
        if self.kind != "TCP":
            return False
        return self._engine.use_sendbuf if self.pipelined is None else self.pipelined

    def tx_ready(self) -> bool:
        """It has bytes to send and the module has room for them (the sender's choice)."""
        if not self._tx or self._error is not None or self.module_closed:
            if self._tx and (self._error is not None or self.module_closed):
                # nothing more will go out: wake the senders so they raise
                self._wake_tx()
            return False
        if self._uses_sendbuf():
            if self.window_room < min(len(self._tx), 1024):
                if self._ack_wait_since is None:
                    self._ack_wait_since = time.monotonic()
                if (time.monotonic() - self._ack_wait_since > 10.0
                        and self._engine.spawn(self._resync_buffer)):
                    self._ack_wait_since = time.monotonic()
                return False
        return True

    _sending = False

    async def send_some(self) -> None:
        """Send one chunk (<= 2048 bytes) from the queue; run by the sender task."""
        self._sending = True
        try:
            await self._send_chunk()
        finally:
            self._sending = False
            self._wake_tx()

    async def _send_chunk(self) -> None:
        eng = self._engine
        sendbuf = self._uses_sendbuf()
        if sendbuf and len(self._tx) < MAX_SEND:
            await self._top_up()
            if not self._tx or self._error is not None or self.module_closed:
                return                # failed or closed meanwhile: send() callers raise
        n = min(len(self._tx), MAX_SEND)
        if sendbuf:
            n = min(n, self.window_room)
        chunk = bytes(self._tx[:n])
        name = "CIPSENDBUF" if sendbuf else "CIPSEND"
        if sendbuf and self.last_segment >= self.segment_limit:
            await self._reset_segments()
        resp = await self._send_command(name, n, chunk)
        if (sendbuf and resp.result == "ERROR" and self.last_segment
                and _segment_of(resp, self.id if eng.mux else None) is None):
            # refused before its '>' (no data went out): perhaps the counter's limit
            log.debug("link %d: CIPSENDBUF refused after segment %d; resetting the counter",
                      self.id, self.last_segment)
            await self._reset_segments()
            resp = await self._send_command(name, n, chunk)
        self._check_send(resp, n)
        if sendbuf:
            seg = _segment_of(resp, self.id if eng.mux else None)
            if seg is not None:
                self.add_segment(seg, n)
            else:
                log.debug("link %d: no segment id in %r", self.id, resp.lines())
        del self._tx[:n]
        self._tx_taken += n
        if sendbuf:
            # the payload was just written: the UART carries it for its wire time
            self._wire_free_at = trio.current_time() + n * 10.0 / max(1, eng.baudrate)
        self._wake_tx()

    async def _top_up(self) -> None:
        """A CIPSENDBUF tail shorter than a segment, while the UART still carries the
        previous payload: wait (until TOP_UP_MARGIN before the wire is free) for the next
        send() to fill it, so it does not cost a prompt round trip of its own."""
        until = self._wire_free_at - TOP_UP_MARGIN
        if until <= trio.current_time():
            return
        self._holding = True
        self._wake_tx()               # the send() that queued the tail returns now
        try:
            with trio.move_on_at(until):
                while (len(self._tx) < MAX_SEND and self._error is None
                       and not self.module_closed and not self.owner_closed):
                    await self._tx_event.wait()
        finally:
            self._holding = False

    async def _send_command(self, name: str, n: int, chunk: bytes) -> Response:
        eng = self._engine
        try:
            resp = await eng.command(req(name, "set", link=self._engine_link_param(), length=n),
                                     payload=chunk, check=False, parse=False)
        except (E.CommandTimeout, E.Busy) as exc:
            err = E.SendFailed(f"link {self.id}: {exc}", link=self.id)
            self.fail(err)
            eng.close_link_soon(self)
            raise err
        except E.WizError as exc:
            self.fail(exc)
            raise
        if self._error is not None:
            raise self._error
        return resp

    async def _reset_segments(self) -> None:
        """AT+CIPBUFRESET once every segment is acknowledged (the module refuses it while
        data waits); the next segment is 1 again."""
        with trio.move_on_after(RESET_DRAIN_TIMEOUT):
            while self.segments and self._error is None and not self.module_closed:
                await self._tx_event.wait()
        if self._error is not None:
            raise self._error
        if self.module_closed:
            return  # the sender sees the closed link and fails the queued bytes
        resp = await self._engine.command(req("CIPBUFRESET", "set", link=self._engine_link_param()),
                                          check=False, parse=False)
        if resp.result != "OK":
            err = E.SendFailed(f"link {self.id}: the module's segment counter is at {self.last_segment} "
                               f"and AT+CIPBUFRESET answered {resp.result}", link=self.id)
            self.fail(err)
            raise err
        self.reset_segments()

    async def _resync_buffer(self) -> None:
        """Acks stopped coming: ask AT+CIPBUFSTATUS what the module really holds."""
        try:
            resp = await self._engine.command(
                req("CIPBUFSTATUS", "set", link=self._engine_link_param()), check=False)
        except E.WizError:
            return
        rec = resp.record
        # the codec's record, not a second hand-written parser (the old getattr("acked")
        # never matched the field, so the record was always thrown away)
        acked = rec.acked_segment if isinstance(rec, R.BufferStatus) else None
        if resp.result != "OK":
            self.fail(E.SendFailed(f"link {self.id}: send buffer status unavailable "
                                    f"({resp.result}); link abandoned", link=self.id))
            return
        if acked is not None:
            self.segment_acked(int(acked))

    async def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything sent has been acknowledged by the remote's TCP."""
        with trio.move_on_after(timeout) as cs:
            while (self._tx or self.segments) and self._error is None and not self.module_closed:
                await self._tx_event.wait()
        if self._error is not None:
            raise self._error
        if cs.cancelled_caught:
            raise E.SendFailed(f"link {self.id}: data not acknowledged within {timeout}s",
                               link=self.id)

    # ------------------------------------------------------------------ closing
    async def module_close(self) -> None:
        """AT+CIPCLOSE its id if it still holds it (no flush; buffers kept); lets go of the
        id.  Nothing is written once a CLOSED for this connection was seen (the engine
        decides right before the command's bytes go out: Engine.close_on_module)."""
        resp = await self._engine.close_on_module(self)
        if resp is not None and resp.result != "OK":
            log.debug("link %d: CIPCLOSE answered %s %s", self.id, resp.result, resp.lines())

    async def aclose(self, flush_timeout: float = 10.0) -> None:
        """Flush what was sent (bounded), close the connection, free the id."""
        if self.owner_closed:
            return
        try:
            if self.kind != "UDP" and self._error is None and not self.module_closed:
                with trio.move_on_after(flush_timeout):
                    try:
                        await self.flush(flush_timeout)
                    except E.WizError:
                        pass
                await self._linger()
        finally:
            self.owner_closed = True
            self._rx.clear()
            self._dgrams.clear()
            self._rx_bytes = 0
            self._wake_rx()
            self._wake_tx()
            with trio.CancelScope(shield=True):
                try:
                    await self.module_close()
                except E.WizError as exc:
                    log.debug("link %d: close: %r", self.id, exc)
                finally:
                    self._engine.update_rts()

    async def _linger(self) -> None:
        """While a server listens the module gives a freed id to the next client at once,
        and AT+CIPCLOSE names only the id: a close crossing the peer's own close on the
        wire would end that next client instead (docs/design.md 3a).  A peer that
        closes too (HTTP ``Connection: close``: the client reads the body and hangs up)
        does so about when its data is acknowledged, so its CLOSED is waited for a
        moment (``Engine.close_linger``) and then no CIPCLOSE is needed at all."""
        linger = self._engine.close_linger
        if self._engine.server is None or linger <= 0 or self.kind == "UDP":
            return
        with trio.move_on_after(linger):
            while not self.module_closed and self._error is None:
                await self._rx_event.wait()

    async def __aenter__(self) -> Link:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _segment_of(resp: Response, lid: Optional[int]) -> Optional[int]:
    """Segment id from the CIPSENDBUF header answer ``[<link>,]<segment>,<acked>``."""
    for line in resp.lines():
        m = _INTS.match(line)
        if not m:
            continue
        nums = [int(g) for g in m.groups() if g is not None]
        if len(nums) == 3:
            return nums[1]
        if len(nums) == 2:
            return nums[0]
        if len(nums) == 1:
            return nums[0]
    rec = resp.record
    for attr in ("segment", "current", "segment_id"):
        v = getattr(rec, attr, None)
        if isinstance(v, int):
            return v
    return None


class Server:
    """The module's TCP server (AT+CIPSERVER); ``accept()`` gives accepted links."""

    def __init__(self, engine: Engine, port: int, backlog: int) -> None:
        self._engine = engine
        self.port = port
        self.backlog = backlog
        self._queue: Deque[Link] = deque()
        self._event = trio.Event()
        self._error: Optional[BaseException] = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<Server port={self.port} queued={len(self._queue)}>"

    @property
    def closed(self) -> bool:
        return self._closed or self._error is not None

    def fail(self, err: BaseException) -> None:
        """Fail the server (a module reset): accept() raises ``err``."""
        self._error = err
        self._event.set()
        self._event = trio.Event()

    def withdraw(self, link: Link) -> None:
        """A queued connection turned out dead before anyone accepted it (closed by a
        CIPCLOSE meant for its id's previous connection): it is not handed out."""
        try:
            self._queue.remove(link)
        except ValueError:
            pass

    def accepted(self, link: Link) -> None:
        """A connection the module accepted: ``link`` (made by the engine's session, which
        holds its id) is queued for :meth:`accept`."""
        self._queue.append(link)
        self._event.set()
        self._event = trio.Event()

    async def accept(self) -> Link:
        """The next accepted connection (its remote filled in from AT+CIPSTATUS)."""
        while True:
            if self._closed:
                raise E.LinkClosed("server closed")
            if self._queue:
                link = self._queue.popleft()
                api = self._engine.api
                if link.remote is None and api is not None:
                    try:
                        await api.net.fill_addresses(link)
                    except E.WizError:
                        pass
                return link
            if self._error is not None:
                raise self._error
            await self._event.wait()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._event.set()
        eng = self._engine
        eng.stop_accepting()          # connections from now on are not this server's
        with trio.CancelScope(shield=True):
            try:
                await eng.command(req("CIPSERVER", "set", mode=0), check=False)
            except E.WizError:
                pass
            if eng.server is self:
                eng.server = None
            for link in list(self._queue):
                await link.aclose()
            self._queue.clear()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
