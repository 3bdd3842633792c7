"""UART-WiFi passthrough through the engine (spec 2.4, 3.3.7, 3.3.18) against the emulator.

Every session ends with the spec's guard times (>= 1 s, "+++", >= 1 s), so
the tests share sessions where they can.
"""
from __future__ import annotations

import logging

import pytest
import trio

import wizsock
from wizsock import errors as E

from engine.helpers import BAUD, emu_url, joined, module, trio_test
from support.servers import (TCPServerInfo, _UDPServer, deterministic_bytes, sha256,
                             tcp_echo_server, tcp_sink, tcp_source)

# Everything the engine would otherwise read as lines, frames, prompts or a reset.
TRICKY = (b"OK\r\n+IPD,0,5:hello\r\n> \r\nERROR\r\n0,CLOSED\r\nCLOSED\r\nready \x00\x00\x00"
          b"SEND OK\r\nbusy p...\r\n+++AT\r\n>")


async def _read_exactly(stream, n, timeout=10):
    buf = bytearray()
    with trio.fail_after(timeout):
        while len(buf) < n:
            buf += await stream.receive_some(65536)
    return bytes(buf)


async def _echo_round(stream, payload):
    async with trio.open_nursery() as n:
        n.start_soon(stream.send_all, payload)
        got = await _read_exactly(stream, len(payload))
    assert got == payload


class _UdpEcho(_UDPServer):
    def __init__(self):
        super().__init__(0, "udp-echo")

    def answer(self, data):
        return data


@trio_test
async def test_tcp_both_ways_byte_exact_then_commands_work():
    payload = TRICKY + deterministic_bytes(30_000) + TRICKY
    with tcp_echo_server() as echo:
        async with module() as m:
            await joined(m)
            async with m.net.passthrough("127.0.0.1", echo.port) as stream:
                assert isinstance(stream, trio.abc.Stream)
                assert m.engine.mux is False and m.engine.raw
                await _echo_round(stream, TRICKY)          # first bytes right after ">"
                await _echo_round(stream, payload)
                await _echo_round(stream, b"\x00")
            # command mode, the engine's multi-link state is back
            assert not m.engine.raw and m.engine.mux is True
            await m.system.at()
            assert (await m.net.transfer_mode()).mode == 0
            assert (await m.net.mux()).mode == 1
            link = await m.net.open_tcp("127.0.0.1", echo.port)
            await link.send(b"after passthrough")
            assert await link.receive(100) == b"after passthrough"
            await link.aclose()
            assert dict(m.net.links) == {}
            with pytest.raises(trio.ClosedResourceError):
                await stream.receive_some(10)
            with pytest.raises(trio.ClosedResourceError):
                await stream.send_all(b"x")


def _source_on_request(data):
    """Sends `data` once the client sent a byte (so it all comes after the prompt)."""
    def serve(conn):
        if conn.recv(1):
            conn.sendall(data)
            while conn.recv(65536):
                pass
    return TCPServerInfo(serve, "source-on-request")


@trio_test
async def test_download_and_upload_to_sink():
    data = TRICKY * 50 + deterministic_bytes(60_000)
    up = deterministic_bytes(40_000) + TRICKY
    src = _source_on_request(data)
    with tcp_sink() as sink:
        async with module() as m:
            await joined(m)
            async with m.net.passthrough("127.0.0.1", src.port) as stream:
                await stream.send_all(b"?")
                assert await _read_exactly(stream, len(data)) == data
            async with m.net.passthrough("127.0.0.1", sink.port) as stream:
                for i in range(0, len(up), 7000):
                    await stream.send_all(up[i:i + 7000])
            # leaving closed the connection: the sink saw EOF after every byte
            assert sink.wait(1) == [(len(up), sha256(up))]
            await m.system.at()
    src.stop()


@trio_test
async def test_data_arriving_while_entering_passthrough():
    # the source sends at once: bytes come before the prompt (as +IPD), in the
    # same read as ">" and after it (raw); all of them are the stream's
    data = TRICKY * 50 + deterministic_bytes(60_000)
    with tcp_source(data, close=False) as src:
        async with module() as m:
            await joined(m)
            async with m.net.passthrough("127.0.0.1", src.port) as stream:
                assert await _read_exactly(stream, len(data)) == data


