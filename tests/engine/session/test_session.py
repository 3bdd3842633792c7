"""The sans-I/O session, rule by rule, driven by the module's bytes through the framer."""
from __future__ import annotations

import pytest

from wizsock.engine import session as S
from wizsock.engine.session import (BUSY_GRACE, BUSY_OWN_GRACE, OK_GRACE, LinkLimit, LinkSlot, SENDBUF_SIZE)
from wizsock.framer import Data, Garbage, Result, Text

from engine.session.kit import Rig, kinds, req

CIPSEND = req("CIPSEND", "set", link=4, length=5)
CIPSENDBUF = req("CIPSENDBUF", "set", link=4, length=5)


# ---------------------------------------------------------------- commands
def test_plain_command_finishes_on_ok():
    r = Rig()
    cmd = r.start(req("", "execute"))
    out = r.feed(b"\r\nOK\r\n")
    assert out == [S.CommandFinished(cmd)]
    assert cmd.final and cmd.result == "OK" and cmd.response.ok
    assert r.session.active is None and r.session.command is cmd
    r.session.end_command(cmd)
    assert r.session.command is None


def test_query_collects_its_lines():
    r = Rig()
    cmd = r.start(req("CIPMUX", "query"))
    out = r.feed(b"+CIPMUX:1\r\n\r\nOK\r\n")
    assert kinds(out) == ["CommandFinished"]
    assert cmd.response.lines() == ["+CIPMUX:1"]


def test_ok_before_the_lines_is_held_then_taken_as_the_empty_answer():
    r = Rig()
    cmd = r.start(req("CWLAP", "execute"))
    assert r.feed(b"OK\r\n") == [S.OkHeld(cmd)]
    assert not cmd.final and cmd.ok_at == r.now
    assert r.session.next_deadline() == pytest.approx(r.now + OK_GRACE)
    assert r.tick(OK_GRACE / 3) == []
    assert r.tick(OK_GRACE) == [S.CommandFinished(cmd)]
    assert cmd.result == "OK" and cmd.response.lines() == []
    assert r.session.next_deadline() is None


def test_a_stray_ok_is_dropped_when_the_lines_follow():
    r = Rig()
    cmd = r.start(req("CWLAP", "execute"))
    r.feed(b"OK\r\n")
    out = r.feed(b'+CWLAP:(3,"x",-50,"aa:bb:cc:dd:ee:ff",1)\r\n')
    assert out == [S.StrayOk(cmd)]
    assert r.session.resync and cmd.ok_at is None
    assert r.feed(b"OK\r\n") == [S.CommandFinished(cmd)]
    assert len(cmd.response.lines()) == 1


@pytest.mark.parametrize("noise", [b"\t", b"\x0b \x0c", b"  "])
def test_a_blank_line_after_a_held_ok_is_noise_not_an_answer_line(noise):
    """The heavy-fault test: CWJAP's OK, then a glitch's "\t\r\n" within the grace; taken
    as a line of the answer it made the real OK "stray", and CWJAP waited 25 s for another."""
    r = Rig()
    cmd = r.start(req("CWLAP", "execute"))
    assert r.feed(b"OK\r\n") == [S.OkHeld(cmd)]
    assert kinds(r.feed(noise + b"\r\n"))[0] == "Ignored"   # (control bytes: + ProbeWanted)
    assert cmd.ok_at is not None and not r.session.resync
    assert r.tick(OK_GRACE) == [S.CommandFinished(cmd)]
    assert cmd.result == "OK" and cmd.response.lines() == []


def test_error_fails_and_asks_for_silence_before_the_next_command():
    r = Rig()
    cmd = r.start(req("CIPMUX", "query"))
    assert not r.session.resync
    r.feed(b"ERROR\r\n")
    assert cmd.result == "ERROR" and r.session.resync


def test_stop_and_wait_send():
    r = Rig()
    r.open()
    cmd = r.start(CIPSEND, b"hello")
    assert r.feed(b"\r\nOK\r\n") == []               # OK before ">" is a note
    assert r.feed(b"> ") == [S.PromptReady(cmd)]
    assert r.write_payload(cmd) == []
    assert r.feed(b"\r\nRecv 5 bytes\r\n") == []
    assert r.feed(b"\r\nSEND OK\r\n") == [S.CommandFinished(cmd)]
    assert (cmd.result, cmd.response.recv, cmd.response.notes) == ("SEND OK", 5, ["OK"])


