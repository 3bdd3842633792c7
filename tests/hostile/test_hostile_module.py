"""The engine against a module that lies (issue 8, finding 4 and beyond).

A HostilePort (hostile_port.py) sits between the engine and the in-process
emulator and injects adversarial output at chosen moments of a command and of a
send.  Every case asserts:

* a clear, precise exception (or, where nothing was asked, no effect at all)
  within a bounded time (``BOUND`` unless the case says otherwise);
* the module usable again within ``USABLE`` seconds: a fresh command and a fresh
  link carrying data through a loopback echo server (tests/support) work;
* no byte of user data corrupted, duplicated or reordered: data that comes back
  is checked by SHA-256 against what was sent, and what a peer received is a
  prefix of what was sent (the Sink's byte count and digest).
"""
from __future__ import annotations

import contextlib
from typing import AsyncIterator, Tuple

import pytest
import trio

from wizsock import errors as E
from wizsock.engine import open_module

from engine.helpers import AP, BAUD, emu_url, sha, trio_test
from hostile.hostile_port import HostilePort
from support.servers import deterministic_bytes, tcp_echo_server, tcp_sink

#: a hostile case must end (exception or result) within this many seconds
BOUND = 2.0
#: ... and the module must be usable again within this many seconds after that
USABLE = 5.0
#: cases the engine can only tell by a silence inside a +IPD (core.IPD_STALL, 1.3 s)
STALL_BOUND = 3.0

READY = b"\r\nready\r\n"
BOOT_NOISE = (b"\r\n\x00\xe2\x80\xff\x13 ets Jan  8 2013,rst cause:2, boot mode:(3,6)\r\n"
              b"load 0x40100000, len 2408, room 16 \r\n\xa5\x5a\x00\x01\r\n"
              b"WizFi360 boot\r\n" + READY)
#: what a wrong baud rate looks like: bytes with the high bit set, framing errors (NUL)
WRONG_BAUD = bytes((0x80 | (i * 37) % 128) if i % 7 else 0 for i in range(300))


@contextlib.asynccontextmanager
async def hostile(**options) -> AsyncIterator[Tuple[object, HostilePort]]:
    port = HostilePort(emu_url(BAUD), BAUD)
    try:
        async with open_module(port, baudrate=BAUD, **options) as m:
            await m.wifi.set_mode(1)
            await m.wifi.join(*AP)
            yield m, port
    finally:
        port.close()


async def roundtrip(m, addr, data: bytes, pipelined=None) -> None:
    """Send ``data`` through a fresh link to the echo server; it must come back exact."""
    link = await m.net.open_tcp(*addr, pipelined=pipelined)
    try:
        got = bytearray()
        async with trio.open_nursery() as n:
            n.start_soon(link.send, data)
            while len(got) < len(data):
                d = await link.receive(65536)
                assert d, f"echo ended after {len(got)} of {len(data)} bytes"
                got += d
        assert sha(got) == sha(data), "echoed data differs"
    finally:
        await link.aclose()


async def assert_usable(m, addr, since: float) -> float:
    """A fresh command and a fresh link work, within USABLE of ``since``; returns the time."""
    with trio.fail_after(USABLE + 1):
        while True:
            try:
                version = await m.system.version()
                assert version is not None
                await roundtrip(m, addr, deterministic_bytes(6000))
                break
            except (E.ModuleReset, E.ModuleUnresponsive):
                await trio.sleep(0.05)          # still recovering
    took = trio.current_time() - since
    assert took < USABLE, f"usable again only after {took:.2f}s"
    return took


async def expect(exc_types, fn, *args, bound=BOUND):
    """``fn(*args)`` raises one of ``exc_types`` within ``bound`` seconds; returns it."""
    start = trio.current_time()
    with trio.fail_after(bound + 2):
        with pytest.raises(exc_types) as info:
            await fn(*args)
    took = trio.current_time() - start
    assert took < bound, f"{info.value!r} after {took:.2f}s (bound {bound}s)"
    return info.value


