"""Fault injection: each fault switchable, seeded, and visible to a host."""
import itertools
import re
import time

import pytest

from emulator.conftest import EchoServer, join, open_at
from wizsock.emulator.faults import Faults


def test_spec_parsing():
    f = Faults("chunk, urc:0.25,busy=0.5", seed=1)
    assert f.prob == {"chunk": 1.0, "urc": 0.25, "busy": 0.5}
    with pytest.raises(ValueError):
        Faults("nonsense")
    with pytest.raises(ValueError):
        Faults("busy:2")
    assert not Faults(None)


def test_chunk_cuts_are_seeded(make_emu):
    # a cut is a fraction of what is due, so the draws are the seed's whatever the timing
    draws = {}
    for run, seed in ((1, 7), (2, 7), (3, 8)):
        emu = make_emu(faults="chunk", seed=seed)
        drawn = draws[run] = []
        rng = emu.faults.rng
        rand = rng.random

        def recording(rand=rand, drawn=drawn):
            drawn.append(rand())
            return drawn[-1]

        rng.random = recording                 # before any output: no host attached yet
        at = open_at(emu)
        assert b"AT version:1.1.1.7" in at.ok(b"AT+GMR")
        at.port.close()
    n = min(len(draws[1]), len(draws[2]))
    assert n > 5 and draws[1][:n] == draws[2][:n]      # same seed, same cuts
    assert draws[1][:n] != draws[3][:n]                # another seed, others


def _line_offsets(stream: bytes, cuts):
    """(line, offset in it) of each cut: the line a cut falls in, with its line end."""
    out = set()
    for c in cuts:
        start = stream.rfind(b"\n", 0, c) + 1
        end = stream.find(b"\n", c)
        out.add((stream[start:end + 1], c - start))
    return out


def test_chunk_cuts_anywhere_and_the_host_reads_each_cut(make_emu):
    """The cut falls at any byte, the host's reader meets it (a read ends there), and
    the output keeps the line rate: slicing tests the host's framer, not its patience."""
    emu = make_emu(faults="chunk", seed=11)
    at = open_at(emu)
    at.ok(b"ATE0")
    handed = []                                 # the emulator's hand-overs
    orig = emu.sink

    def sink(data, baud, orig=orig):
        handed.append(bytes(data))
        orig(data, baud)

    emu.call(lambda: emu.attach(sink, emu.unread))
    reads = []
    port = at.port
    t0 = time.monotonic()
    rounds = 60
    for _ in range(rounds):
        port.write(b"AT+GMR\r\n")
        got = b""
        while not got.endswith(b"\r\nOK\r\n"):
            d = port.read(max(1, port.in_waiting))
            if d:
                reads.append(d)
                got += d
    took = time.monotonic() - t0
    stream = b"".join(reads)
    assert stream == b"".join(handed)
    emu_cuts = set(itertools.accumulate(len(h) for h in handed[:-1]))
    host_cuts = set(itertools.accumulate(len(r) for r in reads[:-1]))
    # the host's reads end where the module's output was cut (its reader is fast
    # enough here; a cut it misses only joins two pieces)
    seen = len(emu_cuts & host_cuts) / len(emu_cuts)
    assert seen > 0.8, (seen, len(emu_cuts))
    # every boundary of the final line was met, and cuts fell inside longer lines too
    ok_line = {off for line, off in _line_offsets(stream, emu_cuts & host_cuts) if line == b"OK\r\n"}
    assert {1, 2, 3} <= ok_line, ok_line
    version = {off for line, off in _line_offsets(stream, emu_cuts & host_cuts)
               if line.startswith(b"AT version:")}
    assert len(version) > 10, version
    print(f"{rounds} AT+GMR under chunk: {took:.2f} s, {len(emu_cuts)} cuts, {seen:.0%} met by the host")
    port.close()


def test_urc_interleaving(make_emu):
    emu = make_emu(faults="urc:1.0", seed=3)
    at = open_at(emu)
    text = b""
    for _ in range(5):
        r = at.cmd(b"AT+GMR")
        assert r.endswith(b"OK\r\n") and b"AT version:" in r
        text += r
    # URCs came between the lines of responses (after the echo, between info lines, before OK)
    assert text.count(b"+STA_CONNECTED:") >= 3
    assert text.count(b"+STA_DISCONNECTED:") >= 3
    inside = [r for r in text.split(b"AT+GMR\r\n")[1:] if b"+STA_" in r.split(b"\r\nOK\r\n")[0]]
    assert inside, "no URC landed inside a response"
    assert at.ok(b"AT").endswith(b"OK\r\n")


