"""The command session: the rules of the AT conversation, without I/O.

h11's ``Connection`` is the model.  The session is told what the module said
(framer events, :meth:`Session.receive`), what the host did
(:meth:`Session.start_command`, :meth:`Session.writing_payload`, ...) and what
time it is (``now``, a float the caller chooses; nothing here reads a clock),
and answers with small records naming what happened
(:class:`CommandFinished`, :class:`DataReceived`, :class:`LinkClosed`, ...).
It never reads or writes the port, sleeps or wakes anybody: the driver
(``wizsock.engine.core.Engine``) does all I/O and all waiting, and acts on the
records in the order they come.  docs/design.md section 3a is the contract.

What the session owns:

* the command in flight (:class:`Command`): its prompt, its payload written or
  not, a ``busy`` answer in its grace, an ``OK`` held in its grace, its result
  and the lines it printed;
* the link table: ids, generations, reservations and their FIFO waiters (plain
  :class:`IdWaiter` records), the five-link and one-SSL limits, ids reported
  ``CLOSED`` (ghosts), links whose stream is cut, and each link's CIPSENDBUF
  window (segments awaiting ``<link>,<segment>,SEND OK``, the 21,900-byte budget);
* the recovery state that follows from what was seen: a ``+IPD`` payload held for
  the line after it, the payload last delivered (a spill after it), bytes the
  module may still wait for (:meth:`Session.owe`), whether late answers may
  still come (:attr:`Session.resync`).

The rules for unsolicited output are tables (:data:`URC_RULES`,
:data:`COMMAND_RULES`, :data:`IDLE_RULES` and the result-code sets), read by
:meth:`Session.receive`.
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import (Any, Callable, ClassVar, Deque, Dict, FrozenSet, Generic, Iterable, List, Mapping, Optional, Set,
                    Tuple, TypeVar)

from .. import protocol as P
from ..framer import (Busy, Data, Echo, Event, Garbage, Info, LinkEvent, Prompt, Ready, Recv,
                      Result, SendBufAck, Subscription, Text, Wifi)

__all__ = [
    "Session", "Command", "CommandPhase", "COMMAND_TRANSITIONS", "Response", "LinkSlot", "LinkState", "TRANSITIONS", "IdWaiter", "LinkLimit", "SessionEvent",
    "CommandEvent", "PromptReady", "CommandFinished", "OkHeld", "BusySeen", "BusyExpired",
    "StrayOk", "DataReceived", "PassthroughData", "LinkAccepted", "LinkConnected",
    "LinkClosed", "LinkConnectFailed", "BareLinkEvent", "SegmentAcked", "SendFailed",
    "IdGranted", "StaleCloseHit", "IpdSpill", "LinkCut", "GhostData", "ModuleReset", "ProbeWanted", "StateCheckWanted",
    "WifiChanged",
    "InfoUrc", "MqttMessage", "Ignored", "MAX_LINKS", "SENDBUF_SIZE", "OK_GRACE", "BUSY_GRACE", "BUSY_OWN_GRACE",
    "FINAL", "PROMPT_COMMANDS", "SEND_COMMANDS",
]

Remote = Tuple[str, int]

MAX_LINKS = 5
SENDBUF_SIZE = 21900       # the module's TCP send buffer (spec 3.3.11)

#: results that end any command
FINAL = frozenset({"OK", "ERROR", "FAIL", "SEND OK", "SEND FAIL"})
#: results that end only the commands named (any other command keeps them as notes)
ENDS_ONLY: Mapping[str, FrozenSet[str]] = {"CLOSE": frozenset({"MQTTDIS"})}
#: the answers to a payload sent stop-and-wait (CIPSEND)
SEND_RESULTS = frozenset({"SEND OK", "SEND FAIL"})
#: commands whose payload the module answers with SEND OK / SEND FAIL
STOP_AND_WAIT = frozenset({"CIPSEND", "CIPSENDEX"})
#: results after which the real answer may still come: the next command waits for silence
RESYNC_RESULTS = frozenset({"ERROR", "FAIL"})
#: answers that refuse a prompt command before its ``>`` (no payload will be read)
PROMPT_REFUSALS = frozenset({"ALREADY CONNECTED", "link is not valid"})
PROMPT_COMMANDS = frozenset({"CIPSEND", "CIPSENDEX", "CIPSENDBUF", "CASEND", "CLICASEND",
                             "AWSPKSEND"})
SEND_COMMANDS = frozenset({"CIPSEND", "CIPSENDEX", "CIPSENDBUF"})
#: ``+NAME:`` lines that are URCs, never part of an answer (softAP stations)
URC_INFO = frozenset({"STA_CONNECTED", "DIST_STA_IP", "STA_DISCONNECTED"})

#: an OK that comes before any of the lines its command prints is held this long:
#: lines that follow at once show it was a stray OK, not an empty answer
OK_GRACE = 0.03
#: a "busy" may be stale (the answer to a line that was not a command: an owed
#: payload paid into the command parser, an earlier exchange whose end was in doubt):
#: wait this long for a late result before repeating the command
BUSY_GRACE = 0.25
#: when nothing but the command reached the module since it last answered, its busy
#: is the command's own: the firmware prints one "busy p..." per line it receives
#: while busy (ESP8266 AT's at_port.c, which the WizFi360's firmware derives from),
#: so the command was not run; only the rest of a burst (a few lines) is waited for
BUSY_OWN_GRACE = 0.03
#: unreadable lines start a liveness probe at most this often
GARBAGE_PROBE_INTERVAL = 0.5
#: signs of a restart whose ``ready`` was lost start a state check at most this often
STATE_CHECK_INTERVAL = 2.0
#: what E0 / E1 leave the module doing with our lines (a restart turns echo on again)
ECHO_SETTINGS: Mapping[str, bool] = {"E0": False, "E1": True}
#: refusals a module that restarted unseen gives (CIPMUX=0 again: a link id is an
#: error), each worth a state check
STATE_HINTS: Mapping[str, str] = {
    "CIPSTART": "AT+CIPSTART refused (a module that restarted unseen has CIPMUX=0)"}

#: ``[<link>,]<segment>,SEND FAIL``: a CIPSENDBUF segment the module could not send
SEGMENT_FAIL = re.compile(r"^(?:(\d+),)?(\d+),SEND FAIL$")
#: what a UART glitch leaves between two units: a short burst of non-printing bytes.
#: A spilled payload tail is the peer's bytes, with a printable one in it unless it
#: is a few bytes long and all below 0x20 (probability 1/8 per byte)
NOISE = re.compile(rb"[\x00-\x1f]{1,8}")
#: a payload line that would start an AT command if the module's command parser
#: read it (after a real reset): such a payload is never written as a filler
COMMAND_LIKE = re.compile(rb"(?:^|[\r\n])[\x00- ]*[Aa][Tt]")
#: what a PEM upload (CASEND, ...) is owed: an END line ends it (the module then
#: refuses the upload; in command mode it is one line answered ERROR)
PEM_FILLER = b"\r\n-----END -----\r\n"


# ---------------------------------------------------------------------- the command
class Response:
    """What a finished command produced."""

    __slots__ = ("name", "form", "result", "events", "notes", "recv", "record")

    def __init__(self, name: str, form: str) -> None:
        self.name = name
        self.form = form
        self.result: Optional[str] = None
        self.events: List[Event] = []
        self.notes: List[str] = []
        self.recv: Optional[int] = None
        #: the codec's record for the answer (set by the driver after parsing)
        self.record: Any = None

    @property
    def ok(self) -> bool:
        return self.result in ("OK", "SEND OK")

    def parsed(self, record: Any) -> None:
        """The codec read the answer as ``record``."""
        self.record = record

    def lines(self) -> List[str]:
        out: List[str] = []
        for ev in self.events:
            if isinstance(ev, Info):
                out.append(f"+{ev.name}" + ("" if ev.value is None else ":" + ev.value))
            elif isinstance(ev, Text):
                out.append(ev.text)
            elif isinstance(ev, LinkEvent):
                out.append(ev.state if ev.link is None else f"{ev.link},{ev.state}")
        return out + list(self.notes)

    def finished(self, code: str) -> None:
        """The command's final result came (set through its command's transition)."""
        self.result = code

    def received(self, n: int) -> None:
        """``Recv <n> bytes``: how much of a payload the module took."""
        self.recv = n

    def __repr__(self) -> str:
        return f"Response({self.name!r}, {self.result!r}, lines={self.lines()!r})"


#: forms whose lines come only before a failure (AT+CWJAP=...: ``+CWJAP:<code>`` then
#: FAIL): an OK is their whole answer, and holding it would only let a glitch's line
#: make it "stray" (the join then waited 25 s for another OK)
LINES_ONLY_ON_FAILURE = frozenset({("CWJAP", "set"), ("CWJAP_CUR", "set"), ("CWJAP_DEF", "set")})


def expects_lines(request: P.Request) -> bool:
    """Whether the module prints lines before this command's OK (a response shape)."""
    if (request.name, request.form) in LINES_ONLY_ON_FAILURE:
        return False
    spec = P.COMMANDS.get(request.name)
    form = spec.forms.get(request.form) if spec is not None else None
    return form is not None and form.response is not None