async def read_until_cut(link, data: bytes, bound=BOUND) -> bytes:
    """Read until the link fails with ProtocolError (within ``bound``); what came
    before must be a prefix of ``data`` (no foreign byte reached the reader)."""
    got = bytearray()
    with trio.fail_after(bound + 2):
        with pytest.raises(E.ProtocolError):
            while True:
                d = await link.receive()
                assert d, "a cut stream must not read as its end"
                got += d
    assert bytes(got) == data[:len(got)], "bytes that are not the peer's reached the reader"
    return bytes(got)


async def read_echo(link, data: bytes) -> None:
    """The echo of ``data`` arrives whole and exact within BOUND."""
    got = bytearray()
    with trio.fail_after(BOUND):
        while len(got) < len(data):
            got += await link.receive()
    assert sha(got) == sha(data)


def _sink_prefix(sink, data: bytes) -> None:
    """What the peer received is a prefix of ``data`` (nothing foreign, nothing twice)."""
    (n, digest), = sink.wait(1)
    assert n <= len(data)
    assert digest == sha(data[:n]), f"the peer received {n} bytes that are not a prefix of the data"


# ---------------------------------------------------------------------------------------
# finding 4a: "ready" while a send is in progress (the module did not really reset)

SEND_PHASES = {
    # the command line is written, its answer not yet there
    "after-header": lambda p: p.on_write(rb"^AT\+CIPSEND", READY),
    # the ">" came, the payload not yet written
    "after-prompt": lambda p: p.on_output(rb">", READY),
    # while the payload is being written
    "mid-payload": lambda p: p.on_write(rb"^(?!AT)", READY),
    # boot noise then ready, after the prompt
    "noise-after-prompt": lambda p: p.on_output(rb">", BOOT_NOISE),
}


@pytest.mark.parametrize("pipelined", [True, False], ids=["sendbuf", "cipsend"])
@pytest.mark.parametrize("phase", sorted(SEND_PHASES))
@trio_test
async def test_ready_during_send(phase, pipelined):
    data = deterministic_bytes(5000)
    with tcp_sink() as sink, tcp_echo_server() as echo:
        async with hostile() as (m, port):
            link = await m.net.open_tcp(*sink.address, pipelined=pipelined)
            rule = SEND_PHASES[phase](port)
            err = await expect(E.ModuleReset, link.send, data)
            assert port.fired(rule)
            assert "reset" in str(err)
            await assert_usable(m, echo.address, trio.current_time())
            await link.aclose()
        _sink_prefix(sink, data)


@pytest.mark.parametrize("noise", [READY, BOOT_NOISE], ids=["ready", "boot-noise"])
@trio_test
async def test_ready_after_the_payload(noise):
    """CIPSEND: the module took the payload ("Recv N bytes"), then "ready" before SEND
    OK: the send fails (whether the chunk left is unknown); nothing is owed."""
    data = deterministic_bytes(3000)
    with tcp_sink() as sink, tcp_echo_server() as echo:
        async with hostile() as (m, port):
            link = await m.net.open_tcp(*sink.address, pipelined=False)
            rule = port.on_output(rb"Recv \d+ bytes\r\n", noise)
            await expect(E.ModuleReset, link.send, data)
            assert port.fired(rule)
            await assert_usable(m, echo.address, trio.current_time())
            await link.aclose()
        _sink_prefix(sink, data)


# ---------------------------------------------------------------------------------------
# finding 4b: a stray "<id>,CLOSED" for a live link

@trio_test
async def test_stray_closed_then_reuse_of_the_id():
    with tcp_echo_server() as echo:
        async with hostile() as (m, port):
            link = await m.net.open_tcp(*echo.address)
            start = trio.current_time()
            port.inject(b"\r\n%d,CLOSED\r\n" % link.id)
            with trio.fail_after(BOUND):
                assert await link.receive() == b""      # what the module said
            # the module still holds the id: every open must work all the same
            for _ in range(6):
                await roundtrip(m, echo.address, deterministic_bytes(3000))
            assert trio.current_time() - start < USABLE
            await link.aclose()
            assert dict(m.net.links) == {}


