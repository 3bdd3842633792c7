"""Every kind of unsolicited output, at every phase of a command and of a send.

A *scenario* is a command's exchange as the module prints it, cut into phases;
an *injection* is one unit of output the module may print at any moment.  For
each (phase, injection) pair the session is brought to the phase with the real
framer, the injection is fed, and then the rest of the exchange:

* a URC (data, CONNECT, CLOSED, acknowledgements, ready, WiFi, softAP messages,
  garbage, echo, MQTT messages, segment SEND FAIL) never touches the command: its
  state is the same before and after, the session says what the injection
  expects whatever the phase, and the command ends as it would have without it;
* output that looks like an answer (OK, ERROR, >, busy, SEND OK, SEND FAIL) is
  taken by the command where today's rules say so (the table EXPECTED below,
  one line per phase), and dropped (``Ignored``) where they don't.
"""
from __future__ import annotations

import itertools
from typing import Callable, Dict, List, Optional, Tuple

import pytest

from wizsock.engine import session as S
from wizsock.engine.session import Command, LinkSlot

from engine.session.kit import Rig, kinds, req

PAYLOAD = b"hello"
Step = Tuple[str, object]           # ("feed", bytes) | ("write", None) | ("tick", seconds)


class Scenario:
    def __init__(self, name: str, request, payload: Optional[bytes], steps: List[Step],
                 phases: Dict[str, int], result: Optional[str], lines: int = 0):
        self.name = name
        self.request = request
        self.payload = payload
        self.steps = steps
        self.phases = phases        # phase -> number of steps done before it
        self.result = result        # the command's result at the end (None: no command)
        self.lines = lines


def _cwlap_line() -> bytes:
    return b'+CWLAP:(3,"x",-50,"aa:bb:cc:dd:ee:ff",1)\r\n'


SCENARIOS = [
    Scenario("idle", None, None, [], {"idle": 0}, None),
    Scenario("AT", req("", "execute"), None, [("feed", b"OK\r\n")], {"sent": 0}, "OK"),
    Scenario("CWLAP", req("CWLAP", "execute"), None,
             [("feed", _cwlap_line()), ("feed", _cwlap_line()), ("feed", b"\r\nOK\r\n")],
             {"sent": 0, "mid-lines": 1}, "OK", lines=2),
    Scenario("CWLAP-empty", req("CWLAP", "execute"), None,
             [("feed", b"OK\r\n"), ("tick", S.OK_GRACE)], {"ok-held": 1}, "OK"),
    Scenario("CIPSEND", req("CIPSEND", "set", link=4, length=5), PAYLOAD,
             [("feed", b"\r\nOK\r\n"), ("feed", b"> "), ("write", None),
              ("feed", b"\r\nRecv 5 bytes\r\n"), ("feed", b"\r\nSEND OK\r\n")],
             {"sent": 0, "ok-before-prompt": 1, "prompted": 2, "written": 3, "recv": 4},
             "SEND OK"),
    Scenario("CIPSENDBUF", req("CIPSENDBUF", "set", link=4, length=5), PAYLOAD,
             [("feed", b"1,0\r\n"), ("feed", b"\r\nOK\r\n> "), ("write", None)],
             {"sent": 0, "header": 1, "prompted": 2}, "OK", lines=1),
    # a send after its command: segments out, the acknowledgement still to come
    Scenario("segments-out", None, None, [("feed", b"4,1,SEND OK\r\n")],
             {"unacked": 0}, None),
    Scenario("CIPSTART-busy", req("CIPSTART", "set", link=3, type="TCP", remote="127.0.0.1",
                                  port=80), None,
             [("feed", b"busy p...\r\n"), ("feed", b"\r\nOK\r\n")], {"busy": 1}, "OK"),
]
PHASES = [(sc, ph) for sc in SCENARIOS for ph in sc.phases]

# the unsolicited output: bytes, and what the session says about it in any phase
URCS: Dict[str, Tuple[bytes, List[str]]] = {
    "data": (b"+IPD,4,3:abc", ["DataReceived"]),
    "data-nobody": (b"+IPD,2,3:abc", ["Ignored"]),
    "connect-nobody": (b"2,CONNECT\r\n", ["Ignored"]),
    "closed": (b"4,CLOSED\r\n", ["LinkClosed"]),
    "closed-nobody": (b"2,CLOSED\r\n", ["Ignored"]),
    "sendbuf-ack": (b"4,1,SEND OK\r\n", ["SegmentAcked"]),
    "ready": (b"ready\r\n", ["ModuleReset"]),
    "wifi": (b"WIFI GOT IP\r\n", ["WifiChanged"]),
    "softap-station": (b'+STA_CONNECTED:"aa:bb:cc:dd:ee:ff"\r\n', ["InfoUrc"]),
    "garbage": (b"\x01\x02ab\xffc\r\n", ["Ignored", "ProbeWanted"]),
    "echo": (b"AT+CIPMUX?\r\n", []),
    "subscription": (b"topic -> hi\r\n", ["MqttMessage"]),
    "segment-fail": (b"4,2,SEND FAIL\r\n", ["SendFailed"]),
}