class CommandPhase(str, Enum):
    """Where the command in flight is in its exchange.  Written only by
    :meth:`Session.command_transition`, through :data:`COMMAND_TRANSITIONS`.  A final
    state remembers how far the exchange got (the driver asks, after the result,
    whether a prompt came and whether the payload went)."""
    #: written; no ``>`` and no final result yet
    SENT = "sent"
    #: the ``>`` came: the payload is due
    PROMPTED = "prompted"
    #: the payload is going out (marked before the write: its answer may be read first)
    WRITTEN = "written"
    #: a final result, with no prompt before it
    FINAL = "final"
    #: a final result after the prompt, before the payload went
    FINAL_PROMPTED = "final after the prompt"
    #: a final result after the payload went
    FINAL_WRITTEN = "final after the payload"


_C = CommandPhase
#: the command's exchange: (phase, event) -> next phase.  Events: ``prompt`` (its ``>``),
#: ``write`` (the driver writes the payload), ``finish`` (its final result).
COMMAND_TRANSITIONS: Mapping[Tuple[CommandPhase, str], CommandPhase] = MappingProxyType({
    (_C.SENT, "prompt"): _C.PROMPTED,
    (_C.PROMPTED, "write"): _C.WRITTEN,
    (_C.SENT, "finish"): _C.FINAL,
    (_C.PROMPTED, "finish"): _C.FINAL_PROMPTED,
    (_C.WRITTEN, "finish"): _C.FINAL_WRITTEN,
})
#: the states after the ``>`` came, the states after the payload went, the final ones
_PROMPTED = frozenset({_C.PROMPTED, _C.WRITTEN, _C.FINAL_PROMPTED, _C.FINAL_WRITTEN})
_WRITTEN = frozenset({_C.WRITTEN, _C.FINAL_WRITTEN})
_FINAL = frozenset({_C.FINAL, _C.FINAL_PROMPTED, _C.FINAL_WRITTEN})


class Command:
    """The command in flight, as the session sees it (no waiting: the driver waits).

    Its exchange is one value, :attr:`phase` (:class:`CommandPhase`), changed only by
    the session's :meth:`Session.command_transition`; ``busy_at``/``ok_at`` are the
    clocks of the two graces the session runs (a busy before the prompt, an OK before
    the lines), set through the session too."""

    __slots__ = ("request", "name", "response", "wants_prompt", "phase",
                 "busy_at", "busy_grace", "ok_at", "expects_lines", "error", "started")

    def __init__(self, request: P.Request, wants_prompt: bool, now: float) -> None:
        self.request = request
        self.name = request.name
        self.response = Response(request.name, request.form)
        #: a payload follows a ``>`` prompt
        self.wants_prompt = wants_prompt
        self.phase = CommandPhase.SENT
        #: when a ``busy`` answered it before any prompt (BUSY_GRACE runs from there)
        self.busy_at: Optional[float] = None
        #: how long a busy is given for a late result (the session decides at the start)
        self.busy_grace = BUSY_GRACE
        #: when an OK came before the lines the command prints (OK_GRACE runs from there)
        self.ok_at: Optional[float] = None
        self.expects_lines = expects_lines(request)
        #: set by the driver when the command cannot finish (a reset, lost output, shutdown)
        self.error: Optional[BaseException] = None
        self.started = now

    @property
    def result(self) -> Optional[str]:
        return self.response.result

    @property
    def prompted(self) -> bool:
        """Its ``>`` came (it may have finished since)."""
        return self.phase in _PROMPTED

    @property
    def data_written(self) -> bool:
        """Its payload went (or is going) out."""
        return self.phase in _WRITTEN

    @property
    def final(self) -> bool:
        return self.phase in _FINAL

    def move_to(self, phase: CommandPhase) -> None:
        """Only :meth:`Session.command_transition` calls this (the table decides)."""
        self.phase = phase

    def busy_seen(self, now: Optional[float]) -> None:
        """A ``busy`` before any prompt (``now``: its grace starts), or None: over."""
        self.busy_at = now

    def hold_ok(self, now: Optional[float]) -> None:
        """An OK before the lines it should follow (``now``: its grace starts), or None:
        lines came after it, so it was not this command's."""
        self.ok_at = now

    def abort(self, error: BaseException) -> None:
        """The driver says it cannot finish (a reset, lost output, shutdown)."""
        self.error = error

    def __repr__(self) -> str:
        state = ("final " + repr(self.response.result) if self.final else self.phase.value)
        return f"<Command {self.name} {state}>"


# ---------------------------------------------------------------------- links
class LinkState(str, Enum):
    """Where one generation of one link id is in its life (docs/design.md 3a, "The link
    lifecycle").  Written only by :meth:`Session.transition`, through :data:`TRANSITIONS`."""
    #: AT+CIPSTART is in flight, no ``<id>,CONNECT`` yet (the id is held)
    OPENING = "opening"
    #: ``<id>,CONNECT`` came, AT+CIPSTART not answered yet (the id is held)
    CONNECTED = "connected"
    #: up (the id is held); an accepted connection starts here
    OPEN = "open"
    #: the host closes it: its AT+CIPCLOSE waits for the command lock or is in flight
    #: (the id is held until the answer)
    CLOSING = "closing"
    #: ``CLOSED``/``CONNECT FAIL`` before AT+CIPSTART answered: the id stays held until
    #: the answer (the open then fails or reads EOF)
    ENDED_OPENING = "ended while opening"
    #: ``<id>,CLOSED`` (the module freed the id; the handle reads what came, then EOF);
    #: also the CLOSED the module prints before the OK of the host's own AT+CIPCLOSE
    PEER_CLOSED = "closed by the peer"
    #: the host let go of the id: its AT+CIPCLOSE answered (or was withdrawn), the open
    #: failed, or a module reset / shutdown ended it
    RECLAIMED = "reclaimed"


#: states in which the link holds its id (the module may hold the connection)
HOLDING = frozenset({LinkState.OPENING, LinkState.CONNECTED, LinkState.OPEN, LinkState.CLOSING,
                     LinkState.ENDED_OPENING})
