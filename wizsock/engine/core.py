"""The engine: one owner of the UART, one command in flight, links, recovery.

:class:`Engine` is the composition of the driver's layers, each a module that owns one
responsibility (docs/design.md, the driver): ``base`` (the state and its views),
``uart`` (the port's I/O), ``runner`` (the command in flight), ``sender`` (the
round-robin sender), ``recovery`` (start-up, resets, stalls); this module keeps what
the session reports and what is done about it (``_dispatch``, ``_EFFECTS``), the link
ids and their waiters, and the engine's lifecycle (``start``, ``aclose``).

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
from typing import Any, Callable, ClassVar, Dict, List, Optional

import trio

from .. import errors as E
from ..framer import Data, Event, LinkEvent
from ..protocol import MAX_SEND
from ..protocol import request as req
from . import session as S
from .base import DEFAULT_TIMEOUT, TIMEOUTS, log, wire_log
from .recovery import BAUD_RATES, Recovery
from .redaction import redact_event
from .runner import BUSY_BACKOFF, WITHDRAWN
from .session import (BUSY_GRACE, FINAL, MAX_LINKS, OK_GRACE, PROMPT_COMMANDS,
                      SEND_COMMANDS, SENDBUF_SIZE, Command, LinkLimit, Response, Session)
from .uart import port_fd

__all__ = ["Engine", "Response", "Command", "req", "port_fd", "BAUD_RATES", "MAX_LINKS",
           "MAX_SEND", "SENDBUF_SIZE", "FINAL", "PROMPT_COMMANDS", "SEND_COMMANDS", "OK_GRACE",
           "BUSY_GRACE", "BUSY_BACKOFF", "DEFAULT_TIMEOUT", "TIMEOUTS"]

#: a connect still waiting for a link is logged (DEBUG) again this often
LINK_WAIT_NOTE = 5.0


class Engine(Recovery):
    """One module.  Use :func:`wizsock.open_module` rather than this class directly."""

    def _make_accepted(self, lid: int, generation: int, remote: Any) -> Any:
        """The session's factory for a connection the server accepted."""
        from .links import Link
        server = self.server
        port = server.port if server is not None else 0
        return Link(self, lid, generation, "TCP", remote=remote,
                    local=(self.station_ip or "0.0.0.0", port), accepted=True)

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
            pt = self.passthrough_session
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

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, ev: Event) -> None:
        if self._taps:
            self._tap("rx", ev)
        if wire_log.isEnabledFor(logging.DEBUG) and type(ev) is not Data:
            wire_log.debug("%s <- %s", self.name, redact_event(ev, self.session.command_name))
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
        pt = self.passthrough_session
        if pt is not None:
            pt.data_received(sev.payload)

    def _on_link_accepted(self, sev: S.LinkAccepted[Any]) -> None:
        if sev.implicit:
            log.debug("data on link %d before its CONNECT; taking it as accepted", sev.link.id)
        server = self.server
        if server is not None:
            server.accepted(sev.link)

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
        server = self.server
        if server is not None:
            server.withdraw(link)

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
            log.debug("%s: %s: %s", self.name, sev.why, redact_event(sev.event))

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
            if waiter.wake is not None:
                waiter.wake()

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
        event = trio.Event()
        waiter = session.enqueue(kind, event.set)
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
    # docs/design.md 3e "Between engine modules")
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
        S.IpdSpill: Recovery._on_ipd_spill,
        S.GhostData: Recovery._on_ghost,
        S.ModuleReset: Recovery._on_module_reset,
        S.ProbeWanted: Recovery._on_probe_wanted,
        S.StateCheckWanted: Recovery._on_state_check_wanted,
        S.WifiChanged: _on_urc,
        S.InfoUrc: _on_urc,
        S.MqttMessage: _on_mqtt_message,
        S.Ignored: _on_ignored,
    }