# output that may be an answer: (what the session says, the command's result right
# after, or "same" when it ends as without the injection) per phase
STRAYS = {"ok": b"OK\r\n", "error": b"ERROR\r\n", "prompt": b"> ", "busy": b"busy p...\r\n",
          "send-ok": b"SEND OK\r\n", "send-fail": b"SEND FAIL\r\n"}
IGN = (["Ignored"], None)
FIN_OK = (["CommandFinished"], "OK")
FIN_ERR = (["CommandFinished"], "ERROR")
BUSY = (["BusySeen"], None)
EXPECTED: Dict[Tuple[str, str], Dict[str, Tuple[List[str], Optional[str]]]] = {
    ("idle", "idle"): dict(ok=IGN, error=IGN, prompt=IGN, busy=IGN, **{"send-ok": IGN, "send-fail": IGN}),
    ("AT", "sent"): dict(ok=FIN_OK, error=FIN_ERR, prompt=IGN, busy=BUSY,
                         **{"send-ok": IGN, "send-fail": IGN}),
    # an OK before the lines is held: the lines that follow show it was stray
    ("CWLAP", "sent"): dict(ok=(["OkHeld"], None), error=FIN_ERR, prompt=IGN, busy=BUSY,
                            **{"send-ok": IGN, "send-fail": IGN}),
    # after a line an OK cannot be told from the real one: the answer ends there
    ("CWLAP", "mid-lines"): dict(ok=FIN_OK, error=FIN_ERR, prompt=IGN, busy=BUSY,
                                 **{"send-ok": IGN, "send-fail": IGN}),
    ("CWLAP-empty", "ok-held"): dict(ok=FIN_OK, error=FIN_ERR, prompt=IGN, busy=BUSY,
                                     **{"send-ok": IGN, "send-fail": IGN}),
    # CIPSEND prints OK before ">": a note; a ">" before that OK is no prompt (the echo
    # of data by a module that restarted unseen)
    ("CIPSEND", "sent"): dict(ok=([], None), error=FIN_ERR, prompt=IGN,
                              busy=BUSY, **{"send-ok": IGN, "send-fail": IGN}),
    ("CIPSEND", "ok-before-prompt"): dict(ok=([], None), error=FIN_ERR,
                                          prompt=(["PromptReady"], None), busy=BUSY,
                                          **{"send-ok": IGN, "send-fail": IGN}),
    # between ">" and the payload: busy is dropped (the payload goes out anyway)
    ("CIPSEND", "prompted"): dict(ok=FIN_OK, error=FIN_ERR, prompt=IGN,
                                  busy=(["Ignored"], None), **{"send-ok": IGN, "send-fail": IGN}),
    ("CIPSEND", "written"): dict(ok=FIN_OK, error=FIN_ERR, prompt=IGN,
                                 busy=(["CommandFinished"], "BUSY"),
                                 **{"send-ok": (["CommandFinished"], "SEND OK"),
                                    "send-fail": (["CommandFinished"], "SEND FAIL")}),
    ("CIPSEND", "recv"): dict(ok=FIN_OK, error=FIN_ERR, prompt=IGN,
                              busy=(["CommandFinished"], "BUSY"),
                              **{"send-ok": (["CommandFinished"], "SEND OK"),
                                 "send-fail": (["CommandFinished"], "SEND FAIL")}),
    # a prompt command's OK before its ">" is a note, even for one that prints a line
    ("CIPSENDBUF", "sent"): dict(ok=([], None), error=FIN_ERR,
                                 prompt=IGN, busy=BUSY,
                                 **{"send-ok": IGN, "send-fail": IGN}),
    ("CIPSENDBUF", "header"): dict(ok=([], None), error=FIN_ERR, prompt=IGN,
                                   busy=BUSY, **{"send-ok": IGN, "send-fail": IGN}),
    ("CIPSENDBUF", "prompted"): dict(ok=FIN_OK, error=FIN_ERR, prompt=IGN,
                                     busy=(["Ignored"], None),
                                     **{"send-ok": IGN, "send-fail": IGN}),
    # no command: a bare SEND FAIL fails the links with segments out
    ("segments-out", "unacked"): dict(ok=IGN, error=IGN, prompt=IGN, busy=IGN,
                                      **{"send-ok": IGN, "send-fail": (["SendFailed"], None)}),
    # a refused CIPSTART is also a sign of a restart nobody saw (CIPMUX=0 again)
    ("CIPSTART-busy", "busy"): dict(ok=FIN_OK, error=(["StateCheckWanted", "CommandFinished"], "ERROR"),
                                    prompt=IGN, busy=BUSY,
                                    **{"send-ok": IGN, "send-fail": IGN}),
}


def test_the_table_covers_every_phase():
    assert set(EXPECTED) == {(sc.name, ph) for sc, ph in PHASES}
    assert all(set(v) == set(STRAYS) for v in EXPECTED.values())


def _feed(r: Rig, cmd: Optional[Command], data: bytes) -> List[S.SessionEvent]:
    """Feed like the driver: at a prompt the payload goes out before anything more is read."""
    out = r.feed(data)
    if cmd is not None and S.PromptReady(cmd) in out:
        out += r.write_payload(cmd)
    return out