@trio_test
async def test_refused_while_links_or_a_server_are_open():
    with tcp_echo_server() as echo:
        async with module() as m:
            await joined(m)
            link = await m.net.open_tcp("127.0.0.1", echo.port)
            with pytest.raises(E.LinkLimitError, match="close link"):
                async with m.net.passthrough("127.0.0.1", echo.port):
                    pass
            await link.aclose()
            server = await m.net.listen(8081)
            with pytest.raises(E.LinkLimitError, match="server"):
                async with m.net.passthrough("127.0.0.1", echo.port):
                    pass
            await server.aclose()
            with pytest.raises(ValueError):
                async with m.net.passthrough("127.0.0.1", echo.port, kind="SSL"):
                    pass
            # a refused connect leaves the engine as it was
            with pytest.raises(E.ConnectError):
                async with m.net.passthrough("127.0.0.1", 1):
                    pass
            assert m.engine.mux is True and m.engine.passthrough_session is None
            assert (await m.net.transfer_mode()).mode == 0
            link = await m.net.open_tcp("127.0.0.1", echo.port)
            await link.aclose()


@trio_test
async def test_udp_passthrough():
    srv = _UdpEcho()
    try:
        async with module() as m:
            await joined(m)
            async with m.net.passthrough("127.0.0.1", srv.port, kind="UDP",
                                         local_port=40123) as stream:
                for dgram in (b"one", TRICKY, deterministic_bytes(1400)):
                    await stream.send_all(dgram)
                    assert await _read_exactly(stream, len(dgram)) == dgram
            await m.system.at()
            assert m.engine.mux is True
    finally:
        srv.stop()


@trio_test
async def test_ready_line_in_the_data_is_checked_and_kept(caplog):
    # "\r\nready\r\n" is what a reset module prints: the engine asks the module
    # (+++, AT+CIPMODE?) and, still in passthrough, goes on without losing a byte
    caplog.set_level(logging.INFO, logger="wizsock.engine")
    payload = b"before\r\nready\r\nafter" + deterministic_bytes(5000)
    with tcp_echo_server() as echo:
        async with module() as m:
            await joined(m)
            async with m.net.passthrough("127.0.0.1", echo.port) as stream:
                await _echo_round(stream, payload)
                await _echo_round(stream, b"still here")
            assert m.engine.reset_count == 0
            assert "was data; resuming" in caplog.text
            await m.system.at()


@trio_test
async def test_module_reset_fails_the_session_and_the_engine_recovers():
    with tcp_echo_server() as echo:
        async with module() as m:
            await joined(m)
            emu = m.engine._port.emulator
            with pytest.raises(E.ModuleReset):
                async with m.net.passthrough("127.0.0.1", echo.port) as stream:
                    await _echo_round(stream, b"hello")
                    await trio.to_thread.run_sync(
                        lambda: trio.from_thread.run_sync(emu.reset, trio_token=emu._token))
                    with trio.fail_after(10):
                        while True:
                            await stream.receive_some(100)
            assert m.engine.reset_count == 1
            with trio.fail_after(10):
                await m.system.at()
                link = await m.net.open_tcp("127.0.0.1", echo.port)   # AP re-joined, mux=1
            await link.send(b"x")
            assert await link.receive(10) == b"x"
            await link.aclose()


@trio_test
async def test_unread_data_beyond_rx_limit_ends_the_session():
    with tcp_echo_server() as echo:
        async with module(rx_limit=8192) as m:
            await joined(m)
            with pytest.raises(E.BufferOverflow):
                async with m.net.passthrough("127.0.0.1", echo.port) as stream:
                    await stream.send_all(deterministic_bytes(30_000))
                    got = b""
                    with trio.fail_after(10):
                        await trio.sleep(0.5)
                        while True:
                            got += await stream.receive_some(65536)
            assert got == deterministic_bytes(len(got)) and len(got) >= 8192
            await m.system.at()
            assert m.engine.mux is True and m.engine.passthrough_session is None


def test_blocking_module():
    with tcp_echo_server() as echo:
        with wizsock.Module(emu_url(BAUD), baudrate=BAUD) as m:
            m.wifi.set_mode(1)
            m.wifi.join("wizsock-lab", "wizsock123")
            with m.net.passthrough("127.0.0.1", echo.port) as stream:
                stream.send_all(TRICKY)
                got = b""
                while len(got) < len(TRICKY):
                    got += stream.receive_some(65536)
                assert got == TRICKY
            m.system.at()
            assert m.net.transfer_mode().mode == 0