@trio_test
async def test_stray_closed_then_data_on_the_link():
    data = deterministic_bytes(4000)
    with tcp_echo_server() as echo:
        async with hostile() as (m, port):
            link = await m.net.open_tcp(*echo.address)
            # the CLOSED arrives just before the echo of the data
            port.on_output(rb"\r\n\+IPD,%d," % link.id, inject=b"", replace=lambda mt:
                           b"\r\n%d,CLOSED" % link.id + mt.group(0))
            start = trio.current_time()
            with contextlib.suppress(E.ProtocolError):
                await link.send(data)
            # the EOF the module announced is not read before its data proves it false:
            # then the reader learns that its stream was cut, not that it ended
            with trio.fail_after(BOUND):
                while link.error is None:
                    await trio.sleep(0.01)
            assert isinstance(link.error, E.ProtocolError)
            await read_until_cut(link, data)
            assert trio.current_time() - start < BOUND
            await link.aclose()
            await assert_usable(m, echo.address, start)


#: output about links other than the one carrying data: it must change nothing
WRONG_LINK = {
    "connect-closed-other-link": lambda lid: b"\r\n%d,CONNECT\r\n%d,CLOSED\r\n%d,CONNECT FAIL\r\n" % (
        (lid + 2) % 5, (lid + 2) % 5, (lid + 3) % 5),
    "closed-no-such-link": lambda lid: b"\r\n7,CLOSED\r\n12,CONNECT\r\nCLOSED\r\n",
    "ipd-unopened-links": lambda lid: b"\r\n+IPD,%d,5:hello\r\n+IPD,%d,3:abc" % (
        (lid + 1) % 5, (lid + 2) % 5),
    "ipd-no-such-link": lambda lid: b"\r\n+IPD,9,4:abcd\r\n+IPD,4:abcd",
}


@pytest.mark.parametrize("what", sorted(WRONG_LINK))
@trio_test
async def test_output_for_the_wrong_link(what):
    data = deterministic_bytes(8000)
    with tcp_echo_server() as echo:
        async with hostile() as (m, port):
            link = await m.net.open_tcp(*echo.address)
            port.inject(WRONG_LINK[what](link.id))
            await link.send(data)
            await read_echo(link, data)
            assert not link.closed
            await link.aclose()
            await assert_usable(m, echo.address, trio.current_time())
            assert dict(m.net.links) == {}


# ---------------------------------------------------------------------------------------
# finding 4c: +IPD lengths that lie

@pytest.mark.parametrize("extra", [7, 300, 4000])
@trio_test
async def test_ipd_longer_than_its_data(extra):
    data = deterministic_bytes(1500)
    with tcp_echo_server() as echo:
        async with hostile() as (m, port):
            link = await m.net.open_tcp(*echo.address)
            rule = port.on_output(rb"\+IPD,(\d),(\d+)", replace=lambda mt: b"+IPD,%s,%d" % (
                mt.group(1), int(mt.group(2)) + extra))
            await link.send(data)
            start = trio.current_time()
            await read_until_cut(link, data, bound=STALL_BOUND)
            assert port.fired(rule)
            assert trio.current_time() - start < STALL_BOUND
            await link.aclose()
            await assert_usable(m, echo.address, start)


@trio_test
async def test_ipd_longer_swallows_a_command_answer():
    with tcp_echo_server() as echo:
        async with hostile() as (m, port):
            link = await m.net.open_tcp(*echo.address)
            # a +IPD that announces 2000 bytes and carries 5, then the answer to GMR
            port.on_write(rb"^AT\+GMR", b"\r\n+IPD,%d,2000:hello" % link.id)
            start = trio.current_time()
            err = await expect((E.BadResponse, E.CommandTimeout), m.system.version,
                               bound=STALL_BOUND)
            assert isinstance(err, E.BadResponse), repr(err)
            assert err.command == "GMR"
            with pytest.raises(E.ProtocolError):
                await link.receive()
            await link.aclose()
            await assert_usable(m, echo.address, start)