#: states after which the module holds nothing for this generation
ENDED = frozenset({LinkState.ENDED_OPENING, LinkState.PEER_CLOSED, LinkState.RECLAIMED})

_S = LinkState
#: the link lifecycle: (state, event) -> next state.  Events:
#: ``connect`` (<id>,CONNECT), ``opened`` (AT+CIPSTART answered OK), ``open_failed`` (it
#: failed or was abandoned), ``peer_closed`` (<id>,CLOSED or CONNECT FAIL), ``close`` (the
#: host wants AT+CIPCLOSE), ``closed`` (that AT+CIPCLOSE answered, or was withdrawn because
#: the CLOSED came first), ``lost`` (module reset, shutdown, an id taken back).  A pair not
#: in the table changes nothing (``close`` of a link the peer closed sends no CIPCLOSE).
TRANSITIONS: Mapping[Tuple[LinkState, str], LinkState] = MappingProxyType({
    (_S.OPENING, "connect"): _S.CONNECTED,
    (_S.OPENING, "opened"): _S.OPEN,
    (_S.OPENING, "open_failed"): _S.RECLAIMED,
    (_S.OPENING, "peer_closed"): _S.ENDED_OPENING,
    (_S.OPENING, "lost"): _S.RECLAIMED,
    (_S.CONNECTED, "opened"): _S.OPEN,
    (_S.CONNECTED, "open_failed"): _S.RECLAIMED,
    (_S.CONNECTED, "peer_closed"): _S.ENDED_OPENING,
    (_S.CONNECTED, "lost"): _S.RECLAIMED,
    (_S.ENDED_OPENING, "opened"): _S.PEER_CLOSED,
    (_S.ENDED_OPENING, "open_failed"): _S.RECLAIMED,
    (_S.ENDED_OPENING, "lost"): _S.RECLAIMED,
    (_S.OPEN, "peer_closed"): _S.PEER_CLOSED,
    (_S.OPEN, "close"): _S.CLOSING,
    (_S.OPEN, "lost"): _S.RECLAIMED,
    (_S.CLOSING, "peer_closed"): _S.PEER_CLOSED,
    (_S.CLOSING, "closed"): _S.RECLAIMED,
    (_S.CLOSING, "lost"): _S.RECLAIMED,
})


class LinkSlot:
    """One generation of one link id in the session's table.

    The engine's :class:`~wizsock.engine.Link` is one (it subclasses this).  Its
    lifecycle (``state``) is the session's alone (``Session.transition``);
    ``owner_closed`` is the handle's (its owner closed it) and written by the handle."""

    def __init__(self, lid: int, generation: int, kind: str, *, accepted: bool = False) -> None:
        self.id = lid
        self.generation = generation
        self.kind = kind
        self.accepted = accepted
        #: its lifecycle: written by Session.transition alone (tests/engine/test_link_state.py)
        self.state = LinkState.OPEN if accepted else LinkState.OPENING
        #: when the state last changed, for diagnostics (kept by the driver's link, in
        #: state_changed: the session reads no clock)
        self.since = 0.0
        #: the owner closed the handle
        self.owner_closed = False
        #: its stream was cut (a +IPD that lied): nothing after the cut may reach the reader
        self.cut = False
        #: the peer (host, port) a client link was opened to; an accepted link's once known
        self.remote: Optional[Remote] = None
        # the CIPSENDBUF window: (segment id, length) not yet acknowledged
        self.segments: Deque[Tuple[int, int]] = deque()
        self.inflight = 0
        self.acked_segment = 0
        #: the module's last CIPSENDBUF segment id on this link
        self.last_segment = 0

    def enter(self, new: LinkState) -> None:
        """Take state ``new``: called by :meth:`Session.transition` alone, which chose it
        from :data:`TRANSITIONS` (tests/engine/test_link_lifecycle.py checks both)."""
        self.state = new

    def cut_stream(self) -> None:
        """Its stream was cut (a +IPD that lied): nothing after the cut may reach the reader."""
        self.cut = True

    def state_changed(self, old: LinkState, new: LinkState) -> None:
        """Called by the session after every transition (the engine's Link wakes its
        readers and senders here; nothing to do for a bare slot)."""

    @property
    def opening(self) -> bool:
        """AT+CIPSTART not answered yet: a CLOSED now does not free the id."""
        return self.state in (LinkState.OPENING, LinkState.CONNECTED, LinkState.ENDED_OPENING)

    @property
    def connected(self) -> bool:
        """Its CONNECT came (or the open answered OK; an accepted link from the start)."""
        return self.state not in (LinkState.OPENING, LinkState.ENDED_OPENING)

    @property
    def module_closed(self) -> bool:
        """The module holds nothing more for it: reported CLOSED, or closed by the host."""
        return self.state in ENDED

    @property
    def window_room(self) -> int:
        """Bytes the module's send buffer takes before acknowledgements free some."""
        return SENDBUF_SIZE - self.inflight

    def add_segment(self, segment: int, n: int) -> None:
        """The module took ``n`` bytes as CIPSENDBUF segment ``segment``."""
        self.last_segment = segment
        if segment > self.acked_segment:
            self.segments.append((segment, n))
            self.inflight += n

    def ack(self, segment: int) -> None:
        """Every segment up to ``segment`` reached the remote."""
        self.acked_segment = max(self.acked_segment, segment)
        while self.segments and self.segments[0][0] <= segment:
            _, n = self.segments.popleft()
            self.inflight -= n

    def clear_window(self) -> None:
        """Forget the unacknowledged segments (the link failed or closed)."""
        self.segments.clear()
        self.inflight = 0

    def reset_segments(self) -> None:
        """AT+CIPBUFRESET succeeded: the module numbers from 1 again."""
        self.last_segment = self.acked_segment = 0


L = TypeVar("L", bound=LinkSlot)


class IdWaiter:
    """A connect waiting, first come first served, for a link id (the driver wakes it
    with ``wake``, its own callback, opaque here, when the id is granted)."""

    __slots__ = ("kind", "lid", "wake")

    def __init__(self, kind: str, wake: Optional[Callable[[], None]] = None) -> None:
        self.kind = kind
        #: the id granted (reserved for it), or None while it waits
        self.lid: Optional[int] = None
        self.wake = wake

    def grant(self, lid: int) -> None:
        """The session reserved ``lid`` for this waiter."""
        self.lid = lid

    def __repr__(self) -> str:
        return f"<IdWaiter {self.kind} lid={self.lid}>"


class LinkLimit(Exception):
    """No link id can be had (five links, or a second SSL link); the driver raises
    :class:`~wizsock.errors.LinkLimitError` with this message."""


# ---------------------------------------------------------------------- what the session says
@dataclass(frozen=True)
class SessionEvent:
    """Something the driver acts on (subclasses name what)."""


@dataclass(frozen=True)
class CommandEvent(SessionEvent):
    """The command in flight changed: its waiter must look again."""
    command: Command


@dataclass(frozen=True)
class PromptReady(CommandEvent):
    """The ``>`` came: the driver writes the payload (after :meth:`Session.writing_payload`)."""


@dataclass(frozen=True)
class CommandFinished(CommandEvent):
    """The command has its result (``command.result``)."""


@dataclass(frozen=True)
class OkHeld(CommandEvent):
    """An OK came before the lines the command prints; OK_GRACE tells (see :meth:`Session.timer`)."""


@dataclass(frozen=True)
class BusySeen(CommandEvent):
    """``busy`` before the prompt: a late result may still come within BUSY_GRACE."""