def test_busy_bursts(make_emu):
    emu = make_emu(faults="busy:1.0", seed=1)
    at = open_at(emu)
    kinds = set()
    for _ in range(10):
        at.port.write(b"AT\r\n")
        out = at.read_until(lambda b: re.search(rb"busy ([ps])\.\.\.\r\n", b), 3)
        kinds.add(out.group(1))
        time.sleep(0.02)
        assert b"OK" not in at.buf
        at.buf = b""
    assert kinds == {b"p", b"s"}
    emu2 = make_emu(faults="busy:0.5", seed=2)
    at2 = open_at(emu2)
    for _ in range(30):  # a host retries after busy
        at2.port.write(b"AT\r\n")
        r = at2.read_until(lambda b: (b"OK\r\n" in b or b.endswith(b"busy p...\r\n")) or None, 3)
        if b"OK\r\n" in at2.buf:
            break
        at2.buf = b""
        time.sleep(0.01)
    assert b"OK\r\n" in at2.buf
    del r


def test_sendfail(make_emu):
    srv = EchoServer(echo=False)
    emu = make_emu(faults="sendfail:1.0", seed=1)
    at = open_at(emu)
    join(at)
    at.ok(b'AT+CIPSTART="TCP","127.0.0.1",%d' % srv.port)
    at.port.write(b"AT+CIPSEND=4\r\n")
    at.expect(b">")
    at.port.write(b"lost")
    out = at.expect(b"SEND FAIL\r\n")
    assert b"SEND OK" not in out
    time.sleep(0.1)
    assert bytes(srv.received) == b""
    srv.close()


def test_delayed_send_ok(make_emu, echo_server):
    emu = make_emu(faults="delay_sendok:1.0", seed=1)
    at = open_at(emu)
    join(at)
    at.ok(b'AT+CIPSTART="TCP","127.0.0.1",%d' % echo_server.port)
    t0 = time.monotonic()
    at.send(None, b"late")
    assert time.monotonic() - t0 >= 0.05


def test_peer_closes_early(make_emu, echo_server):
    emu = make_emu(faults="early_close:1.0", seed=1)
    at = open_at(emu)
    join(at, mux=True)
    at.ok(b'AT+CIPSTART=0,"TCP","127.0.0.1",%d' % echo_server.port)
    at.send(0, b"bye")
    assert at.ipd(3, link=0) == b"bye"
    at.expect(b"0,CLOSED\r\n")
    assert b"STATUS:4" in at.ok(b"AT+CIPSTATUS")


def test_reset_at_any_moment(make_emu, echo_server):
    emu = make_emu(faults="reset:0.5", seed=4)
    at = open_at(emu)
    before = emu.ready_count
    resets = 0
    for _ in range(10):
        at.port.write(b"AT\r\n")
        out = at.read_until(lambda b: (b"OK\r\n" in b or b"ready\r\n" in b) or None, 5)
        if b"ready\r\n" in at.buf:
            resets += 1
        at.buf = b""
        del out
    assert resets >= 1 and emu.ready_count == before + resets


def test_reset_between_commands(make_emu):
    emu = make_emu(faults="reset:1.0", seed=1)
    at = open_at(emu)
    out = at.expect(b"ready\r\n", timeout=5)  # no command needed: the module just resets
    assert b"rst cause" in out


def test_reset_boot_noise_precedes_ready(make_emu):
    emu = make_emu(faults="reset:1.0", seed=1)
    at = open_at(emu)
    at.port.write(b"AT\r\n")
    out = at.expect(b"ready\r\n")
    assert b"rst cause" in out and b"OK" not in out


def test_garbage_bytes(make_emu):
    emu = make_emu(faults="garbage:1.0", seed=5)
    at = open_at(emu)
    r = at.ok(b"AT+CWMODE_CUR?")
    assert b"+CWMODE_CUR:2" in r
    assert any(b < 0x20 and b not in (0x0d, 0x0a) for b in r)


def test_stall(make_emu):
    emu = make_emu(faults="stall:1.0", seed=1)
    at = open_at(emu, timeout=0.05)
    t0 = time.monotonic()
    at.ok(b"AT")
    assert time.monotonic() - t0 >= 0.2


def test_link_and_ssl_limit(make_emu, echo_server):
    emu = make_emu(faults="limit:1.0", seed=1)
    at = open_at(emu)
    join(at, mux=True)
    assert at.cmd(b'AT+CIPSTART=0,"TCP","127.0.0.1",%d' % echo_server.port).endswith(b"ERROR\r\n")
    assert at.cmd(b'AT+CIPSTART=0,"SSL","127.0.0.1",%d' % echo_server.port).endswith(b"ERROR\r\n")
    assert echo_server.conns == []
