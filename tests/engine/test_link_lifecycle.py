"""The link lifecycle (docs/design.md 3a): one state per generation, written only by
the session's transition table; what a waiting connect and ``wizsock status`` show."""
from __future__ import annotations

import ast
import logging
import pathlib

import pytest
import trio

import wizsock
from wizsock import errors as E
from wizsock.engine import session as S
from wizsock.tools.status import render, status

from engine.helpers import AP, BAUD, emu_url, joined, module, trio_test
from engine.session.kit import Rig
from support.servers import tcp_echo_server

PKG = pathlib.Path(wizsock.__file__).parent


def test_the_state_is_written_by_the_transition_alone():
    # the field is the slot's own (written by self, in __init__ and enter), and enter is
    # called from Session.transition alone, which takes the next state from the table
    writers, callers = [], []
    for path in sorted((PKG / "engine").glob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                targets = (node.targets if isinstance(node, ast.Assign) else
                           [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
                for t in targets:
                    if isinstance(t, ast.Attribute) and t.attr == "state":
                        writers.append((path.name, fn.name, ast.unparse(t)))
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "enter"):
                    callers.append((path.name, fn.name, ast.unparse(node)))
    assert sorted(writers) == [("session.py", "__init__", "self.state"),
                               ("session.py", "enter", "self.state")]
    assert callers == [("session.py", "transition", "link.enter(new)")]


def test_every_state_reaches_a_state_that_lets_go_of_the_id():
    # no state holds an id for good: from each, some event of the table leads out
    for state in S.HOLDING:
        seen, todo = {state}, [state]
        while todo:
            cur = todo.pop()
            for (frm, _), to in S.TRANSITIONS.items():
                if frm is cur and to not in seen:
                    seen.add(to)
                    todo.append(to)
        assert seen - S.HOLDING, state
        assert S.TRANSITIONS[(state, "lost")] is S.LinkState.RECLAIMED   # a reset ends all


def test_a_closed_seen_withdraws_the_close_and_grants_the_id_at_once():
    r = Rig()
    s = r.session
    links = [r.open() for _ in range(5)]
    waiter = s.enqueue("TCP")
    link = links[0]
    assert s.transition(link, "close") == [] and s.close_wanted(link)
    out = r.feed(b"4,CLOSED\r\n")
    assert out == [S.LinkClosed(link, True), S.IdGranted(waiter)] and waiter.lid == 4
    assert link.state is S.LinkState.PEER_CLOSED and not s.close_wanted(link)
    assert s.transition(link, "closed") == []        # nothing more: the id is not its own


def test_a_close_crossing_a_new_client_on_the_id_is_named():
    r = Rig()
    s = r.session
    s.accepting = True
    old = r.feed(b"0,CONNECT\r\n")[0].link
    s.transition(old, "close")
    s.closing(old)
    cmd = r.start(S.P.COMMANDS["CIPCLOSE"].request("set", link=0))
    r.feed(b"0,CLOSED\r\n")                          # the old client's own close
    new = r.feed(b"0,CONNECT\r\n")[0].link           # the id's next client
    out = r.feed(b"0,CLOSED\r\n")                    # ... ended by our CIPCLOSE
    assert S.StaleCloseHit(new) in out
    assert r.feed(b"OK\r\n") == [S.CommandFinished(cmd)]


def test_status_shows_each_links_state_and_idle_time_and_a_wait_says_who_holds_them(caplog):
    caplog.set_level(logging.DEBUG, logger="wizsock.engine")
    with tcp_echo_server() as echo:
        with wizsock.Module(emu_url(), baudrate=BAUD) as m:
            m.wifi.set_mode(1)
            m.wifi.join(*AP)
            links = [m.net.open_tcp("127.0.0.1", echo.port) for _ in range(5)]
            s = status(m)
            assert [(l["link"], l["state"]) for l in s["links"]] == [
                (i, "open") for i in range(5)]
            assert all(isinstance(l["idle"], float) for l in s["links"])
            assert "STATE" in render(s) and "IDLE" in render(s)
            with pytest.raises(E.LinkLimitError):
                m.net.reserve_link("TCP", 0.3)
            waits = [r.getMessage() for r in caplog.records if "waits for a link" in r.getMessage()]
            assert waits and "link 4 (TCP 127.0.0.1:" in waits[-1] and "open for" in waits[-1]
            assert "idle" in waits[-1]
            for link in links:
                link.aclose()


@trio_test
async def test_a_reset_hands_the_freed_ids_to_waiting_connects_at_once():
    # five links held, one connect waiting: the module resets (every link lost), and the
    # waiter gets an id in the same step, not at its next look nor at its timeout
    with tcp_echo_server() as echo:
        async with module() as m:
            await joined(m)
            links = [await m.net.open_tcp("127.0.0.1", echo.port) for _ in range(5)]
            got = []

            async def waiter():
                got.append(await m.net.reserve_link("TCP", 20))
                got.append(trio.current_time())

            async with trio.open_nursery() as n:
                n.start_soon(waiter)
                await trio.sleep(0.2)
                assert not got and m.engine.session.waiting == 1
                reset_at = trio.current_time()
                m.engine.declare_reset("test: a reset")
                with trio.fail_after(5):
                    while not got:
                        await trio.sleep(0.01)
            reservation, when = got
            assert when - reset_at < 0.1
            assert all(link.state is S.LinkState.RECLAIMED for link in links)
            assert not m.net.links
            reservation.release()
            assert m.engine.session.reserved == frozenset()


@trio_test
async def test_cancelled_and_timed_out_waits_leave_nothing_reserved():
    with tcp_echo_server() as echo:
        async with module() as m:
            await joined(m)
            links = [await m.net.open_tcp("127.0.0.1", echo.port) for _ in range(5)]
            with trio.move_on_after(0.2):
                await m.net.reserve_link("TCP", 10)
            with pytest.raises(E.LinkLimitError):
                await m.net.reserve_link("TCP", 0.2)
            s = m.engine.session
            assert s.waiting == 0 and s.reserved == frozenset()
            await links[0].aclose()
            # (the module prints 4,CLOSED before the CIPCLOSE's OK: the id is let go of either way)
            assert links[0].state not in S.HOLDING and 4 not in m.net.links
            r = await m.net.reserve_link("TCP", 1)
            assert r.lid == 4
            r.release()
            for link in links[1:]:
                await link.aclose()
            assert not m.net.links and s.reserved == frozenset()