@dataclass(frozen=True)
class BusyExpired(CommandEvent):
    """BUSY_GRACE passed with no result: the command was not run; the driver repeats it."""


@dataclass(frozen=True)
class StrayOk(CommandEvent):
    """The OK held in grace was not the command's own (its lines followed): dropped."""


@dataclass(frozen=True)
class DataReceived(SessionEvent, Generic[L]):
    """A ``+IPD`` payload for a held link, to its receive buffer."""
    link: L
    payload: bytes
    remote: Optional[Remote]


@dataclass(frozen=True)
class PassthroughData(SessionEvent):
    """Bytes of the passthrough stream (``Session.passthrough`` is on)."""
    payload: bytes


@dataclass(frozen=True)
class LinkAccepted(SessionEvent, Generic[L]):
    """The server got a connection: a new link (made by the session's ``accept`` factory),
    already in the table; ``implicit``: its data came before its CONNECT."""
    link: L
    implicit: bool


@dataclass(frozen=True)
class LinkConnected(SessionEvent, Generic[L]):
    link: L


@dataclass(frozen=True)
class LinkClosed(SessionEvent, Generic[L]):
    """``<id>,CLOSED`` for a held link: it reads EOF (``freed``: the id left the table and
    is remembered as a ghost; a link still opening keeps it until its CIPSTART answers)."""
    link: L
    freed: bool


@dataclass(frozen=True)
class LinkConnectFailed(SessionEvent, Generic[L]):
    link: L


@dataclass(frozen=True)
class BareLinkEvent(SessionEvent):
    """``CONNECT``/``CLOSED`` with no id (single mode, MQTT) and no command in flight."""
    event: LinkEvent


@dataclass(frozen=True)
class SegmentAcked(SessionEvent, Generic[L]):
    """``[<link>,]<segment>,SEND OK``: the link's window moved (``link`` None: nobody holds
    the id); the sender may go on."""
    link: Optional[L]
    segment: int


@dataclass(frozen=True)
class SendFailed(SessionEvent, Generic[L]):
    """The module could not send data of this link (SEND FAIL): its stream has a hole."""
    link: L


@dataclass(frozen=True)
class StaleCloseHit(SessionEvent, Generic[L]):
    """A connection the server accepted on an id while the host's AT+CIPCLOSE for the
    id's previous connection was already on the wire was closed by that CIPCLOSE (its
    CLOSED came before the command's answer): the client saw its connection closed."""
    link: L


@dataclass(frozen=True)
class IdGranted(SessionEvent):
    """A freed id went to a waiting connect (``waiter.lid``): wake it."""
    waiter: IdWaiter


@dataclass(frozen=True)
class IpdSpill(SessionEvent, Generic[L]):
    """The +IPD before an unreadable line lied about its length: the link's stream is
    cut (``link.cut``); the last ``withdraw`` bytes delivered are not the peer's."""
    link: L
    withdraw: int


@dataclass(frozen=True)
class LinkCut(SessionEvent, Generic[L]):
    """A +IPD for the link stalled short (:meth:`Session.ipd_stalled`): its data is cut."""
    link: L


@dataclass(frozen=True)
class GhostData(SessionEvent, Generic[L]):
    """Data on an id whose CLOSED was taken: that CLOSED was false; ``link`` is the
    handle it closed (its stream is cut; the id is still held by the module)."""
    link: L


@dataclass(frozen=True)
class ModuleReset(SessionEvent):
    """The module restarted (``ready``): the driver declares a reset."""
    reason: str


@dataclass(frozen=True)
class ProbeWanted(SessionEvent):
    """Unreadable output: whether the module still answers is worth an ``AT``."""
    reason: str


@dataclass(frozen=True)
class StateCheckWanted(SessionEvent):
    """Signs of a restart whose ``ready`` was lost (echo back on, a link id refused):
    whether the module still has the driver's settings (CIPMUX) is worth one query."""
    reason: str


@dataclass(frozen=True)
class WifiChanged(SessionEvent):
    """``WIFI CONNECTED``/``GOT IP``/``DISCONNECT`` (``Session.wifi_state`` is updated)."""
    event: Wifi


@dataclass(frozen=True)
class InfoUrc(SessionEvent):
    """``+STA_CONNECTED`` & co. (softAP stations)."""
    event: Info


@dataclass(frozen=True)
class MqttMessage(SessionEvent):
    """``<topic> -> <data>``."""
    event: Subscription


@dataclass(frozen=True)
class Ignored(SessionEvent):
    """Output that belongs to nobody (logged by the driver, otherwise dropped)."""
    event: Event
    why: str


# ---------------------------------------------------------------------- the session
Handler = Callable[["Session[Any]", Any, float, List[SessionEvent]], bool]
Rule = Callable[["Session[Any]", Any, float, List[SessionEvent]], None]


