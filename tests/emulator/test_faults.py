"""Fault injection: each fault switchable, seeded, and visible to a host."""
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


def test_chunk_slices_output_and_is_seeded(make_emu):
    # A slice is the seeded draw, or less when the module has not printed that
    # much yet, so the lengths seen depend on timing; the draws do not.
    draws = {}
    for run, seed in ((1, 7), (2, 7), (3, 8)):
        emu = make_emu(faults="chunk", seed=seed)
        drawn = draws[run] = []
        rng = emu.faults.rng
        randint = rng.randint

        def recording(a, b, randint=randint, drawn=drawn):
            drawn.append(randint(a, b))
            return drawn[-1]

        rng.randint = recording                # before any output: no host attached yet
        got = []
        at = open_at(emu)
        orig = emu._sink

        def sink(data, baud, orig=orig):
            got.append(len(data))
            orig(data, baud)

        emu.attach(sink)
        r = at.ok(b"AT+GMR")
        assert b"AT version:1.1.1.7" in r
        assert max(got) <= 16 and len(got) > 5
        assert all(1 <= d <= 16 for d in drawn)
        at.port.close()
    n = min(len(draws[1]), len(draws[2]))
    assert n > 5 and draws[1][:n] == draws[2][:n]      # same seed, same slicing
    assert draws[1][:n] != draws[3][:n]                # another seed, another


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