def test_sendbuf_finishes_when_the_payload_is_written_and_the_ack_moves_the_window():
    r = Rig()
    link = r.open()
    cmd = r.start(CIPSENDBUF, b"hello")
    assert r.feed(b"1,0\r\n\r\nOK\r\n> ") == [S.PromptReady(cmd)]
    assert r.write_payload(cmd) == [S.CommandFinished(cmd)]
    assert cmd.response.lines() == ["1,0", "OK"]
    link.add_segment(1, 5)
    assert (link.inflight, link.window_room) == (5, SENDBUF_SIZE - 5)
    r.session.end_command(cmd)
    assert r.feed(b"4,1,SEND OK\r\n") == [S.SegmentAcked(link, 1)]
    assert (link.inflight, link.acked_segment, list(link.segments)) == (0, 1, [])


def test_busy_before_the_prompt_waits_its_grace_and_a_late_result_wins():
    r = Rig()
    cmd = r.start(req("CIPSTART", "set", link=4, type="TCP", remote="127.0.0.1", port=80))
    assert r.feed(b"busy p...\r\n") == [S.BusySeen(cmd)]
    assert r.session.next_deadline() == pytest.approx(r.now + BUSY_GRACE)
    assert r.tick(BUSY_GRACE / 2) == []
    assert r.feed(b"4,CONNECT\r\n\r\nOK\r\n")[-1] == S.CommandFinished(cmd)
    assert cmd.result == "OK"


def test_busy_with_no_result_in_its_grace_means_not_run():
    r = Rig()
    cmd = r.start(req("CIPSTART", "set", link=4, type="TCP", remote="127.0.0.1", port=80))
    r.feed(b"busy s...\r\n")
    assert r.tick(BUSY_GRACE) == [S.BusyExpired(cmd)]
    assert not cmd.final


def test_busy_after_the_payload_fails_the_send():
    r = Rig()
    cmd = r.start(CIPSEND, b"hello")
    r.feed(b"\r\nOK\r\n> ")
    r.write_payload(cmd)
    assert r.feed(b"busy s...\r\n") == [S.CommandFinished(cmd)]
    assert cmd.result == "BUSY" and cmd.response.notes == ["OK", "busy s"]


@pytest.mark.parametrize("code", ["ALREADY CONNECTED", "link is not valid"])
def test_refusals_end_a_prompt_command_as_error(code):
    r = Rig()
    cmd = r.start(CIPSEND, b"hello")
    assert r.feed(code.encode() + b"\r\n") == [S.CommandFinished(cmd)]
    assert cmd.result == "ERROR" and code in cmd.response.notes


def test_already_connected_is_a_note_for_cipstart():
    r = Rig()
    cmd = r.start(req("CIPSTART", "set", link=4, type="TCP", remote="127.0.0.1", port=80))
    assert r.feed(b"ALREADY CONNECTED\r\n") == []
    r.feed(b"\r\nERROR\r\n")
    assert cmd.result == "ERROR" and cmd.response.notes == ["ALREADY CONNECTED"]


def test_close_ends_mqttdis_only():
    r = Rig()
    cmd = r.start(req("CIPMUX", "query"))
    r.feed(b"CLOSE\r\n")
    assert not cmd.final and cmd.response.notes == ["CLOSE"]
    r.session.end_command(cmd)
    cmd = r.start(req("MQTTDIS", "execute"))
    assert r.feed(b"CLOSE\r\n") == [S.CommandFinished(cmd)]
    assert cmd.result == "CLOSE"


def test_abort_sets_the_error_and_stops_the_timers():
    r = Rig()
    cmd = r.start(req("CWLAP", "execute"))
    r.feed(b"OK\r\n")
    err = RuntimeError("reset")
    assert r.session.abort_command(err) is cmd and cmd.error is err
    assert r.tick(1.0) == []