@pytest.mark.parametrize("short", [1, 5, 200])
@trio_test
async def test_ipd_shorter_than_its_data(short):
    data = deterministic_bytes(1500)
    with tcp_echo_server() as echo:
        async with hostile() as (m, port):
            link = await m.net.open_tcp(*echo.address)
            rule = port.on_output(rb"\+IPD,(\d),(\d+)", replace=lambda mt: b"+IPD,%s,%d" % (
                mt.group(1), int(mt.group(2)) - short))
            await link.send(data)
            start = trio.current_time()
            await read_until_cut(link, data)
            assert port.fired(rule)
            assert trio.current_time() - start < BOUND
            await link.aclose()
            await assert_usable(m, echo.address, start)


@trio_test
async def test_module_lines_inside_a_payload_are_data():
    """Peer data that looks like module output ("ready", "CLOSED", "OK", "+IPD") is data."""
    data = (b"\r\nready\r\n4,CLOSED\r\nOK\r\n+IPD,1,3:abc\r\n>" + READY) * 40
    with tcp_echo_server() as echo:
        async with hostile() as (m, port):
            resets = m.engine.reset_count
            link = await m.net.open_tcp(*echo.address)
            await link.send(data)
            await read_echo(link, data)
            assert m.engine.reset_count == resets
            await link.aclose()


# ---------------------------------------------------------------------------------------
# finding 4d and the rest: stray output during a command

COMMAND_PHASES = {
    "after-echo": lambda p, out: p.on_write(rb"^AT\+GMR", out),
    "between-lines": lambda p, out: p.on_output(rb"AT version:[^\n]*\n", out),
    "before-result": lambda p, out: p.on_output(rb"(?<=\n)OK\r\n", replace=lambda mt:
                                                 out + mt.group(0)),
}
OUTPUTS = {
    "ready": (READY, E.ModuleReset),
    "boot-noise": (BOOT_NOISE, E.ModuleReset),
    "wrong-baud": (WRONG_BAUD + b"\r\n", None),
    "garbage-line": (b"\r\n~#q\x01\x02z{{{\r\n", None),
    "endless-line": (b"\r\n" + b"A" * 70000 + b"\r\n", None),
    "random-text": (b"\r\nx9 !qq,,=Z\r\n", None),
    "stray-ok": (b"\r\nOK\r\n", None),
    "stray-error": (b"\r\nERROR\r\n", E.CommandError),
    "stray-send-ok": (b"\r\nSEND OK\r\n3,7,SEND OK\r\nRecv 12 bytes\r\n", None),
    "stray-prompt": (b"\r\n> ", None),
}


@pytest.mark.parametrize("what", sorted(OUTPUTS))
@pytest.mark.parametrize("phase", sorted(COMMAND_PHASES))
@trio_test
async def test_stray_output_during_a_command(phase, what):
    out, expected = OUTPUTS[what]
    with tcp_echo_server() as echo:
        async with hostile() as (m, port):
            rule = COMMAND_PHASES[phase](port, out)
            start = trio.current_time()
            with trio.fail_after(BOUND + 2):
                try:
                    version = await m.system.version()
                except E.WizError as exc:
                    err = exc
                else:
                    err = None
                    assert version == m.version, "a wrong answer instead of an exception"
            assert port.fired(rule)
            took = trio.current_time() - start
            assert took < BOUND, f"{err!r} after {took:.2f}s"
            if expected is not None and (phase == "after-echo" or expected is not E.BadResponse):
                assert isinstance(err, expected), f"{err!r}, expected {expected.__name__}"
            elif err is not None:
                # the answer was whole: only an exception that says what went wrong
                assert isinstance(err, (E.BadResponse, E.ModuleReset, E.CommandError)), repr(err)
            await assert_usable(m, echo.address, start)


@pytest.mark.parametrize("what", ["OK", "ERROR", "SEND FAIL", "busy p...", "ready", "> "])
@trio_test
async def test_answers_to_commands_never_asked(what):
    """Output while no command is in flight changes nothing (ready: a clean re-start)."""
    data = deterministic_bytes(9000)
    with tcp_echo_server() as echo:
        async with hostile() as (m, port):
            port.inject(b"\r\n" + what.encode() + b"\r\n")
            await trio.sleep(0.2)
            start = trio.current_time()
            await assert_usable(m, echo.address, start)
            await roundtrip(m, echo.address, data)


