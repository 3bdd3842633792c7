"""Recovery: start-up, the baud hunt, settings replay, resets, and unexplained silences.

Owns finding the module (the baud hunt) and initialising it (echo off, CIPMUX,
CIPDINFO, the firmware's version), replaying CUR settings after a reset, declaring a
reset and failing what it ends, the supervisor that re-initialises, the watchdog
probe, the ``+IPD`` stall watch and spill verdicts, the state check after a refused
command, the silence waited for after a suspicious exchange, and reclaiming an id.
"""
from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, List, Optional

import trio

from .. import errors as E
from .. import protocol as P
from ..framer import Data
from ..protocol import request as req
from . import session as S
from .base import log
from .sender import Sender
from .session import Response


#: the module's UART rates (spec 3.1.7), in the order tried after the configured one
BAUD_RATES = (115200, 921600, 2000000, 1500000, 1000000, 460800, 230400, 57600, 38400,
              19200, 14400, 9600, 4800, 2400, 1800, 1200, 600)

#: the baud hunt (Engine._find_module): AT probes at the configured rate (0.25 s each,
#: for a module still booting), then one per other rate lasting HUNT_WAIT plus the wire
#: time of HUNT_WIRE_BYTES (the probe and its answer) at that rate
BOOT_TRIES = 6
HUNT_WAIT = 0.2
HUNT_WIRE_BYTES = 20

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


def firmware_of(resp: Response) -> Optional[str]:
    for line in resp.lines():
        if line.startswith("AT version:"):
            return line[len("AT version:"):].split("(")[0].strip()
    return None


class Recovery(Sender):
    """Start-up and recovery (see the module docstring)."""

    if TYPE_CHECKING:   # provided by the layers above (engine.core.Engine)
        def _apply(self, events: List[S.SessionEvent]) -> None: ...
        async def _close_quietly(self, link: Any) -> None: ...


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
        self.firmware = firmware_of(resp)
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
        pt = self.passthrough_session
        if pt is not None:
            pt.fail(err)
        for link in gone:
            link.fail(err)
        server = self.server
        if server is not None:
            server.fail(err)
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
        server = self.server
        if held and held[0].tcp_type == 1 and server is not None:
            link = self.session.accept(lid, (held[0].remote_ip, held[0].remote_port))
            server.accepted(link)
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
