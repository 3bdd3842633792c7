"""The command in flight's exchange is one value changed through one table (issue 18).

``Command.phase`` (its state) replaced the booleans ``prompted``/``data_written``/``final`` (now read
from the state); :meth:`Session.command_transition` is its only door, through
:data:`COMMAND_TRANSITIONS`, as the link lifecycle goes through ``TRANSITIONS``."""
from __future__ import annotations

import ast
import inspect
import itertools

import pytest

from wizsock.engine import session as S
from wizsock.engine.session import COMMAND_TRANSITIONS, CommandPhase

from engine.session.kit import Rig, req

C = CommandPhase
CIPSEND = req("CIPSEND", "set", link=4, length=5)
FINALS = {C.FINAL, C.FINAL_PROMPTED, C.FINAL_WRITTEN}


def test_the_table():
    assert dict(COMMAND_TRANSITIONS) == {
        (C.SENT, "prompt"): C.PROMPTED,
        (C.PROMPTED, "write"): C.WRITTEN,
        (C.SENT, "finish"): C.FINAL,
        (C.PROMPTED, "finish"): C.FINAL_PROMPTED,
        (C.WRITTEN, "finish"): C.FINAL_WRITTEN,
    }
    # every state is reachable from SENT, and a final state is the end
    seen, todo = {C.SENT}, [C.SENT]
    while todo:
        state = todo.pop()
        for (old, _), new in COMMAND_TRANSITIONS.items():
            if old is state and new not in seen:
                seen.add(new)
                todo.append(new)
    assert seen == set(CommandPhase)
    assert not any(old in FINALS for old, _ in COMMAND_TRANSITIONS)


@pytest.mark.parametrize("state,event", [
    (s, e) for s, e in itertools.product(CommandPhase, ("prompt", "write", "finish"))
    if (s, e) not in COMMAND_TRANSITIONS])
def test_an_event_the_table_does_not_list_changes_nothing(state, event):
    r = Rig()
    cmd = r.start(CIPSEND, b"hello")
    cmd.move_to(state)
    r.session.command_transition(cmd, event)
    assert cmd.phase is state


def test_the_booleans_read_the_state():
    expect = {C.SENT: (False, False, False), C.PROMPTED: (True, False, False),
              C.WRITTEN: (True, True, False), C.FINAL: (False, False, True),
              C.FINAL_PROMPTED: (True, False, True), C.FINAL_WRITTEN: (True, True, True)}
    r = Rig()
    cmd = r.start(CIPSEND, b"hello")
    for state, flags in expect.items():
        cmd.move_to(state)
        assert (cmd.prompted, cmd.data_written, cmd.final) == flags, state


def test_a_send_walks_the_table():
    r = Rig()
    r.open()
    cmd = r.start(CIPSEND, b"hello")
    assert cmd.phase is C.SENT and repr(cmd) == "<Command CIPSEND sent>"
    r.feed(b"\r\nOK\r\n> ")
    assert cmd.phase is C.PROMPTED
    r.write_payload(cmd)
    assert cmd.phase is C.WRITTEN
    assert r.feed(b"\r\nSEND OK\r\n") == [S.CommandFinished(cmd)]
    assert cmd.phase is C.FINAL_WRITTEN and repr(cmd) == "<Command CIPSEND final 'SEND OK'>"


def test_a_refusal_before_the_prompt_ends_without_one():
    r = Rig()
    r.open()
    cmd = r.start(CIPSEND, b"hello")
    assert r.feed(b"\r\nERROR\r\n") == [S.CommandFinished(cmd)]
    assert cmd.phase is C.FINAL and not cmd.prompted and cmd.result == "ERROR"


def test_only_the_session_moves_a_command():
    """``Command.move_to`` is called from one place: ``Session.command_transition``."""
    tree = ast.parse(inspect.getsource(S))
    callers = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "move_to"
                        and ast.unparse(node.func.value) == "cmd"):
                    callers.add(fn.name)
    assert callers == {"command_transition"}
