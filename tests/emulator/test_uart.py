"""UART model: output pacing at the baud rate, hardware flow control, baud mismatch, UART_CUR."""
import socket
import threading
import time

import serial

from emulator.atclient import AT
from emulator.conftest import join, open_at


def test_output_pacing_within_1_percent_over_1_mib(make_emu):
    """1 MiB of module output (+IPD of data a real TCP peer pushes) at 2,000,000 baud."""
    baud = 2000000
    emu = make_emu(baudrate=baud)
    at = open_at(emu)
    join(at)
    total = 1 << 20
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def push():
        c, _ = srv.accept()
        c.sendall(b"\xa5" * total)
        time.sleep(30)
        c.close()

    threading.Thread(target=push, daemon=True).start()
    at.ok(b'AT+CIPSTART="TCP","127.0.0.1",%d' % srv.getsockname()[1])
    port = at.port
    first = None
    n = 0
    # what the AT client already read past the OK counts too (not for the rate)
    payload = len(at.rx.pop(None, b"")) + at.buf.count(b"\xa5")
    buf = b""
    deadline = time.monotonic() + 30
    # count raw UART bytes from the first to the last one; payload bytes tell when we are done
    while payload < total and time.monotonic() < deadline:
        chunk = port.read(max(1, port.in_waiting))
        if not chunk:
            continue
        now = time.monotonic()
        if first is None:
            first = now
            first_len = len(chunk)
        last = now
        n += len(chunk)
        buf = (buf + chunk)[-64:]
        payload += chunk.count(b"\xa5")
    assert payload == total
    elapsed = last - first
    rate = (n - first_len) * 10 / elapsed
    print(f"pacing: {n} bytes in {elapsed:.3f} s -> {rate:.0f} baud (nominal {baud})")
    assert abs(rate - baud) / baud < 0.01, rate
    srv.close()


def test_hardware_flow_control_backpressure(make_emu):
    emu = make_emu()
    at = open_at(emu)
    join(at)
    at.ok(b"AT+UART_CUR=2000000,8,1,0,1")
    total = 400_000
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    progress = {"sent": 0, "done": False}

    def push():
        c, _ = srv.accept()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        data = bytes(range(256)) * (total // 256) + bytes(range(total % 256))
        for i in range(0, total, 4096):
            c.sendall(data[i:i + 4096])
            progress["sent"] = i + 4096
        progress["done"] = True
        time.sleep(30)

    threading.Thread(target=push, daemon=True).start()
    at.port.rts = False
    at.port.write(b'AT+CIPSTART="TCP","127.0.0.1",%d\r\n' % srv.getsockname()[1])
    time.sleep(1.0)
    held = at.port.in_waiting
    assert held == 0, "module talked while RTS was off"
    assert not progress["done"], "no back-pressure reached the peer"
    assert progress["sent"] < total // 2
    at.port.rts = True
    at.expect(b"OK\r\n")
    expected = bytes(range(256)) * (total // 256) + bytes(range(total % 256))
    assert at.ipd(total) == expected  # nothing lost
    # flow control off again: RTS is ignored
    at.ok(b"AT+UART_CUR=2000000,8,1,0,0")
    at.port.rts = False
    at.ok(b"AT")


def test_baud_mismatch_is_garbage_both_ways(make_emu):
    emu = make_emu(baudrate=115200 * 8)
    port = serial.serial_for_url(emu.url, baudrate=115200, timeout=0.2)
    port.write(b"AT\r\n")
    time.sleep(0.3)
    junk = port.read(4096)
    assert b"OK" not in junk and b"ready" not in junk
    port.baudrate = 921600
    at = AT(port)
    at.sync()
    port.close()


def test_uart_cur_switches_rate_after_ok(make_emu):
    emu = make_emu(baudrate=2000000)
    at = open_at(emu)
    r = at.ok(b"AT+UART_CUR=921600,8,1,0,0")
    assert r.endswith(b"OK\r\n")  # the OK still came at the old rate
    time.sleep(0.05)
    at.port.baudrate = 921600
    assert at.ok(b"AT+UART_CUR?").count(b"+UART_CUR:921600,8,1,0,0") == 1
    # _CUR is lost at reset, _DEF survives
    at.ok(b"AT+UART_DEF=460800,8,1,0,0")  # takes effect now, too
    time.sleep(0.05)
    at.port.baudrate = 460800
    at.port.write(b"AT+RST\r\n")
    at.expect(b"OK\r\n")
    at.wait_ready()
    assert b"+UART_CUR:460800" in at.ok(b"AT+UART_CUR?")


def test_invalid_uart_settings(at):
    for bad in (b"AT+UART_CUR=12345,8,1,0,0", b"AT+UART_CUR=115200,9,1,0,0",
                b"AT+UART_CUR=115200,8,3,0,0", b"AT+UART_CUR=115200,8,1,3,0",
                b"AT+UART_CUR=115200,8,1,0,2", b"AT+UART_CUR=115200,8,1,0"):
        assert at.cmd(bad).endswith(b"ERROR\r\n"), bad


def test_input_pacing_option(make_emu, echo_server):
    """With pace_input, 2048 bytes after the prompt take 2048 * 10 / baud to arrive."""
    baud = 230400
    emu = make_emu(baudrate=baud, pace_input=True)
    at = open_at(emu, timeout=0.02)
    join(at)
    at.ok(b'AT+CIPSTART="TCP","127.0.0.1",%d' % echo_server.port)
    at.port.write(b"AT+CIPSEND=2048\r\n")
    at.expect(b">")
    t0 = time.monotonic()
    at.port.write(b"q" * 2048)
    at.expect(b"Recv 2048 bytes")
    took = time.monotonic() - t0
    assert took >= 2048 * 10 / baud * 0.95, took