def _step(r: Rig, cmd: Optional[Command], step: Step, driver: bool = True) -> List[S.SessionEvent]:
    what, arg = step
    if what == "feed":
        assert isinstance(arg, bytes)
        return _feed(r, cmd, arg) if driver else r.feed(arg)
    if what == "tick":
        assert isinstance(arg, float)
        return r.tick(arg)
    assert cmd is not None
    if cmd.prompted and not cmd.data_written and not cmd.final:
        return r.write_payload(cmd)
    return []


def _setup(sc: Scenario, phase: str) -> Tuple[Rig, Optional[Command], LinkSlot]:
    r = Rig()
    r.open()                                   # link 4
    link = r.session.link(4)
    assert link is not None
    if sc.name == "segments-out":
        link.add_segment(1, 100)
    cmd = r.start(sc.request, sc.payload) if sc.request is not None else None
    for step in sc.steps[:sc.phases[phase]]:
        # the explicit "write" steps: the phase between ">" and the payload is what a
        # read that carries more after the ">" sees
        _step(r, cmd, step, driver=False)
    r.now += 0.001
    return r, cmd, link


def _snapshot(cmd: Optional[Command]):
    if cmd is None:
        return None
    return (cmd.prompted, cmd.data_written, cmd.busy_at, cmd.ok_at, cmd.final, cmd.result,
            cmd.response.lines(), cmd.response.recv)


def _finish(r: Rig, sc: Scenario, cmd: Optional[Command], phase: str) -> List[S.SessionEvent]:
    out: List[S.SessionEvent] = []
    for step in sc.steps[sc.phases[phase]:]:
        out += _step(r, cmd, step)
    return out


@pytest.mark.parametrize("name", list(URCS))
@pytest.mark.parametrize("sc,phase", PHASES, ids=[f"{sc.name}-{ph}" for sc, ph in PHASES])
def test_urc_at_every_phase(sc, phase, name):
    data, expected = URCS[name]
    r, cmd, link = _setup(sc, phase)
    before = _snapshot(cmd)
    out = r.feed(data)
    assert kinds(out) == expected, out
    assert _snapshot(cmd) == before               # the command did not see it
    _finish(r, sc, cmd, phase)
    if cmd is not None:
        assert cmd.final and cmd.result == sc.result and cmd.error is None
        assert len(cmd.response.lines()) - cmd.response.notes.count("OK") == sc.lines
    # what each one did
    if name == "closed":
        assert link.module_closed and r.session.link(4) is None
    elif name in ("data", "sendbuf-ack", "wifi", "echo"):
        assert r.session.link(4) is link and not link.cut
    if name == "segment-fail":
        assert out == [S.SendFailed(link)] and link.inflight == 0
    if name == "sendbuf-ack" or sc.name == "segments-out":
        assert link.inflight == 0


@pytest.mark.parametrize("name", list(STRAYS))
@pytest.mark.parametrize("sc,phase", PHASES, ids=[f"{sc.name}-{ph}" for sc, ph in PHASES])
def test_stray_answer_at_every_phase(sc, phase, name):
    said, result = EXPECTED[(sc.name, phase)][name]
    r, cmd, link = _setup(sc, phase)
    out = r.feed(STRAYS[name])
    assert kinds(out) == said, out
    if cmd is not None and said == ["PromptReady"]:
        # a stray ">" cannot be told from the real one: the payload goes out early
        r.write_payload(cmd)
        assert cmd.prompted and cmd.data_written
        return
    if cmd is None:
        return
    if result is not None:
        assert cmd.final and cmd.result == result
        if result == "ERROR":
            assert r.session.resync
        return
    # not an answer (or held): the exchange goes on and ends as it would have
    assert not cmd.final
    if name == "busy" and said == ["BusySeen"]:
        assert cmd.busy_at == r.now
    _finish(r, sc, cmd, phase)
    if name == "busy" and said == ["BusySeen"] and sc.name in ("AT", "CWLAP", "CWLAP-empty"):
        # (an answer came within the grace: the busy was stale)
        assert cmd.final and cmd.result == sc.result
        return
    if name == "busy" and said == ["BusySeen"] and not cmd.final:
        # no result in the grace (a send's header): the command was not run
        assert r.tick(S.BUSY_GRACE) == [S.BusyExpired(cmd)]
        return
    assert cmd.final and cmd.result == sc.result


def test_two_urcs_back_to_back_at_every_phase():
    """Pairs of URCs (the module prints them in bursts) change nothing either."""
    names = [n for n in URCS if n not in ("ready", "closed")]
    for (sc, phase), (a, b) in itertools.product(PHASES, itertools.product(names, repeat=2)):
        r, cmd, link = _setup(sc, phase)
        before = _snapshot(cmd)
        r.feed(URCS[a][0] + URCS[b][0])
        assert _snapshot(cmd) == before, (sc.name, phase, a, b)
        _finish(r, sc, cmd, phase)
        if cmd is not None:
            assert cmd.final and cmd.result == sc.result, (sc.name, phase, a, b)
