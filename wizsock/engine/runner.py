"""The command runner: one command in flight, its waiting, its busy and timeout policy.

Owns the command lock's exchanges (``command``, ``_exec``, ``_wait``): writing a
request, waiting for its prompt and final result under a cancel shield, retrying a
``busy`` (BUSY_BACKOFF), what a timeout means (a probe, a payload owed), parsing the
answer into the codec's record, and the held command lock of a passthrough session.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, NoReturn, Optional

import trio

from .. import errors as E
from .. import protocol as P
from . import session as S
from .base import Buffer, DEFAULT_TIMEOUT, log
from .redaction import SECRET_ANSWERS
from .session import Command, Response
from .uart import PortIO

#: the result of a guarded command whose guard said no right before its bytes would go
WITHDRAWN = "WITHDRAWN"
#: a busy answer is retried after these pauses (then the command fails with errors.Busy)
BUSY_BACKOFF = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.5, 0.8, 1.0, 1.0)


def check_result(resp: Response) -> None:
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


class CommandRunner(PortIO):
    """The command in flight (see the module docstring)."""

    if TYPE_CHECKING:   # provided by the layers above (engine.core.Engine)
        def _owe(self, request: P.Request, payload: bytes) -> None: ...
        async def _settle(self) -> None: ...
        def declare_reset(self, reason: str) -> None: ...
        async def probe(self, tries: int = 3, wait: float = 0.3) -> bool: ...


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
            check_result(resp)
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
            secret = request.name in SECRET_ANSWERS
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
                # the grace the busy ran out was already a pause: only the rest is waited
                waited = trio.current_time() - cmd.busy_at if cmd.busy_at is not None else 0.0
                pause = max(0.0, BUSY_BACKOFF[min(attempt, len(BUSY_BACKOFF) - 1)] - waited)
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

    @property
    def usable(self) -> bool:
        """The module is initialised and not recovering: commands may run."""
        return self._usable.is_set()

    async def until_usable(self) -> None:
        """Wait, with no limit, until the module is usable (see :meth:`wait_usable`)."""
        await self._usable.wait()

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