def test_bare_link_event_is_part_of_the_answer_or_for_mqtt():
    r = Rig()
    cmd = r.start(req("CIPSTART", "set", link=None, type="TCP", remote="127.0.0.1", port=80))
    assert r.feed(b"CONNECT\r\n") == []
    assert cmd.response.lines() == ["CONNECT"]
    r.feed(b"OK\r\n")
    out = r.feed(b"CLOSED\r\n")
    assert kinds(out) == ["BareLinkEvent"] and out[0].event.state == "CLOSED"


# ---------------------------------------------------------------- owed payloads
def test_owed_payload_is_the_users_bytes_unless_they_could_start_a_command():
    r = Rig()
    assert r.session.owe(CIPSEND, b"hello") == b"hello"
    assert r.session.take_owed() == b"hello" and r.session.owed is None
    assert r.session.owe(CIPSEND, b"x\r\nAT+RST\r\n") == bytes(11)
    assert r.session.owe(req("CASEND", "set", mode=1), b"pem") == S.PEM_FILLER


def test_a_prompt_before_the_send_commands_ok_is_an_echo_and_ignored():
    """A module that restarted unseen echoes again: a ">" inside the echo of data is
    not its prompt (which follows OK): taking it wrote the payload into its parser."""
    r = Rig()
    r.open()
    cmd = r.start(CIPSEND, b"hello")
    out = r.feed(b"AT+CIPSEND=4,5\r\n> ")
    assert "PromptReady" not in kinds(out) and not cmd.prompted
    assert r.feed(b"\r\nOK\r\n> ") == [S.PromptReady(cmd)]


# ---------------------------------------------------------------- the link table
def test_ids_from_the_top_five_at_most_one_ssl():
    r = Rig()
    s = r.session
    links = [r.open() for _ in range(4)]
    assert [ln.id for ln in links] == [4, 3, 2, 1]
    with pytest.raises(LinkLimit, match="one SSL"):
        r.open("SSL") and r.open("SSL")
    with pytest.raises(LinkLimit, match="all 5 links are in use"):
        s.alloc_id("TCP")
    s.transition(links[1], "close")
    assert s.transition(links[1], "closed") == [] and links[1].state is S.LinkState.RECLAIMED
    assert s.alloc_id("TCP") == 3
    assert s.new_generation(3) == 2 and s.generation(3) == 2


def test_waiters_are_granted_first_come_first_served():
    r = Rig()
    s = r.session
    links = [r.open() for _ in range(5)]
    assert s.reserve("TCP") is None
    first, second = s.enqueue("TCP"), s.enqueue("TCP")
    assert s.waiting == 2
    with pytest.raises(LinkLimit, match="2 connect\\(s\\) waiting"):
        s.alloc_id("TCP")
    s.transition(links[0], "close")
    assert s.transition(links[0], "closed") == [S.IdGranted(first)]
    assert first.lid == 4 and 4 in s.reserved
    # a CLOSED frees an id too: the granted waiter is in the events
    out = r.feed(b"3,CLOSED\r\n")
    assert out == [S.LinkClosed(links[1], True), S.IdGranted(second)] and second.lid == 3
    # the first gives up: its grant goes back (nobody else waits)
    assert s.drop_waiter(first) == [] and 4 not in s.reserved
    s.take_reserved(3)
    assert s.reserve("TCP") == 4 and s.release_id(4) == []
    assert s.limit_message(waited=2.0).endswith("no link was freed within 2 s")


def test_closed_frees_the_id_and_remembers_a_ghost_data_on_it_proves_it_false():
    r = Rig()
    link = r.open()
    out = r.feed(b"4,CLOSED\r\n")
    assert out == [S.LinkClosed(link, True)]
    assert link.module_closed and 4 not in r.session.links and r.session.ghosts[4] is link
    out = r.feed(b"+IPD,4,3:abc")
    assert kinds(out) == ["Ignored", "GhostData"] and out[1].link is link
    assert 4 not in r.session.ghosts
    assert kinds(r.feed(b"+IPD,4,3:abc")) == ["Ignored"]   # once


