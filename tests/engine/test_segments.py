"""The CIPSENDBUF segment counter is 16 bits on real firmware: after segment 65535 the
module answers ERROR and does not wrap (WIZnet forum topic 9959). The emulator
reproduces it (`segment_limit`, lowered here to stay fast); the engine resets the
counter with AT+CIPBUFRESET so an upload of any length goes through byte-exact."""
import pytest
import trio

from wizsock.emulator import Emulator
from wizsock.engine import open_module

from engine.helpers import BAUD, joined, read_all, sha, trio_test
from support.servers import deterministic_bytes, tcp_sink


async def _upload(emu, segments, size, link_limit=None):
    data = deterministic_bytes(segments * size)
    with tcp_sink(reply=len(data)) as sink:
        async with open_module(emu.url, baudrate=BAUD) as m:
            await joined(m)
            link = await m.net.open_tcp("127.0.0.1", sink.port)
            if link_limit is not None:
                link.segment_limit = link_limit
            for i in range(segments):   # each send waits until the module took it: one segment each
                await link.send(data[i * size:(i + 1) * size])
            with trio.fail_after(60):
                answer = await read_all(link)
            await link.aclose()
    assert answer == f"{len(data)} {sha(data)}\n".encode()
    assert emu.event_counts["send_ok"] == segments and emu.event_counts["sent"] == segments
    return [seg for _, ev, _, seg in emu.events if ev == "send_ok"]   # the latest ones


def _emulator(tmp_path, limit):
    return Emulator(baudrate=BAUD, boot_delay=0.02, pace_input=False, segment_limit=limit,
                    flash=str(tmp_path / "flash.json")).start()


@pytest.mark.parametrize("engine_knows", [True, False], ids=["reset-before-limit", "reset-on-error"])
@trio_test
async def test_upload_past_the_segment_counter_limit_is_byte_exact(tmp_path, engine_knows):
    limit, segments = 40, 300
    emu = _emulator(tmp_path, limit)
    try:
        acks = await _upload(emu, segments, 64, link_limit=limit if engine_knows else None)
    finally:
        emu.stop()
    # the module's counter ran 1..limit, restarted after each reset, never past the limit
    assert acks == [i % limit + 1 for i in range(segments)]


def test_emulator_refuses_the_segment_after_the_limit_and_resets(tmp_path):
    import serial
    from emulator.atclient import AT
    emu = _emulator(tmp_path, 3)
    try:
        with tcp_sink() as sink:
            port = serial.serial_for_url(emu.url, baudrate=BAUD, timeout=0.05)
            at = AT(port)
            at.wait_ready()
            at.ok(b"AT+CWMODE_CUR=1")
            at.ok(b'AT+CWJAP_CUR="wizsock-lab","wizsock123"')
            at.ok(b'AT+CIPSTART="TCP","127.0.0.1",%d' % sink.port)
            for seg in (1, 2, 3):
                assert b"%d,%d\r\n" % (seg, seg - 1) in at.ok(b"AT+CIPSENDBUF=4")
                at.expect(b">")
                port.write(b"abcd")
                at.expect(b"%d,SEND OK\r\n" % seg)
            assert at.cmd(b"AT+CIPSENDBUF=4").endswith(b"ERROR\r\n")   # no wrap to 0 or 1
            at.ok(b"AT+CIPBUFRESET")
            assert b"1,0\r\n" in at.ok(b"AT+CIPSENDBUF=4")
            at.expect(b">")
            port.write(b"efgh")
            at.expect(b"1,SEND OK\r\n")
            port.close()
    finally:
        emu.stop()


@pytest.mark.soak
@trio_test
async def test_upload_of_more_than_65536_segments_at_the_real_limit(tmp_path):
    emu = _emulator(tmp_path, 65535)
    try:
        acks = await _upload(emu, 65540, 8)
    finally:
        emu.stop()
    # the last acknowledgements: ..., 65534, 65535 (the 16-bit limit), reset, 1 .. 5
    assert acks[-7:] == [65534, 65535, 1, 2, 3, 4, 5]


@trio_test
async def test_a_stream_fed_in_odd_pieces_goes_in_whole_segments(tmp_path):
    """Every CIPSENDBUF segment costs a prompt round trip of idle UART.  Sends of 3000
    bytes (as a socket pair hands data over: not multiples of 2048) used to go as
    2048 + 952 each; while the UART still carries a payload the short tail now waits
    for the next send, so all segments but the last are whole, and nothing is lost."""
    emu = Emulator(baudrate=921600, boot_delay=0.02, pace_input=True, log_traffic=True,
                   flash=str(tmp_path / "flash.json")).start()
    try:
        data = deterministic_bytes(3000 * 10)
        with tcp_sink(reply=len(data)) as sink:
            async with open_module(emu.url, baudrate=921600) as m:
                await joined(m)
                link = await m.net.open_tcp("127.0.0.1", sink.port)
                for i in range(0, len(data), 3000):
                    await link.send(data[i:i + 3000])
                with trio.fail_after(60):
                    answer = await read_all(link)
                await link.aclose()
        assert answer == f"{len(data)} {sha(data)}\n".encode()
        sizes = [int(line.rstrip().rsplit(b",", 1)[1]) for line in emu.command_lines
                 if line.startswith(b"AT+CIPSENDBUF=")]
    finally:
        emu.stop()
    assert sum(sizes) == len(data)
    assert sizes[:-1] == [2048] * (len(sizes) - 1), sizes
