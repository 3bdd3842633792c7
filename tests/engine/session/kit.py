"""Driving a :class:`~wizsock.engine.session.Session` with the module's own bytes.

No trio, no emulator, no clock: bytes go through the real framer, the events into
the session, and ``now`` is whatever the test says (tests/engine/session/test_no_trio.py
checks that none of this pulls trio in)."""
from __future__ import annotations

from typing import Any, List, Optional

from wizsock import protocol as P
from wizsock.engine.session import Command, LinkSlot, Session, SessionEvent
from wizsock.framer import Framer


def req(name: str, form: str, **params: Any) -> P.Request:
    return P.COMMANDS[name].request(form, **params)


def kinds(out: List[SessionEvent]) -> List[str]:
    return [type(ev).__name__ for ev in out]


class Rig:
    """A session, the framer in front of it, and a clock the test moves."""

    def __init__(self, now: float = 100.0) -> None:
        self.session: Session[LinkSlot] = Session(self._accept, name="test")
        self.framer = Framer(max_ipd=8192, max_line=4096)
        self.now = now

    @staticmethod
    def _accept(lid: int, generation: int, remote: Any) -> LinkSlot:
        return LinkSlot(lid, generation, "TCP", accepted=True)

    def feed(self, data: bytes) -> List[SessionEvent]:
        out: List[SessionEvent] = []
        for ev in self.framer.feed(data):
            out += self.session.receive(ev, self.now, mid_line=self.framer.mid_line)
        return out

    def tick(self, dt: float) -> List[SessionEvent]:
        self.now += dt
        return self.session.timer(self.now)

    def open(self, kind: str = "TCP") -> LinkSlot:
        """A link opened and connected (what the driver does around AT+CIPSTART)."""
        s = self.session
        lid = s.alloc_id(kind)
        link = LinkSlot(lid, s.new_generation(lid), kind)
        s.add(link)
        s.transition(link, "opened")
        return link

    def start(self, request: P.Request, payload: Optional[bytes] = None) -> Command:
        return self.session.start_command(request, payload is not None, self.now)

    def write_payload(self, cmd: Command) -> List[SessionEvent]:
        """What the driver does at a prompt: mark, write (nothing here), report."""
        self.session.writing_payload(cmd)
        return self.session.payload_written(cmd)