def test_a_ghost_of_an_older_generation_is_not_blamed():
    r = Rig()
    link = r.open()
    r.feed(b"4,CLOSED\r\n")
    r.session.new_generation(4)          # handed out again meanwhile
    assert kinds(r.feed(b"+IPD,4,3:abc")) == ["Ignored"]
    assert link.cut is False


def test_closed_while_opening_keeps_the_id():
    r = Rig()
    s = r.session
    lid = s.alloc_id("TCP")
    link = LinkSlot(lid, s.new_generation(lid), "TCP")
    s.add(link)
    assert r.feed(b"4,CLOSED\r\n") == [S.LinkClosed(link, False)]
    assert s.link(4) is link and 4 not in s.ghosts


def test_connect_and_connect_fail():
    r = Rig()
    s = r.session
    lid = s.alloc_id("TCP")
    link = LinkSlot(lid, s.new_generation(lid), "TCP")
    s.add(link)
    assert r.feed(b"4,CONNECT\r\n") == [S.LinkConnected(link)] and link.connected
    assert r.feed(b"4,CONNECT FAIL\r\n") == [S.LinkConnectFailed(link)] and link.module_closed
    assert kinds(r.feed(b"2,CONNECT\r\n")) == ["Ignored"]


def test_the_server_accepts_on_connect_and_on_data_before_connect():
    r = Rig()
    s = r.session
    s.accepting = True
    out = r.feed(b"0,CONNECT\r\n")
    assert kinds(out) == ["LinkAccepted"] and not out[0].implicit
    accepted = out[0].link
    assert s.link(0) is accepted and accepted.accepted and accepted.generation == 1
    out = r.feed(b'+IPD,1,2,"10.0.0.9",5000:hi')
    assert kinds(out) == ["LinkAccepted", "DataReceived"] and out[0].implicit
    assert out[1] == S.DataReceived(out[0].link, b"hi", ("10.0.0.9", 5000))
    assert s.accept(2, ("10.0.0.8", 1)).id == 2


def test_a_closing_server_is_registered_but_accepts_nothing():
    r = Rig()
    s = r.session
    server = object()
    s.set_server(server)
    assert s.server is server and s.accepting
    s.stop_accepting()                      # its CIPSERVER=0 is on the wire
    assert s.server is server and not s.accepting
    assert kinds(r.feed(b"0,CONNECT\r\n")) == ["Ignored"]
    s.set_server(None)
    assert s.server is None and not s.accepting


def test_single_connection_mode_maps_everything_to_link_zero():
    r = Rig()
    s = r.session
    s.mux = False
    link = LinkSlot(0, s.new_generation(0), "TCP")
    s.add(link)
    out = r.feed(b"+IPD,3:abc")
    assert out == [S.DataReceived(link, b"abc", None)]
    assert kinds(r.feed(b"CLOSED\r\n")) == ["BareLinkEvent"]


def test_send_fail_with_and_without_an_id():
    r = Rig()
    a, b = r.open(), r.open()
    b.add_segment(1, 100)
    assert r.feed(b"SEND FAIL\r\n") == [S.SendFailed(b)]    # the one with segments out
    assert b.inflight == 0
    assert r.feed(b"4,7,SEND FAIL\r\n") == [S.SendFailed(a)]
    assert kinds(r.feed(b"SEND FAIL\r\n")) == ["Ignored"]


def test_module_reset_takes_every_link():
    r = Rig()
    links = {r.open().id for _ in range(3)}
    r.session.accepting = True
    r.session.set_passthrough(object())
    assert kinds(r.feed(b"ready\r\n")) == ["ModuleReset"]
    gone = r.session.module_reset()
    assert {ln.id for ln in gone} == links and not r.session.links
    assert r.session.resync and not r.session.accepting


def test_ready_while_initialising_is_expected():
    r = Rig()
    r.session.initialising = True
    assert r.feed(b"ready\r\n") == [] and r.session.init_ready_seen


def test_wifi_state_follows_the_urcs():
    r = Rig()
    r.session.station_ip = "10.0.0.2"
    assert kinds(r.feed(b"WIFI CONNECTED\r\n")) == ["WifiChanged"]
    assert r.session.wifi_state == "CONNECTED" and r.session.station_ip == "10.0.0.2"
    r.feed(b"WIFI DISCONNECT\r\n")
    assert r.session.wifi_state == "DISCONNECT" and r.session.station_ip is None