class Session(Generic[L]):
    """The AT conversation with one module; see the module docstring.

    ``accept(lid, generation, remote)`` makes the link for a connection the server
    accepted (the engine's Link; a :class:`LinkSlot` in tests)."""

    def __init__(self, accept: Callable[[int, int, Optional[Remote]], L], *,
                 name: str = "module") -> None:
        self.name = name
        self._accept = accept
        #: CIPMUX=1 (ids on links); off: every link is id 0
        self.mux = True
        #: the passthrough stream (the driver's, opaque here) that owns the UART while
        #: one is open: all data is its; None otherwise
        self.passthrough: Optional[object] = None
        #: the driver's server (opaque here) while one is registered, else None
        self.server: Optional[object] = None
        #: a server listens: a CONNECT (or data) on an id nobody holds is a new connection.
        #: Not the same fact as ``server``: a closing server, or one a reset took, is
        #: still registered (its queue is drained, its links linger) but accepts nothing
        self.accepting = False
        #: the driver is (re-)initialising the module: ``ready`` is expected, not a reset
        self.initialising = False
        self.init_ready_seen = False
        self.wifi_state: Optional[str] = None
        self.station_ip: Optional[str] = None
        #: when the last line or prompt (not +IPD data) arrived
        self.last_line = 0.0
        #: late answers of an earlier exchange may still come: wait for silence first
        self._resync = False
        #: something other than a command may have reached the module since its last
        #: answer (an owed payload, an exchange in doubt): a busy may then be stale
        self._busy_in_doubt = True
        #: the command whose own busy ran out its grace: the module answered its line
        self._busy_answered: Optional[Command] = None
        #: bytes the module may still read as a payload (see owe)
        self.owed: Optional[bytes] = None
        self.command: Optional[Command] = None
        self._links: Dict[int, L] = {}
        self._generations = [0] * MAX_LINKS
        self._reserved: Set[int] = set()
        self._waiters: Deque[IdWaiter] = deque()
        self._ghosts: Dict[int, L] = {}
        #: the link whose AT+CIPCLOSE is in flight, by id (see closing)
        self._stale_targets: Dict[int, L] = {}
        #: events of transitions no caller collects (a reset's grants): take_grants
        self._pending: List[SessionEvent] = []
        #: a payload held for the line after it: (link, payload, remote)
        self.held: Optional[Tuple[L, bytes, Optional[Remote]]] = None
        #: the payload delivered last, while the next unit may still show its length lied
        self._last_data: Optional[Tuple[L, int]] = None
        self._last_garbage_probe = -GARBAGE_PROBE_INTERVAL - 1.0
        #: what the module does with our lines: False after E0, True after E1, None
        #: when unknown (before the first, after a reset)
        self.echo: Optional[bool] = None
        self._last_state_check = -STATE_CHECK_INTERVAL - 1.0

    # ------------------------------------------------------------------ commands
    @property
    def resync(self) -> bool:
        """Late answers of an earlier exchange may still come: the next command waits
        for silence first (and a busy it meets may be one of those answers)."""
        return self._resync

    def set_server(self, server: Optional[object]) -> None:
        """``server`` is registered and listens, or (None) none is registered."""
        self.server = server
        self.accepting = server is not None

    def stop_accepting(self) -> None:
        """The server closes: a CONNECT on a free id is nobody's from now on."""
        self.accepting = False

    def set_passthrough(self, stream: Optional[object]) -> None:
        """``stream`` owns the UART from now on, or (None) the stream let go of it."""
        self.passthrough = stream

    def start_initialising(self) -> None:
        """The driver (re-)initialises the module: a ``ready`` is expected, not a reset."""
        self.initialising = True

    def new_init_attempt(self) -> None:
        """One pass of the initialisation starts: no ``ready`` seen in it yet."""
        self.init_ready_seen = False

    def stop_initialising(self) -> None:
        self.initialising = False

    def expect_late_answers(self) -> None:
        """Something may still answer an earlier exchange (an answer that could not be
        read, a payload paid): the next command waits for silence first."""
        self._resync = True
        self._busy_in_doubt = True

    def take_resync(self) -> bool:
        """Whether to wait for silence before the next command (asked once)."""
        resync, self._resync = self._resync, False
        return resync

    @property
    def active(self) -> Optional[Command]:
        """The command in flight if it has no result yet."""
        cmd = self.command
        return cmd if cmd is not None and not cmd.final else None

    @property
    def command_name(self) -> Optional[str]:
        cmd = self.active
        return cmd.name if cmd is not None else None

    def start_command(self, request: P.Request, wants_prompt: bool, now: float) -> Command:
        """The driver is about to write ``request``; output from now on is its answer."""
        cmd = Command(request, wants_prompt, now)
        cmd.busy_grace = BUSY_GRACE if self._busy_in_doubt else BUSY_OWN_GRACE
        self.command = cmd
        return cmd

    def end_command(self, cmd: Command) -> None:
        """The driver is done with ``cmd`` (finished, failed or abandoned)."""
        if self.command is cmd:
            self.command = None
        if self._busy_answered is cmd:
            # its own busy and then silence: answered, not in doubt (else every retry
            # after a busy would wait BUSY_GRACE instead of the burst's BUSY_OWN_GRACE)
            self._busy_answered = None
        elif not cmd.final:
            self._busy_in_doubt = True     # its answer may still come

    def command_transition(self, cmd: Command, event: str) -> None:
        """The one door through which a command's state changes
        (:data:`COMMAND_TRANSITIONS`); an event the table does not list for its state
        changes nothing."""
        new = COMMAND_TRANSITIONS.get((cmd.phase, event))
        if new is not None:
            cmd.move_to(new)

    def finish_command(self, cmd: Command, code: str) -> None:
        """``cmd``'s final result is ``code``."""
        cmd.response.finished(code)
        self.command_transition(cmd, "finish")

    def writing_payload(self, cmd: Command) -> None:
        """The payload goes out now (marked before the write: its answer may be read
        before the write returns)."""
        self.command_transition(cmd, "write")

    def payload_written(self, cmd: Command) -> List[SessionEvent]:
        """The payload left the host.  The module answers nothing after CIPSENDBUF data
        (spec 3.3.9): the segment is in its buffer, ``<link>,<seg>,SEND OK`` comes later."""
        if cmd.name == "CIPSENDBUF" and not cmd.final:
            self.finish_command(cmd, "OK")
            return [CommandFinished(cmd)]
        return []

    def abort_command(self, error: BaseException) -> Optional[Command]:
        """The command in flight cannot finish (the driver's ``error`` says why)."""
        cmd = self.active
        if cmd is not None:
            cmd.abort(error)
        return cmd

    def next_deadline(self) -> Optional[float]:
        """When :meth:`timer` has something to decide (an OK or a busy in grace), or None."""
        cmd = self.active
        if cmd is None:
            return None
        ends = []
        if cmd.ok_at is not None:
            ends.append(cmd.ok_at + OK_GRACE)
        if cmd.busy_at is not None:
            ends.append(cmd.busy_at + cmd.busy_grace)
        return min(ends) if ends else None

    def timer(self, now: float) -> List[SessionEvent]:
        """Graces that ran out by ``now``: an OK held with nothing after it was the
        (empty) answer; a busy with no late result means the command was not run."""
        cmd = self.active
        if cmd is None or cmd.error is not None or (cmd.prompted and not cmd.data_written):
            return []
        if cmd.ok_at is not None and now - cmd.ok_at >= OK_GRACE - 1e-3:
            self.finish_command(cmd, "OK")
            return [CommandFinished(cmd)]
        if cmd.busy_at is not None and now - cmd.busy_at >= cmd.busy_grace - 1e-3:
            if cmd.busy_grace == BUSY_OWN_GRACE:
                self._busy_answered = cmd
            return [BusyExpired(cmd)]
        return []

    def owe(self, request: P.Request, payload: bytes) -> bytes:
        """A prompt command ended before its payload was written: the module may have
        printed ``>`` (or be about to) and then reads exactly that many bytes as data,
        whatever they are.  The bytes that complete it are kept in :attr:`owed` (and
        returned); the driver writes them before the next exchange.  The user's own
        bytes only if no line of them could start a command (the module may really
        have reset, and then they reach its command parser), else NULs."""
        if request.name in SEND_COMMANDS:
            data = bytes(payload)
            owed = data if not COMMAND_LIKE.search(data) else bytes(len(data))
        else:
            owed = PEM_FILLER
        self.owed = owed
        return owed

    def take_owed(self) -> Optional[bytes]:
        owed, self.owed = self.owed, None
        if owed is not None:
            self._busy_in_doubt = True     # its lines may meet the command parser
        return owed

    # ------------------------------------------------------------------ the module's output
    def receive(self, event: Event, now: float, *, mid_line: bool = False) -> List[SessionEvent]:
        """One framer event; ``mid_line``: the framer's read ended inside a line (a payload
        delivered now waits for that line: it may show that the +IPD length lied)."""
        out: List[SessionEvent] = []
        cls = type(event)
        held, self.held = self.held, None
        after, self._last_data = self._last_data, None
        if held is not None or after is not None:
            if self._is_spill(event):
                if held is not None:
                    self._spill(held[0], 0, out)          # never delivered
                elif after is not None:
                    self._spill(after[0], after[1], out)
            elif held is not None:
                self._deliver(*held, out)
                self._last_data = None
        if cls is Data:
            assert isinstance(event, Data)
            self._on_data(event, mid_line, out)
            return out
        self.last_line = now
        rule = self.URC_RULES.get(cls)
        if rule is not None and rule(self, event, now, out):
            return out
        cmd = self.active
        if cmd is None:
            idle = self.IDLE_RULES.get(cls)
            if idle is None:
                self._idle_other(event, now, out)
            else:
                idle(self, event, now, out)
        else:
            answer = self.COMMAND_RULES.get(cls)
            if answer is None:
                self._cmd_line(event, now, out)
            else:
                answer(self, event, now, out)
        return out

    def events_for(self, events: Iterable[Event], now: float, *,
                   mid_line: bool = False) -> List[SessionEvent]:
        """:meth:`receive` for each event of one read, in order."""
        out: List[SessionEvent] = []
        for ev in events:
            out.extend(self.receive(ev, now, mid_line=mid_line))
        return out

    def _is_spill(self, event: Event) -> bool:
        """The unit after a +IPD payload: an unreadable line, or text that the command in
        flight (if any) does not print, means its length lied."""
        if isinstance(event, Garbage):
            return not NOISE.fullmatch(bytes(event.data))
        if isinstance(event, Text):
            cmd = self.active
            return ((cmd is None or not cmd.expects_lines)
                    and not SEGMENT_FAIL.match(event.text)
                    and not NOISE.fullmatch(event.text.encode("latin-1", "replace")))
        return False

    # ---- +IPD
    def _on_data(self, ev: Data, mid_line: bool, out: List[SessionEvent]) -> None:
        if self.passthrough is not None:      # the UART carries one stream
            out.append(PassthroughData(ev.payload))
            return
        lid = ev.link if self.mux else 0
        link = self._links.get(lid)
        if link is None:
            if self.accepting:
                link = self._new_accepted(lid, ev.remote, True, out)
            else:
                out.append(Ignored(ev, f"data for link {lid}, which nobody holds"))
                ghost = self._ghosts.pop(lid, None)
                if ghost is not None and ghost.generation == self._generations[lid]:
                    out.append(GhostData(ghost))
                return
        if link.cut:
            return      # its stream was cut: nothing after the cut may reach the reader
        stale = self._stale_data(link, ev.remote, self.mux)
        if stale is not None:
            # the id's previous connection still draining: the engine freed the id on a
            # close the module never confirmed; the new owner must not read its bytes
            out.append(Ignored(ev, f"data for link {lid} {stale}: an earlier connection's"))
            return
        if mid_line:
            # the read ended inside the line after this payload: if that line turns out
            # unreadable, the +IPD length lied and this payload is not the peer's data
            self.held = (link, ev.payload, ev.remote)
            return
        self._deliver(link, ev.payload, ev.remote, out)

    @staticmethod
    def _stale_data(link: LinkSlot, remote: Optional[Remote], mux: bool) -> Optional[str]:
        """Why data for ``link`` cannot be its own, or None.  The module prints
        ``<id>,CONNECT`` before any data of a connection it opened (a bare ``CONNECT``
        in single-connection mode is the command's), and a TCP or SSL client's peer
        port is the one it was opened to (AT+CIPDINFO=1 shows it)."""
        if link.accepted:
            return None         # a server's connection may send before its CONNECT is seen
        if mux and not link.connected:
            return "before its CONNECT"
        if (link.kind != "UDP" and remote is not None and link.remote is not None
                and remote[1] != link.remote[1]):
            return f"from port {remote[1]}, not {link.remote[1]}"
        return None

    def _deliver(self, link: L, payload: bytes, remote: Optional[Remote],
                 out: List[SessionEvent]) -> None:
        out.append(DataReceived(link, payload, remote))
        self._last_data = (link, len(payload))

    def _spill(self, link: L, n: int, out: List[SessionEvent]) -> None:
        if link.cut or link.owner_closed:
            return
        link.cut_stream()
        out.append(IpdSpill(link, n))

    def ipd_stalled(self, lid: Optional[int]) -> List[LinkCut[L]]:
        """A +IPD payload for ``lid`` stayed incomplete while the UART was quiet: it
        announced more than came, and what followed was taken as its data (the driver
        resets the framer).  The link's stream is cut; the command in flight may have
        lost its answer (the driver fails it); late answers may still come."""
        out: List[LinkCut[L]] = []
        link = self._links.get(lid if self.mux and lid is not None else 0)
        if link is not None:
            link.cut_stream()
            out.append(LinkCut(link))
        self.expect_late_answers()
        return out

    # ---- URCs (whatever command runs)
    def _urc_link_event(self, ev: LinkEvent, now: float, out: List[SessionEvent]) -> bool:
        if ev.link is None or not self.mux:
            cmd = self.active
            if cmd is not None:
                cmd.response.events.append(ev)
            else:
                out.append(BareLinkEvent(ev))
            return True
        rule = self.LINK_STATES.get(ev.state)
        if rule is None:
            out.append(Ignored(ev, f"link state {ev.state!r}"))
        else:
            rule(self, ev.link, ev, out)
        return True

    def _link_connect(self, lid: int, ev: LinkEvent, out: List[SessionEvent]) -> None:
        link = self._links.get(lid)
        if link is not None:
            self.transition(link, "connect", out=out)
            out.append(LinkConnected(link))
        elif self.accepting:
            self._new_accepted(lid, None, False, out)
        else:
            out.append(Ignored(ev, f"CONNECT on link {lid}, which nobody opened"))

    def _link_closed(self, lid: int, ev: LinkEvent, out: List[SessionEvent]) -> None:
        link = self._links.get(lid)
        if link is None:
            out.append(Ignored(ev, f"CLOSED on link {lid}, which nobody holds"))
            return
        cmd = self.active
        hit = (link.accepted and cmd is not None and cmd.name == "CIPCLOSE"
               and lid in self._stale_targets and self._stale_targets[lid] is not link)
        granted = self.transition(link, "peer_closed")
        out.append(LinkClosed(link, not link.opening))
        out.extend(granted)
        if hit:
            out.append(StaleCloseHit(link))

    def _link_connect_fail(self, lid: int, ev: LinkEvent, out: List[SessionEvent]) -> None:
        link = self._links.get(lid)
        if link is None:
            out.append(Ignored(ev, f"CONNECT FAIL on link {lid}, which nobody holds"))
            return
        self.transition(link, "peer_closed", out=out)
        out.append(LinkConnectFailed(link))

    def _urc_sendbuf_ack(self, ev: SendBufAck, now: float, out: List[SessionEvent]) -> bool:
        lid = ev.link if self.mux else 0
        link = self._links.get(lid) if lid is not None else None
        if link is not None:
            link.ack(ev.segment)
        out.append(SegmentAcked(link, ev.segment))
        return True

    def _urc_ready(self, ev: Ready, now: float, out: List[SessionEvent]) -> bool:
        if self.initialising:
            self.init_ready_seen = True
        else:
            out.append(ModuleReset("module reset (ready)"))
        return True

    def _urc_subscription(self, ev: Subscription, now: float, out: List[SessionEvent]) -> bool:
        out.append(MqttMessage(ev))
        return True

    def _urc_wifi(self, ev: Wifi, now: float, out: List[SessionEvent]) -> bool:
        self.wifi_state = ev.state
        if ev.state == "DISCONNECT":
            self.station_ip = None
        out.append(WifiChanged(ev))
        return True

    def _urc_garbage(self, ev: Garbage, now: float, out: List[SessionEvent]) -> bool:
        out.append(Ignored(ev, "garbage"))
        # a burst of unreadable lines: boot noise or a baud-rate change; one probe
        # (a 4-byte AT) per GARBAGE_PROBE_INTERVAL at most
        if now - self._last_garbage_probe > GARBAGE_PROBE_INTERVAL:
            self._last_garbage_probe = now
            out.append(ProbeWanted("module unreadable (boot noise or baud change)"))
        return True

    def _urc_echo(self, ev: Echo, now: float, out: List[SessionEvent]) -> bool:
        # ATE1: the module repeats our line.  After our E0 only a restart turns it on
        if self.echo is False and not self.initialising:
            self._want_state_check(now, "the module echoes commands after E0", out)
        return True

    def _want_state_check(self, now: float, reason: str, out: List[SessionEvent]) -> None:
        if now - self._last_state_check > STATE_CHECK_INTERVAL:
            self._last_state_check = now
            out.append(StateCheckWanted(reason))

    def _urc_info(self, ev: Info, now: float, out: List[SessionEvent]) -> bool:
        if ev.name not in URC_INFO:
            return False
        out.append(InfoUrc(ev))
        return True

    def _urc_text(self, ev: Text, now: float, out: List[SessionEvent]) -> bool:
        if not ev.text.strip():
            # tabs, vertical tabs, form feeds: a UART glitch, no module prints such a line
            # (taken as an answer's line, it made a held OK "stray" and the command wait
            # for another that never came)
            out.append(Ignored(ev, "blank line"))
            return True
        m = SEGMENT_FAIL.match(ev.text)
        if m is None:
            return False
        self._send_fail(int(m.group(1)) if m.group(1) else None, out, ev)
        return True

    def _send_fail(self, lid: Optional[int], out: List[SessionEvent], ev: Event) -> None:
        """SEND FAIL for CIPSENDBUF data (possibly without a link id: then every link with
        unacknowledged segments)."""
        if lid is not None:
            link = self._links.get(lid)
            cands = [link] if link is not None else []
        else:
            cands = [ln for ln in self._links.values() if ln.segments]
        if not cands:
            out.append(Ignored(ev, "SEND FAIL with no send outstanding (after a close)"))
            return
        for link in cands:
            link.clear_window()
            out.append(SendFailed(link))

    # ---- no command in flight
    def _idle_result(self, ev: Result, now: float, out: List[SessionEvent]) -> None:
        if ev.code == "SEND FAIL":
            self._send_fail(None, out, ev)
        else:
            out.append(Ignored(ev, "no command in flight"))

    def _idle_busy(self, ev: Busy, now: float, out: List[SessionEvent]) -> None:
        out.append(Ignored(ev, "busy with no command in flight (tail of a burst)"))

    def _idle_other(self, ev: Event, now: float, out: List[SessionEvent]) -> None:
        out.append(Ignored(ev, "no command in flight"))

    # ---- the command in flight
    def _cmd_result(self, ev: Result, now: float, out: List[SessionEvent]) -> None:
        cmd = self.command
        assert cmd is not None
        code = ev.code
        if code in SEND_RESULTS:
            if cmd.name in STOP_AND_WAIT and cmd.data_written:
                self.finish_command(cmd, code)
                out.append(CommandFinished(cmd))
            elif code == "SEND FAIL":
                self._send_fail(None, out, ev)
            else:
                out.append(Ignored(ev, f"SEND OK during {cmd.name}"))
            return
        if code == "OK" and cmd.wants_prompt and not cmd.prompted:
            cmd.response.notes.append(code)      # CIPSEND prints OK before ">"
            return
        if (code == "OK" and cmd.expects_lines and not cmd.response.events
                and cmd.ok_at is None):
            # its own OK (an empty answer) or a stray one: lines that follow tell
            cmd.hold_ok(now)
            out.append(OkHeld(cmd))
            return
        if code in RESYNC_RESULTS:
            # possibly a stray one, and the command's real answer still to come
            self.expect_late_answers()
        if code in FINAL or cmd.name in ENDS_ONLY.get(code, ()):
            self.finish_command(cmd, code)
            if not self._resync:
                self._busy_in_doubt = False    # the module answered the last line it got
            if code == "OK" and cmd.name in ECHO_SETTINGS:
                self.echo = ECHO_SETTINGS[cmd.name]
            elif code == "ERROR" and cmd.name in STATE_HINTS and not self.initialising:
                self._want_state_check(now, STATE_HINTS[cmd.name], out)
            out.append(CommandFinished(cmd))
            return
        cmd.response.notes.append(code)
        if code in PROMPT_REFUSALS and cmd.wants_prompt:
            self.finish_command(cmd, "ERROR")
            out.append(CommandFinished(cmd))

    def _cmd_prompt(self, ev: Prompt, now: float, out: List[SessionEvent]) -> None:
        cmd = self.command
        assert cmd is not None
        if cmd.wants_prompt and not cmd.prompted:
            if cmd.name in SEND_COMMANDS and "OK" not in cmd.response.notes:
                # the module prints OK, then ">" (spec 3.3.9-3.3.11); a ">" alone is
                # the echo of data by a module that restarted unseen (echo is on
                # again): taking it would write the payload into its command parser,
                # whose echo of it holds the next ">" (seen: 258 KB in a minute)
                out.append(Ignored(ev, f"a prompt before the OK of {cmd.name}"))
                return
            self.command_transition(cmd, "prompt")
            if not self._resync:
                # the module answered the last line it got; the payload is data it
                # reads as data (CIPSENDBUF's ends with no result that would say so)
                self._busy_in_doubt = False
            cmd.busy_seen(None)
            out.append(PromptReady(cmd))
        else:
            out.append(Ignored(ev, f"stray prompt during {cmd.name}"))

    def _cmd_busy(self, ev: Busy, now: float, out: List[SessionEvent]) -> None:
        cmd = self.command
        assert cmd is not None
        if cmd.data_written:
            # data went out and the module says busy: whether it was taken is
            # unknown, so the send fails (it is never repeated); the payload's lines
            # may have met the command parser, whose busies may still come
            self._busy_in_doubt = True
            cmd.response.notes.append("busy " + ev.kind)
            self.finish_command(cmd, "BUSY")
            out.append(CommandFinished(cmd))
        elif not cmd.prompted:
            cmd.busy_seen(now)
            out.append(BusySeen(cmd))
        else:
            out.append(Ignored(ev, f"busy after the prompt of {cmd.name}"))

    def _cmd_recv(self, ev: Recv, now: float, out: List[SessionEvent]) -> None:
        cmd = self.command
        assert cmd is not None
        cmd.response.received(ev.n)
        if cmd.name == "CIPSENDBUF" and cmd.data_written:
            self.finish_command(cmd, "OK")
            out.append(CommandFinished(cmd))

    def _cmd_line(self, ev: Event, now: float, out: List[SessionEvent]) -> None:
        cmd = self.command
        assert cmd is not None
        if cmd.ok_at is not None:
            cmd.hold_ok(None)
            self.expect_late_answers()
            out.append(StrayOk(cmd))
        cmd.response.events.append(ev)

    # ------------------------------------------------------------------ the module restarted
    def module_reset(self) -> List[L]:
        """A reset is declared: every link is gone (returned, for the driver to fail), the
        server with them; the module may still finish what it was printing.  (A
        passthrough stream stays until its owner ends it: the driver fails it.)"""
        self.expect_late_answers()
        self.accepting = False
        self.echo = None               # a restarted module echoes until told otherwise
        return self.clear_links()

    def clear_links(self) -> List[L]:
        """Shutdown, a dead port or a reset: every link is lost (returned; ids granted to
        waiting connects come out of :meth:`take_grants`)."""
        gone = list(self._links.values())
        for link in gone:
            self.transition(link, "lost", out=self._pending)
        return gone

    def take_grants(self) -> List[SessionEvent]:
        """Events of transitions the driver did not ask for directly (ids a reset freed,
        granted to waiting connects): the driver acts on them after every call that may
        have made some."""
        out, self._pending = self._pending, []
        return out

    # ------------------------------------------------------------------ the link lifecycle
    def transition(self, link: L, event: str, *,
                   out: Optional[List[SessionEvent]] = None) -> List[SessionEvent]:
        """The one door through which a link's state changes (:data:`TRANSITIONS`).
        Entering a state that lets go of the id takes the link out of the table
        (remembered as a ghost after a CLOSED), and hands the id to the first waiting
        connect (:class:`IdGranted`, in ``out`` and returned).  An event the table does
        not list for the link's state changes nothing."""
        if out is None:
            out = []
        old = link.state
        new = TRANSITIONS.get((old, event))
        if new is None:
            return out
        link.enter(new)
        start = len(out)
        if old in HOLDING and new not in HOLDING:
            if self._links.get(link.id) is link:
                del self._links[link.id]
                if new is LinkState.PEER_CLOSED:
                    self._ghosts[link.id] = link
                out.extend(IdGranted(w) for w in self.grant_ids())
        link.state_changed(old, new)
        if new in ENDED:
            link.clear_window()       # (after state_changed, which may report it)
        return out[start:]

    def close_wanted(self, link: L) -> bool:
        """Whether the host's AT+CIPCLOSE for ``link`` may still be written: it is closing
        and still holds its id (a CLOSED seen for it, or a reset, withdraws it).  The
        driver asks right before the command's bytes go out."""
        return link.state is LinkState.CLOSING and self._links.get(link.id) is link

    def closing(self, link: L) -> None:
        """``link``'s AT+CIPCLOSE goes out now: until its answer, a connection the server
        accepts on the same id after the CLOSED of ``link`` may be the one it closes."""
        self._stale_targets = {link.id: link}

    def close_answered(self) -> None:
        self._stale_targets = {}

    # ------------------------------------------------------------------ the link table
    @property
    def links(self) -> Mapping[int, L]:
        """Read-only view: id -> link held now."""
        return MappingProxyType(self._links)

    def link(self, lid: int) -> Optional[L]:
        return self._links.get(lid)

    @property
    def waiting(self) -> int:
        """Connects waiting for an id."""
        return len(self._waiters)

    def generation(self, lid: int) -> int:
        return self._generations[lid]

    def new_generation(self, lid: int) -> int:
        """The next generation of ``lid`` (for the link about to be opened on it)."""
        self._generations[lid] += 1
        return self._generations[lid]

    def add(self, link: L) -> None:
        """``link`` holds its id from now on (a reservation of the id is used up)."""
        self._reserved.discard(link.id)
        self._links[link.id] = link

    def remove(self, lid: int) -> Optional[L]:
        """Take ``lid``'s link out of the table without handing the id on (the module still
        holds it: the caller examines it and opens on it again): the link is lost and the
        id stays reserved for the caller."""
        link = self._links.pop(lid, None)
        if link is not None:
            self._reserved.add(lid)
            self.transition(link, "lost")
        return link

    def accept(self, lid: int, remote: Optional[Remote] = None) -> L:
        """The server holds a connection on ``lid`` (AT+CIPSTATUS said so): a new link."""
        out: List[SessionEvent] = []
        return self._new_accepted(lid, remote, False, out)

    def _new_accepted(self, lid: int, remote: Optional[Remote], implicit: bool,
                      out: List[SessionEvent]) -> L:
        link = self._accept(lid, self.new_generation(lid), remote)
        self._links[lid] = link
        out.append(LinkAccepted(link, implicit))
        return link

    def check_ssl_limit(self, kind: str) -> None:
        if kind == "SSL":
            ssl = [ln.id for ln in self._links.values() if ln.kind == "SSL"]
            if ssl:
                raise LinkLimit(f"{self.name}: the module carries one SSL link at most "
                                f"(link {ssl[0]} is SSL)")

    def limit_message(self, waited: Optional[float] = None) -> str:
        held = sorted(self._links)
        msg = (f"{self.name}: all {MAX_LINKS} links are in use (the WizFi360 carries at most "
               f"{MAX_LINKS} connections at once; held: {held}")
        if self._waiters:
            msg += f"; {len(self._waiters)} connect(s) waiting"
        msg += ")"
        if waited is not None:
            msg += f"; no link was freed within {waited:g} s"
        return msg

    def free_id(self) -> Optional[int]:
        # from the top: the module numbers server connections from 0
        for lid in range(MAX_LINKS - 1, -1, -1):
            if lid not in self._links and lid not in self._reserved:
                return lid
        return None

    def alloc_id(self, kind: str) -> int:
        """A free id now, or :class:`LinkLimit`.  Waiters queued for a link come first:
        free ids are handed to them as they appear, so none is free while anyone waits."""
        self.check_ssl_limit(kind)
        lid = None if self._waiters else self.free_id()
        if lid is None:
            raise LinkLimit(self.limit_message())
        return lid

    def reserve(self, kind: str) -> Optional[int]:
        """Reserve a free id now if nobody waits for one (else None: queue a waiter)."""
        self.check_ssl_limit(kind)
        if self._waiters:
            return None
        lid = self.free_id()
        if lid is not None:
            self._reserved.add(lid)
        return lid

    def enqueue(self, kind: str, wake: Optional[Callable[[], None]] = None) -> IdWaiter:
        """Queue a connect for the next free id; ``wake`` is the driver's, called by the
        driver for each waiter a grant returns."""
        waiter = IdWaiter(kind, wake)
        self._waiters.append(waiter)
        return waiter

    def grant_ids(self) -> List[IdWaiter]:
        """Hand free ids to waiting connects, first come first served (returned: wake them)."""
        granted = []
        while self._waiters:
            lid = self.free_id()
            if lid is None:
                break
            waiter = self._waiters.popleft()
            self._reserved.add(lid)
            waiter.grant(lid)
            granted.append(waiter)
        return granted

    def drop_waiter(self, waiter: IdWaiter) -> List[IdWaiter]:
        """A waiter gave up (timeout, cancelled): out of the queue, its grant given back."""
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass
        if waiter.lid is not None:
            return self.release_id(waiter.lid)
        return []

    def take_reserved(self, lid: int) -> None:
        """The reserved id becomes a link's (:meth:`add` follows)."""
        self._reserved.discard(lid)

    def release_id(self, lid: int) -> List[IdWaiter]:
        """Give back a reservation that was not used."""
        if lid in self._reserved:
            self._reserved.discard(lid)
            return self.grant_ids()
        return []

    @property
    def reserved(self) -> FrozenSet[int]:
        return frozenset(self._reserved)

    @property
    def ghosts(self) -> Mapping[int, L]:
        """Ids reported CLOSED, with the link they closed (data on one proves it false)."""
        return MappingProxyType(self._ghosts)

    # ------------------------------------------------------------------ the rules, as tables
    #: the link URCs by state
    LINK_STATES: ClassVar[Dict[str, Callable[["Session[Any]", int, LinkEvent, List[SessionEvent]], None]]] = {
        "CONNECT": _link_connect,
        "CLOSED": _link_closed,
        "CONNECT FAIL": _link_connect_fail,
    }

    #: output that is not an answer, whatever command runs (a rule returns False to pass the
    #: event on to the command or idle rules)
    URC_RULES: ClassVar[Dict[type, Handler]] = {
        LinkEvent: _urc_link_event,
        SendBufAck: _urc_sendbuf_ack,
        Ready: _urc_ready,
        Subscription: _urc_subscription,
        Wifi: _urc_wifi,
        Garbage: _urc_garbage,
        Echo: _urc_echo,
        Info: _urc_info,
        Text: _urc_text,
    }

    #: output while a command waits for its answer (anything else is one of its lines)
    COMMAND_RULES: ClassVar[Dict[type, Rule]] = {
        Result: _cmd_result,
        Prompt: _cmd_prompt,
        Busy: _cmd_busy,
        Recv: _cmd_recv,
    }

    #: output with no command in flight (anything else: Ignored)
    IDLE_RULES: ClassVar[Dict[type, Rule]] = {
        Result: _idle_result,
        Busy: _idle_busy,
    }


#: the rules, as tables (see Session): link URCs by state; output that is not an answer
#: whatever command runs (a rule returns False to pass the event on); output while a
#: command waits (anything else is a line of its answer); output with no command
LINK_STATES = Session.LINK_STATES
URC_RULES = Session.URC_RULES
COMMAND_RULES = Session.COMMAND_RULES
IDLE_RULES = Session.IDLE_RULES
