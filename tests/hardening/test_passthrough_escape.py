"""User data cannot leave UART-WiFi passthrough (issue 8, finding 2).

The module leaves passthrough on a packet that is exactly ``+++`` (spec 3.3.7:
packets end at a 20 ms gap or after 2048 bytes).  First the emulator is shown
to do so for a plain AT client (so the attack is real there), then the engine's
writer gets the attack from the issue and a series of ``+``-heavy chunks with
packet-sized gaps: the module stays in passthrough, runs no command, and the
peer receives every byte in order.
"""
from __future__ import annotations

import time

import pytest

from wizsock.emulator import Emulator
from wizsock.engine import passthrough as PT

from hardening.helpers import AP, BAUD, recorder
from support.atport import AtPort


def _wait_for(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_emulator_leaves_passthrough_on_a_lone_plus_packet_only():
    """The rule the writer defends against, as the emulator implements it (control)."""
    with recorder() as peer, Emulator(baudrate=BAUD, boot_delay=0.05) as emu, \
            AtPort(emu.url, baudrate=BAUD) as at:
        at.sync()
        at.ok("AT+CWMODE_CUR=1")
        at.ok(f'AT+CWJAP_CUR="{AP[0]}","{AP[1]}"')
        at.ok("AT+CIPMUX=0")
        at.ok("AT+CIPMODE=1")
        at.ok(f'AT+CIPSTART="TCP","127.0.0.1",{peer.port}')
        at.write("AT+CIPSEND\r\n")
        assert _wait_for(lambda: at._fill() or b">" in at.buf)
        time.sleep(0.1)
        # "+++" with other bytes in the same packet is data
        at.write(b"a+++")
        time.sleep(0.1)
        at.write(b"+++b")
        time.sleep(0.1)
        assert emu.state.transparent
        # "+++" alone between gaps of a few packet intervals leaves passthrough
        at.write(b"+++")
        time.sleep(1.1)
        assert not emu.state.transparent
        at.buf.clear()
        assert at.command("AT")[1] == "OK"
        assert _wait_for(lambda: peer.received and bytes(peer.received[0]) == b"a++++++b")


@pytest.fixture
def session(module, emu):
    with recorder() as peer:
        resets = emu.ready_count
        with module.net.passthrough("127.0.0.1", peer.port) as stream:
            yield stream, peer, emu
        assert emu.ready_count == resets        # no reset on the way
        module.system.at()


def test_the_issue_attack_stays_data(session, wire):
    """+++ with guard pauses around it, then AT+RST: the peer gets all of it as data."""
    stream, peer, emu = session
    assert emu.state.transparent
    mark = wire.mark()
    time.sleep(PT.GUARD + 0.1)
    stream.send_all(b"+++")
    time.sleep(PT.GUARD + 0.1)
    assert emu.state.transparent
    stream.send_all(b"AT+RST\r\n")
    time.sleep(0.3)
    assert emu.state.transparent
    assert wire.since(mark) == []
    assert _wait_for(lambda: peer.received and bytes(peer.received[0]) == b"+++AT+RST\r\n")


CHUNKS = [b"+++", b"++", b"+", b"+++\r\n", b"\r\n+++", b"\r\nAT+RST\r\n", b"+++AT+RST\r\n",
          b"x+++", b"+++x", b"++++", b"+" * 7, b"A" * 2048 + b"+++", b"A" * 2045 + b"+++",
          b"+" * 2051, b"+" * 4099, b"\x00+++\x00", b"+++\r\nAT+CWQAP\r\n", b"ready\r\n+++"]


def test_plus_heavy_chunks_with_packet_gaps_stay_data(session, wire):
    """Each chunk alone between pauses of a few packet intervals (and some of them
    between flush-sized pauses): every one would be a lone packet for a naive writer."""
    stream, peer, emu = session
    mark = wire.mark()
    sent = bytearray()
    inputs = 0
    for gap in (0.03, 0.06):
        for chunk in CHUNKS:
            stream.send_all(chunk)
            sent += chunk
            inputs += 1
            time.sleep(gap)
            assert emu.state.transparent, chunk
    for chunk in (b"+++", b"x+++", b"++++"):          # the held tail flushed on its own
        stream.send_all(chunk)
        sent += chunk
        inputs += 1
        time.sleep(PT.GUARD + 0.3)
        assert emu.state.transparent, chunk
    assert wire.since(mark) == []
    assert _wait_for(lambda: peer.received and len(peer.received[0]) >= len(sent), 10)
    assert bytes(peer.received[0]) == bytes(sent)
    assert inputs == 2 * len(CHUNKS) + 3
    print(f"\npassthrough: {inputs} hostile chunks, all delivered, 0 commands run")


def test_writer_invariants():
    """No write the writer makes ends with '+' except a flush piece, and no flush
    piece is exactly '+++' or longer than a packet (the argument of passthrough.py)."""
    import random
    rng = random.Random(8)
    for _ in range(20000):
        data = bytes(rng.choice(b"++a\r") for _ in range(rng.randrange(0, 20)))
        out, held = PT.hold_tail(data)
        assert out + held == data and not out.endswith(b"+")
        if held:
            pieces = PT.flush_pieces(held)
            assert b"".join(pieces) == held
            assert all(0 < len(p) <= PT.MAX_PACKET and p != b"+++" for p in pieces)
    assert PT.flush_pieces(b"+" * 4099)[-1] == b"++++"