def test_garbage_asks_for_a_probe_at_most_twice_a_second():
    r = Rig()
    assert kinds(r.feed(b"\x01\x02ab\xffc\r\n")) == ["Ignored", "ProbeWanted"]
    r.now += 0.2
    assert kinds(r.feed(b"\x01\x02ab\xffc\r\n")) == ["Ignored"]
    r.now += 0.4
    assert kinds(r.feed(b"\x01\x02ab\xffc\r\n")) == ["Ignored", "ProbeWanted"]


def _echo_off(r: Rig) -> None:
    cmd = r.start(req("E0", "execute"))
    assert r.feed(b"ATE0\r\n\r\nOK\r\n") == [S.CommandFinished(cmd)]   # its own echo: echo was on
    r.session.end_command(cmd)
    assert r.session.echo is False


def test_an_echo_after_e0_asks_for_a_state_check_at_most_every_two_seconds():
    """A restart whose ``ready`` was lost turns echo on again: the engine's next lines come
    back.  One AT+CIPMUX? then tells (CIPMUX=0 after a restart)."""
    r = Rig()
    _echo_off(r)
    cmd = r.start(req("CIPSTATUS", "execute"))
    out = r.feed(b"AT+CIPSTATUS\r\n")
    assert out == [S.StateCheckWanted("the module echoes commands after E0")]
    r.now += 1.0
    assert r.feed(b"AT+CIPSTATUS\r\n") == []
    r.now += 1.5
    assert kinds(r.feed(b"AT+CIPSTATUS\r\n")) == ["StateCheckWanted"]
    assert kinds(r.feed(b"STATUS:2\r\n\r\nOK\r\n")) == ["CommandFinished"]
    assert cmd.response.lines() == ["STATUS:2"]


@pytest.mark.parametrize("setup", ["unknown", "E1", "initialising", "after a reset"])
def test_an_echo_is_no_sign_when_echo_is_expected(setup):
    r = Rig()
    if setup == "E1":
        _echo_off(r)
        cmd = r.start(req("E1", "execute"))
        r.feed(b"\r\nOK\r\n")
        r.session.end_command(cmd)
    elif setup == "initialising":
        _echo_off(r)
        r.session.initialising = True
    elif setup == "after a reset":
        _echo_off(r)
        r.session.module_reset()
    r.start(req("CIPSTATUS", "execute"))
    assert r.feed(b"AT+CIPSTATUS\r\n") == []


def test_a_refused_cipstart_asks_for_a_state_check():
    """ERROR to AT+CIPSTART=<id>,...: among the reasons, a module that restarted unseen
    (CIPMUX=0 refuses a link id)."""
    r = Rig()
    cmd = r.start(req("CIPSTART", "set", link=0, type="TCP", remote="10.0.0.1", port=80))
    out = r.feed(b"\r\nERROR\r\n")
    assert out == [S.StateCheckWanted(
        "AT+CIPSTART refused (a module that restarted unseen has CIPMUX=0)"),
        S.CommandFinished(cmd)]
    r.session.end_command(cmd)
    r.now += 0.5
    cmd = r.start(req("CIPSTART", "set", link=0, type="TCP", remote="10.0.0.1", port=80))
    assert r.feed(b"\r\nERROR\r\n") == [S.CommandFinished(cmd)]      # at most every 2 s


def test_passthrough_takes_all_data():
    r = Rig()
    r.session.set_passthrough(object())
    assert r.feed(b"+IPD,0,3:abc") == [S.PassthroughData(b"abc")]


# ---------------------------------------------------------------- +IPD lengths that lie
def test_an_unreadable_line_after_a_payload_cuts_the_link():
    r = Rig()
    link = r.open()
    assert r.feed(b"+IPD,4,5:hello") == [S.DataReceived(link, b"hello", None)]
    assert r.feed(b"tail\x01\r\n") == [S.IpdSpill(link, 5), S.Ignored(
        Garbage(b"tail\x01", "control bytes"), "garbage"), S.ProbeWanted(
        "module unreadable (boot noise or baud change)")]
    assert link.cut
    assert r.feed(b"+IPD,4,3:abc") == []            # nothing after the cut