@trio_test
async def test_unanswered_command():
    timeout = 1.5
    with tcp_echo_server() as echo:
        async with hostile(timeouts={"GMR": timeout}) as (m, port):
            # the answer to GMR never comes (the module swallowed the command)
            port.on_write(rb"^AT\+GMR", mute=0.5)
            err = await expect(E.CommandTimeout, m.system.version, bound=timeout + 2.0)
            assert not isinstance(err, E.ModuleUnresponsive)
            assert err.command == "GMR"
            await assert_usable(m, echo.address, trio.current_time())


@trio_test
async def test_send_answer_never_comes():
    """CIPSEND whose ">" never comes: the send fails clearly; the module is usable."""
    data = deterministic_bytes(3000)
    with tcp_sink() as sink, tcp_echo_server() as echo:
        async with hostile(timeouts={"CIPSEND": 1.0}) as (m, port):
            link = await m.net.open_tcp(*sink.address, pipelined=False)
            rule = port.on_output(rb">", replace=b"")
            err = await expect(E.SendFailed, link.send, data, bound=3.0)
            assert port.fired(rule)
            assert "CIPSEND" in str(err)
            await assert_usable(m, echo.address, trio.current_time())
            await link.aclose()
        _sink_prefix(sink, data)


@pytest.mark.parametrize("junk", [b"x9 !qq,,=Z", b"+CWMODE_CUR:banana", b"\xff\xfe+CWMODE_CUR:1",
                                  b"+CWMODE_CUR:", b"+CWMODE_CUR:9999999999999"])
@trio_test
async def test_garbled_answer_raises(junk):
    """An answer the codec cannot read raises BadResponse naming the command (it
    used to return None)."""
    with tcp_echo_server() as echo:
        async with hostile() as (m, port):
            assert (await m.wifi.mode()) is not None
            rule = port.on_output(rb"\+CWMODE_CUR:\d\r\n", replace=junk + b"\r\n")
            start = trio.current_time()
            err = await expect(E.BadResponse, m.wifi.mode)
            assert port.fired(rule)
            assert err.command == "CWMODE_CUR"
            assert "CWMODE_CUR" in str(err)
            await assert_usable(m, echo.address, start)


# ---------------------------------------------------------------------------------------
# a restart whose "ready" never arrives (lost to a glitch): the module has echo on and
# CIPMUX=0 again, and the engine must find out from what it says next

@pytest.mark.parametrize("sign", ["echo", "refused-cipstart"])
@trio_test
async def test_a_restart_whose_ready_is_lost(sign):
    """``echo``: the next command comes back as an echo (E0 is gone); ``refused-cipstart``:
    echo stays off (as if a firmware kept it), and AT+CIPSTART=<id> answers ERROR (a link
    id under CIPMUX=0).  Either way one AT+CIPMUX? tells, a reset is declared (the link
    held fails with ModuleReset) and the module is usable again within USABLE.  Without
    the check every later open failed with ConnectError until the end (the heavy-fault
    test's "0 bytes exact": 76 refused opens in 25 s)."""
    with tcp_echo_server() as echo:
        async with hostile() as (m, port):
            link = await m.net.open_tcp(*echo.address)
            resets = m.engine.reset_count
            emu = port.emulator
            booted = emu.ready_count
            port.on_output(rb"\r\nready\r\n", replace=b"")
            emu.call_soon(emu.reset, False)
            with trio.fail_after(5):
                while emu.ready_count == booted:
                    await trio.sleep(0.01)
            if sign == "refused-cipstart":
                emu.call_soon(setattr, emu, "echo", False)
                await trio.sleep(0.05)
            start = trio.current_time()
            if sign == "echo":
                assert await m.system.version() is not None     # echoed, answered all the same
            else:
                await expect(E.ConnectError, m.net.open_tcp, *echo.address)
            with trio.fail_after(BOUND):
                with pytest.raises(E.ModuleReset):
                    while True:
                        await link.receive()
            assert m.engine.reset_count == resets + 1
            assert "restarted unseen" in m.engine.last_reset_reason
            await assert_usable(m, echo.address, start)
            await link.aclose()