def test_unasked_text_after_a_payload_is_a_spill_but_not_a_segment_fail():
    r = Rig()
    link = r.open()
    r.feed(b"+IPD,4,5:hello")
    assert r.feed(b"4,3,SEND FAIL\r\n") == [S.SendFailed(link)]
    assert not link.cut
    r.feed(b"+IPD,4,5:hello")
    assert kinds(r.feed(b"lo world\r\n")) == ["IpdSpill", "Ignored"]


def test_text_after_a_payload_belongs_to_a_command_that_prints_lines():
    r = Rig()
    link = r.open()
    cmd = r.start(req("CIPMUX", "query"))
    r.feed(b"+IPD,4,5:hello")
    assert r.feed(b"+CIPMUX:1\r\n") == [] and not link.cut
    assert cmd.response.lines() == ["+CIPMUX:1"]


def test_a_short_noise_burst_is_a_glitch_not_a_spill():
    r = Rig()
    link = r.open()
    r.feed(b"+IPD,4,5:hello")
    assert kinds(r.feed(b"\x01\x02\r\n")) == ["Ignored", "ProbeWanted"]
    assert not link.cut


def test_a_tab_after_a_payload_is_a_glitch_not_a_spill():
    """A glitch's "\t" line (Text, not Garbage) is as much noise as "\x01\x02"."""
    r = Rig()
    link = r.open()
    r.feed(b"+IPD,4,5:hello")
    assert kinds(r.feed(b"\t\r\n")) == ["Ignored"]
    assert not link.cut


def test_a_join_takes_its_ok_at_once():
    """AT+CWJAP=...: lines only before FAIL (+CWJAP:<code>), so OK is the whole answer: not
    held, and a glitch's line after it changes nothing (the heavy-fault test: the OK was
    made "stray" by such a line and the join waited 25 s for another)."""
    r = Rig()
    cmd = r.start(req("CWJAP_CUR", "set", ssid="lab", pwd="secret"))
    assert kinds(r.feed(b"WIFI CONNECTED\r\nWIFI GOT IP\r\n")) == ["WifiChanged", "WifiChanged"]
    assert r.feed(b"\r\nOK\r\n") == [S.CommandFinished(cmd)]
    r.session.end_command(cmd)
    cmd = r.start(req("CWJAP_CUR", "set", ssid="lab", pwd="wrong"))
    assert kinds(r.feed(b"+CWJAP_CUR:2\r\n\r\nFAIL\r\n")) == ["CommandFinished"]
    assert cmd.result == "FAIL" and cmd.response.lines() == ["+CWJAP_CUR:2"]


def test_a_payload_read_up_to_the_middle_of_a_line_is_held_until_it_settles():
    r = Rig()
    link = r.open()
    assert r.feed(b"+IPD,4,5:helloOK") == [] and r.session.held is not None
    assert r.feed(b"\r\n") == [S.DataReceived(link, b"hello", None), S.Ignored(
        Result("OK"), "no command in flight")]
    assert r.session.held is None
    # the same, settled by an unreadable line: never delivered
    assert r.feed(b"+IPD,4,5:hellotai") == []
    assert r.feed(b"l\x01\r\n")[0] == S.IpdSpill(link, 0)
    assert link.cut


def test_a_stalled_payload_cuts_its_link():
    r = Rig()
    link = r.open()
    assert r.session.ipd_stalled(4) == [S.LinkCut(link)]
    assert link.cut and r.session.resync
    assert r.session.ipd_stalled(2) == []


def test_events_for_a_whole_read():
    r = Rig()
    link = r.open()
    evs = [Data(4, b"ab", None), Text("1,0"), Result("OK")]
    out = r.session.events_for(evs, r.now)
    assert kinds(out) == ["DataReceived", "IpdSpill", "Ignored", "Ignored"] and link.cut


# ---------------------------------------------------------------- the send window
def test_the_window_counts_unacknowledged_segments():
    link = LinkSlot(4, 1, "TCP")
    link.add_segment(1, 2048)
    link.add_segment(2, 1000)
    assert (link.inflight, link.window_room, link.last_segment) == (3048, SENDBUF_SIZE - 3048, 2)
    link.ack(1)
    assert (link.inflight, list(link.segments), link.acked_segment) == (1000, [(2, 1000)], 1)
    link.ack(1)                          # twice: the same
    assert link.inflight == 1000
    link.ack(5)                          # a later ack covers the earlier ones
    assert (link.inflight, link.acked_segment) == (0, 5)
    link.add_segment(3, 10)              # acknowledged already (an early ack): not counted
    assert (link.inflight, link.last_segment) == (0, 3)
    link.reset_segments()
    assert (link.last_segment, link.acked_segment) == (0, 0)
    link.add_segment(1, 7)
    link.clear_window()
    assert (link.inflight, list(link.segments)) == (0, [])


# ------------------------------------------- an id's previous connection still draining
def _reopened(r: Rig, kind: str = "TCP", port: int = 7001) -> LinkSlot:
    """Link 4 handed out again after the engine freed it on an unconfirmed close
    (CIPCLOSE timed out, a reset that was not one): its CIPSTART is in flight."""
    s = r.session
    lid = s.alloc_id(kind)
    link = LinkSlot(lid, s.new_generation(lid), kind)
    link.remote = ("10.0.0.1", port)
    s.add(link)
    return link


def test_data_before_connect_is_the_previous_connections_and_is_dropped():
    r = Rig()
    old = r.open()
    old.remote = ("10.0.0.1", 7001)          # the same server: only CONNECT tells them apart
    r.session.transition(old, "lost")        # the close was never confirmed
    new = _reopened(r)
    assert new.id == old.id == 4
    out = r.feed(b'+IPD,4,3,"10.0.0.1",7001:old')
    assert kinds(out) == ["Ignored"] and "before its CONNECT" in out[0].why
    assert r.feed(b"4,CONNECT\r\n") == [S.LinkConnected(new)]
    out = r.feed(b'+IPD,4,3,"10.0.0.1",7001:new')
    assert out == [S.DataReceived(new, b"new", ("10.0.0.1", 7001))]


def test_data_from_another_peer_port_is_not_a_client_links():
    r = Rig()
    old = r.open()
    r.session.transition(old, "lost")
    new = _reopened(r, port=7001)
    r.feed(b"4,CONNECT\r\n")
    out = r.feed(b'+IPD,4,3,"10.0.0.1",7000:old')
    assert kinds(out) == ["Ignored"] and "from port 7000, not 7001" in out[0].why
    assert kinds(r.feed(b"+IPD,4,3:any")) == ["DataReceived"]   # no CIPDINFO: no port to check


def test_udp_and_accepted_links_take_data_from_any_port():
    r = Rig()
    udp = _reopened(r, kind="UDP", port=53)
    r.feed(b"4,CONNECT\r\n")
    assert kinds(r.feed(b'+IPD,4,2,"10.0.0.1",5353:hi')) == ["DataReceived"]
    r.session.accepting = True
    out = r.feed(b'+IPD,0,2,"10.0.0.9",5000:hi')
    assert kinds(out) == ["LinkAccepted", "DataReceived"] and udp.id == 4



def _answered(r):
    """A rig whose module answered the last line it got (nothing else written since)."""
    cmd = r.start(req("", "execute"))
    assert r.feed(b"OK\r\n") == [S.CommandFinished(cmd)]
    r.session.end_command(cmd)


def test_a_busy_to_the_only_line_written_is_its_own_and_waits_only_for_the_burst():
    r = Rig()
    _answered(r)
    cmd = r.start(req("CIPSTART", "set", link=4, type="TCP", remote="127.0.0.1", port=80))
    assert r.feed(b"busy p...\r\n") == [S.BusySeen(cmd)]
    assert r.session.next_deadline() == pytest.approx(r.now + BUSY_OWN_GRACE)
    assert r.feed(b"busy p...\r\n") == [S.BusySeen(cmd)]       # the burst goes on: so does the grace
    assert r.tick(BUSY_OWN_GRACE) == [S.BusyExpired(cmd)]
    assert BUSY_OWN_GRACE < BUSY_GRACE


@pytest.mark.parametrize("doubt", ["owed payload", "abandoned command", "stray result"])
def test_a_busy_after_other_bytes_reached_the_module_waits_the_long_grace(doubt):
    r = Rig()
    _answered(r)
    if doubt == "owed payload":
        r.session.owe(req("CIPSEND", "set", link=0, length=5), b"hello")
        assert r.session.take_owed() == b"hello"
    elif doubt == "abandoned command":
        gone = r.start(req("CIPSTART", "set", link=4, type="TCP", remote="127.0.0.1", port=80))
        r.session.end_command(gone)
    else:
        r.session.expect_late_answers()
        assert r.session.take_resync()  # (the driver waited for silence)
    cmd = r.start(req("CIPSTART", "set", link=3, type="TCP", remote="127.0.0.1", port=80))
    assert r.feed(b"busy p...\r\n") == [S.BusySeen(cmd)]
    assert r.tick(BUSY_OWN_GRACE) == []
    assert r.tick(BUSY_GRACE) == [S.BusyExpired(cmd)]


def _own_busy_grace(r, name="CIPSTART"):
    """Whether a busy to a fresh command now gets only the burst's grace (its own)."""
    cmd = r.start(req("CIPSTART", "set", link=3, type="TCP", remote="127.0.0.1", port=80))
    assert r.feed(b"busy p...\r\n") == [S.BusySeen(cmd)]
    own = r.session.next_deadline() == pytest.approx(r.now + BUSY_OWN_GRACE)
    r.tick(BUSY_GRACE)
    r.session.end_command(cmd)
    return own


def test_the_retry_after_an_own_busy_ran_out_is_not_in_doubt():
    # measured (issue 17, busy:0.1): every retry after a busy waited BUSY_GRACE, as if
    # the busy-expired command's answer might still come; the busy was its answer
    r = Rig()
    _answered(r)
    cmd = r.start(req("CIPSTART", "set", link=4, type="TCP", remote="127.0.0.1", port=80))
    assert r.feed(b"busy p...\r\n") == [S.BusySeen(cmd)]
    assert r.tick(BUSY_OWN_GRACE) == [S.BusyExpired(cmd)]
    r.session.end_command(cmd)
    assert _own_busy_grace(r)


def test_a_busy_that_ran_out_in_doubt_leaves_the_next_command_in_doubt():
    r = Rig()
    r.session.expect_late_answers()
    assert r.session.take_resync()
    cmd = r.start(req("CIPSTART", "set", link=4, type="TCP", remote="127.0.0.1", port=80))
    assert r.feed(b"busy p...\r\n") == [S.BusySeen(cmd)]
    assert r.tick(BUSY_GRACE) == [S.BusyExpired(cmd)]
    r.session.end_command(cmd)
    assert not _own_busy_grace(r)


def _sendbuf(r, answer_after_data=b""):
    link = r.open()
    cmd = r.start(req("CIPSENDBUF", "set", link=link.id, length=5), payload=b"hello")
    r.feed(b"OK\r\n> ")
    assert cmd.prompted
    r.write_payload(cmd)
    r.feed(answer_after_data)
    r.session.end_command(cmd)


def test_a_command_after_a_buffered_send_is_not_in_doubt():
    # CIPSENDBUF's payload ends with no result line: its prompt answered the last line
    r = Rig()
    r.session.expect_late_answers()
    assert r.session.take_resync()
    _sendbuf(r)
    assert _own_busy_grace(r)


def test_a_busy_after_a_payload_puts_the_next_command_in_doubt():
    r = Rig()
    _answered(r)
    link = r.open()
    cmd = r.start(req("CIPSEND", "set", link=link.id, length=5), payload=b"hello")
    r.feed(b"OK\r\n> ")
    r.write_payload(cmd)
    assert kinds(r.feed(b"busy s...\r\n")) == ["CommandFinished"] and cmd.result == "BUSY"
    r.session.end_command(cmd)
    assert not _own_busy_grace(r)
