"""Behaviour of the real part: one command at a time, busy, URCs at boundaries, SEND OK timing,
extra bytes after the prompt, resets, flash persistence, passthrough, UDP, server, send buffer."""
import socket
import threading
import time

import serial

from emulator.atclient import AT
from emulator.conftest import EchoServer, free_port, join, open_at

WORLD = {
    "aps": [{"ssid": "wizsock-lab", "password": "wizsock123", "ecn": 3, "rssi": -45,
             "mac": "00:08:dc:5a:1a:01", "channel": 6, "wps": 1, "ip": "192.168.10.23"}],
    "dns": {"lab.wizsock.test": "127.0.0.1"},
    "scan_time": 1.0,
}


def test_busy_p_while_a_command_runs(make_emu):
    emu = make_emu(world=WORLD)
    at = open_at(emu)
    at.ok(b"AT+CWMODE_CUR=1")
    at.port.write(b"AT+CWLAP\r\n")
    at.expect(b"AT+CWLAP\r\n")  # the echo: the scan has begun
    at.port.write(b"AT\r\n")
    out = at.expect(b"\r\nOK\r\n", timeout=15)
    assert b"busy p..." in out
    assert out.index(b"busy p...") < out.index(b"+CWLAP:")


def test_send_ok_waits_one_rtt_and_urcs_between_prompt_and_send_ok(make_emu, echo_server):
    emu = make_emu(rtt=0.3)
    at = open_at(emu)
    join(at)
    at.ok(b'AT+CIPSTART="TCP","127.0.0.1",%d' % echo_server.port)
    at.port.write(b"AT+CIPSEND=5\r\n")
    at.expect(b">")
    t0 = time.monotonic()
    at.port.write(b"hello")
    time.sleep(0.1)
    at.port.write(b"AT\r\n")  # input while the send is in flight
    out = at.expect(b"SEND OK\r\n")
    assert time.monotonic() - t0 >= 0.3
    assert b"Recv 5 bytes" in out
    assert b"busy s..." in out
    # the echo crosses the network back after the request crossed it (issue 10's timing
    # model): the acknowledgement is ahead of it on the way back, so SEND OK comes first
    at.read_until(lambda b: at.rx.get(None) == b"hello" or None, timeout=5)
    # (the order as written to the UART, from the emulator's event log)
    order = [ev for _, ev, _, _ in emu.events if ev in ("send_ok", "ipd")]
    assert order == ["send_ok", "ipd"]


def test_extra_bytes_after_prompt_are_following_input(make_emu, echo_server):
    emu = make_emu()
    at = open_at(emu)
    join(at)
    at.ok(b'AT+CIPSTART="TCP","127.0.0.1",%d' % echo_server.port)
    at.port.write(b"AT+CIPSEND=3\r\n")
    at.expect(b">")
    at.port.write(b"abcAT+CIPMUX?\r\n")
    out = at.expect(b"SEND OK\r\n")
    # the rest is input that came while the module was sending: "busy s..." (firmware)
    assert b"Recv 3 bytes" in out and b"busy s..." in out
    # after SEND OK the same bytes are a command again
    at.port.write(b"AT+CIPSEND=3\r\n")
    at.expect(b">")
    at.port.write(b"xyz")
    at.expect(b"SEND OK\r\n")
    time.sleep(0.05)
    at.port.write(b"AT+CIPMUX?\r\n")
    assert b"+CIPMUX:0" in at.expect(b"OK\r\n")
    assert at.ipd(6) == b"abcxyz"


def test_rst_drops_links_and_prints_ready(make_emu, echo_server):
    emu = make_emu()
    at = open_at(emu)
    join(at)
    at.ok(b"AT+CIPMUX=1")
    at.ok(b'AT+CIPSTART=0,"TCP","127.0.0.1",%d' % echo_server.port)
    echo_server.accepted.wait(2)
    at.port.write(b"AT+RST\r\n")
    at.expect(b"OK\r\n")
    at.wait_ready()
    conn = echo_server.conns[0]
    deadline = time.monotonic() + 2
    while conn.fileno() != -1 and time.monotonic() < deadline:  # the server saw EOF and closed
        time.sleep(0.01)
    assert conn.fileno() == -1
    assert b"+CIPMUX:0" in at.ok(b"AT+CIPMUX?")      # _CUR settings are gone
    assert b"STATUS:5" in at.ok(b"AT+CIPSTATUS")


def test_def_settings_persist_in_flash_cur_do_not(make_emu, tmp_path):
    flash = str(tmp_path / "f.json")
    emu = make_emu(flash=flash)
    at = open_at(emu)
    at.ok(b"AT+CWMODE_DEF=1")
    at.ok(b"AT+CWMODE_CUR=3")
    assert b"+CWMODE_CUR:3" in at.ok(b"AT+CWMODE_CUR?")
    assert b"+CWMODE_DEF:1" in at.ok(b"AT+CWMODE_DEF?")
    at.ok(b'AT+CWJAP_DEF="wizsock-lab","wizsock123"')
    at.port.write(b"AT+RST\r\n")
    at.expect(b"OK\r\n")
    at.wait_ready()
    assert b"+CWMODE_CUR:1" in at.ok(b"AT+CWMODE_CUR?")
    # CWAUTOCONN=1 (factory): the module rejoins the saved AP on boot
    at.expect(b"WIFI GOT IP\r\n")
    at.port.close()
    emu.stop()
    # a new module on the same flash file
    emu2 = make_emu(flash=flash)
    at2 = open_at(emu2)
    assert b"+CWMODE_DEF:1" in at2.ok(b"AT+CWMODE_DEF?")
    at2.expect(b"WIFI GOT IP\r\n")
    assert b'+CWJAP_CUR:"wizsock-lab"' in at2.ok(b"AT+CWJAP_CUR?")
    at2.ok(b"AT+CWAUTOCONN=0")
    factory_mac = emu2.state.flash["stamac"]
    at2.ok(b'AT+CIPSTAMAC_DEF="00:08:dc:01:02:03"')
    at2.port.write(b"AT+RESTORE\r\n")  # type 0: only the Station MAC
    at2.expect(b"OK\r\n")
    at2.wait_ready()
    assert b'+CIPSTAMAC_DEF:"%s"' % factory_mac.encode() in at2.ok(b"AT+CIPSTAMAC_DEF?")
    assert b"+CWMODE_DEF:1" in at2.ok(b"AT+CWMODE_DEF?")
    at2.port.write(b"AT+RESTORE=1\r\n")  # everything
    at2.expect(b"OK\r\n")
    at2.wait_ready()
    assert b"+CWMODE_DEF:2" in at2.ok(b"AT+CWMODE_DEF?")
    assert b"+CWAUTOCONN:1" in at2.ok(b"AT+CWAUTOCONN?")


def test_echo_off_and_on(at):
    assert at.ok(b"AT").startswith(b"AT\r\n")
    at.ok(b"ATE0")
    assert not at.ok(b"AT").startswith(b"AT")
    at.ok(b"ATE1")
    assert at.ok(b"AT").startswith(b"AT\r\n")
    assert at.cmd(b"ATE2").endswith(b"ERROR\r\n")


def test_gslp_is_deaf_then_ready(at):
    at.ok(b"AT+GSLP=1000")
    t0 = time.monotonic()
    at.port.write(b"AT\r\n")  # nobody listens
    at.wait_ready()
    assert time.monotonic() - t0 >= 0.95
    assert b"OK" not in at.buf
    at.ok(b"AT")


def test_passthrough_mode(make_emu, echo_server):
    emu = make_emu()
    at = open_at(emu)
    join(at)
    at.ok(b"AT+CIPMODE=1")
    assert at.cmd(b"AT+CIPMUX=1").endswith(b"ERROR\r\n")
    at.ok(b'AT+CIPSTART="TCP","127.0.0.1",%d' % echo_server.port)
    at.port.write(b"AT+CIPSEND\r\n")
    at.expect(b">")
    data = bytes(range(256)) * 20
    at.port.write(data)
    got = at.read_until(lambda b: len(b) >= len(data) or None, 10)
    assert at.buf[:len(data)] == data  # raw, no +IPD framing
    assert bytes(echo_server.received) == data
    at.buf = b""
    time.sleep(0.1)
    at.port.write(b"+++")
    time.sleep(0.2)
    at.ok(b"AT")
    at.ok(b"AT+CIPMODE=0")
    at.ok(b"AT+CIPCLOSE")
    del got


def test_udp_modes_and_cipdinfo(make_emu):
    emu = make_emu()
    at = open_at(emu)
    join(at)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(3)
    at.ok(b"AT+CIPDINFO=1")
    assert b"+CIPDINFO:TRUE" in at.ok(b"AT+CIPDINFO?")
    at.ok(b"AT+CIPMUX=1")
    at.ok(b'AT+CIPSTART=3,"UDP","127.0.0.1",%d,%d,2' % (peer.getsockname()[1], free_port()))
    at.send(3, b"dgram-1")
    d, addr = peer.recvfrom(100)
    assert d == b"dgram-1"
    peer.sendto(b"reply", addr)
    assert at.ipd(5, link=3) == b"reply"
    assert at.remotes[-1] == ("127.0.0.1", peer.getsockname()[1])
    # mode 2: the destination follows whoever sent last
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    other.settimeout(3)
    other.sendto(b"move", addr)
    assert at.ipd(4, link=3) == b"move"
    at.send(3, b"to-other")
    assert other.recvfrom(100)[0] == b"to-other"
    # explicit destination with CIPSEND
    head = b'AT+CIPSEND=3,2,"127.0.0.1",%d' % peer.getsockname()[1]
    at.port.write(head + b"\r\n")
    at.expect(b">")
    at.port.write(b"hi")
    at.expect(b"SEND OK\r\n")
    assert peer.recvfrom(100)[0] == b"hi"
    st = at.ok(b"AT+CIPSTATUS")
    assert b'+CIPSTATUS:3,"UDP","127.0.0.1"' in st
    at.ok(b"AT+CIPCLOSE=3")


def test_server_connect_data_close_and_maxconn(make_emu):
    emu = make_emu()
    at = open_at(emu)
    join(at, mux=True)
    at.ok(b"AT+CIPSERVERMAXCONN=1")
    assert b"+CIPSERVERMAXCONN:1" in at.ok(b"AT+CIPSERVERMAXCONN?")
    port = free_port()
    at.ok(b"AT+CIPSERVER=1,%d" % port)
    c = socket.create_connection(("127.0.0.1", port))
    at.expect(b"0,CONNECT\r\n")
    c.sendall(b"from-client")
    assert at.ipd(11, link=0) == b"from-client"
    at.send(0, b"from-module")
    c.settimeout(3)
    assert c.recv(100) == b"from-module"
    # over the limit: closed at once
    c2 = socket.create_connection(("127.0.0.1", port))
    c2.settimeout(3)
    assert c2.recv(10) == b""
    assert b',"TCP","127.0.0.1",' in at.ok(b"AT+CIPSTATUS")
    c.close()
    at.expect(b"0,CLOSED\r\n")
    assert at.cmd(b"AT+CIPMUX=0").endswith(b"ERROR\r\n")  # server still running
    at.ok(b"AT+CIPSERVER=0")
    at.ok(b"AT+CIPMUX=0")


def test_cipsto_closes_idle_server_links(make_emu):
    emu = make_emu()
    at = open_at(emu)
    join(at, mux=True)
    at.ok(b"AT+CIPSTO=1")
    assert b"+CIPSTO:1" in at.ok(b"AT+CIPSTO?")
    at.ok(b"AT+CIPSERVER=1,%d" % free_port())
    port = emu.net.server[2]
    c = socket.create_connection(("127.0.0.1", port))
    at.expect(b"0,CONNECT\r\n")
    at.expect(b"0,CLOSED\r\n", timeout=5)
    c.close()


def test_cipsendbuf_segments_and_acks(make_emu):
    srv = EchoServer(echo=False)
    emu = make_emu(rtt=0.05)
    at = open_at(emu)
    join(at, mux=True)
    at.ok(b'AT+CIPSTART=1,"TCP","127.0.0.1",%d' % srv.port)
    seen = b""
    for i in range(1, 4):
        at.port.write(b"AT+CIPSENDBUF=1,100\r\n")
        head = at.expect(b">")
        assert b"\r\n%d," % i in head  # <current segment id>,<last acknowledged>
        seen += head
        at.port.write(bytes([i]) * 100)  # no waiting for SEND OK: that is the point
    seen += at.read_until(lambda b: (seen + b).count(b",SEND OK") == 3 or None, 5) and at.buf
    for i in range(1, 4):
        assert b"1,%d,SEND OK\r\n" % i in seen
    assert b"4,3,3,21900," in at.ok(b"AT+CIPBUFSTATUS=1")
    assert b"1,2,TRUE" in at.ok(b"AT+CIPCHECKSEQ=1,2")
    assert b"1,9,FALSE" in at.ok(b"AT+CIPCHECKSEQ=1,9")
    at.ok(b"AT+CIPBUFRESET=1")
    assert b"1,0,0,21900," in at.ok(b"AT+CIPBUFSTATUS=1")
    time.sleep(0.1)
    assert bytes(srv.received) == b"\x01" * 100 + b"\x02" * 100 + b"\x03" * 100
    # a buffer that cannot take the data
    assert at.cmd(b"AT+CIPSENDBUF=4,10").endswith(b"ERROR\r\n")  # no such link
    srv.close()


def test_cipsendex_backslash_zero_ends_data(make_emu, echo_server):
    emu = make_emu()
    at = open_at(emu)
    join(at)
    at.ok(b'AT+CIPSTART="TCP","127.0.0.1",%d' % echo_server.port)
    at.port.write(b"AT+CIPSENDEX=100\r\n")
    at.expect(b">")
    at.port.write(b"short\\0")
    out = at.expect(b"SEND OK\r\n")
    assert b"Recv 5 bytes" in out
    assert at.ipd(5) == b"short"


def test_link_errors(make_emu, echo_server):
    emu = make_emu()
    at = open_at(emu)
    join(at, mux=True)
    r = at.cmd(b"AT+CIPSEND=2,5")
    assert b"link is not valid" in r and r.endswith(b"ERROR\r\n")
    at.ok(b'AT+CIPSTART=2,"TCP","127.0.0.1",%d' % echo_server.port)
    r = at.cmd(b'AT+CIPSTART=2,"TCP","127.0.0.1",%d' % echo_server.port)
    assert b"ALREADY CONNECTED" in r and r.endswith(b"ERROR\r\n")
    assert at.cmd(b"AT+CIPSEND=2,2049").endswith(b"ERROR\r\n")
    assert at.cmd(b'AT+CIPSTART=5,"TCP","127.0.0.1",1').endswith(b"ERROR\r\n")
    assert at.cmd(b'AT+CIPSTART=1,"TCP","127.0.0.1",%d' % free_port()).endswith(b"ERROR\r\n")
    r = at.cmd(b'AT+CIPSTART=1,"TCP","no.such.name.invalid",80')
    assert b"DNS Fail" in r
    for i in (0, 1, 3, 4):
        at.ok(b'AT+CIPSTART=%d,"TCP","lab.wizsock.test",%d' % (i, echo_server.port))
    r = at.ok(b"AT+CIPCLOSE=5")
    assert all(b"%d,CLOSED" % i in r for i in range(5))


def test_dns_world_then_host(at):
    assert b'+CIPDOMAIN:"127.0.0.1"' in at.ok(b'AT+CIPDOMAIN="lab.wizsock.test"')
    assert b'+CIPDOMAIN:"127.0.0.1"' in at.ok(b'AT+CIPDOMAIN="localhost"')
    r = at.cmd(b'AT+CIPDOMAIN="no.such.name.invalid"')
    assert b"DNS Fail" in r and r.endswith(b"ERROR\r\n")


def test_ping_loopback(at):
    join(at)
    r = at.ok(b'AT+PING="127.0.0.1"')
    assert r.split(b"\r\n")[1].startswith(b"+")
    assert int(r.split(b"\r\n")[1][1:]) < 1000


def test_pty_and_tcp_transport_survive_host_reconnect(make_emu):
    emu = make_emu()
    path = emu.serve_pty()
    p = serial.Serial(path, baudrate=emu.baud, timeout=0.05)
    a = AT(p)
    a.sync()
    p.close()
    p = serial.Serial(path, baudrate=emu.baud, timeout=0.05)
    a = AT(p)
    a.sync()
    p.close()


def test_concurrent_urcs_from_threads(at):
    emu = at.port.emulator
    def spam():
        for i in range(50):
            emu.urc(b"+STA_CONNECTED:\"18:cf:5e:00:00:%02x\"" % i)
    threads = [threading.Thread(target=spam) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    at.read_until(lambda b: b.count(b"+STA_CONNECTED") == 150 or None, 5)
    at.ok(b"AT")


def test_passthrough_reconnects_a_broken_link(make_emu):
    srv = EchoServer(echo=False)
    emu = make_emu()
    at = open_at(emu)
    join(at)
    at.ok(b"AT+CIPMODE=1")
    at.ok(b'AT+CIPSTART="TCP","127.0.0.1",%d' % srv.port)
    at.port.write(b"AT+CIPSEND\r\n")
    at.expect(b">")
    at.port.write(b"first")
    deadline = time.monotonic() + 3
    while bytes(srv.received) != b"first" and time.monotonic() < deadline:
        time.sleep(0.01)
    srv.conns[0].shutdown(socket.SHUT_RDWR)  # the peer drops the connection
    time.sleep(0.2)
    at.port.write(b"second")
    deadline = time.monotonic() + 3
    while bytes(srv.received) != b"firstsecond" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert bytes(srv.received) == b"firstsecond" and len(srv.conns) == 2
    assert b"CLOSED" not in at.buf + at.port.read(100)  # passthrough output stays pure
    time.sleep(0.1)
    at.port.write(b"+++")
    time.sleep(0.2)
    at.ok(b"AT")
    srv.close()


def test_dns_names_ignore_case_and_special_use_names_stay_local(at, monkeypatch):
    import socket as _socket

    def no_host_resolver(*a, **k):
        raise AssertionError(f"host resolver asked for {a[0]!r}")

    monkeypatch.setattr(_socket, "getaddrinfo", no_host_resolver)
    assert b'+CIPDOMAIN:"127.0.0.1"' in at.ok(b'AT+CIPDOMAIN="LAB.Wizsock.TEST."')
    assert b'+CIPDOMAIN:"127.0.0.1"' in at.ok(b'AT+CIPDOMAIN="printer.localhost"')
    for name in (b"unknown.wizsock.test", b"no.such.name.invalid", b"www.example"):
        r = at.cmd(b'AT+CIPDOMAIN="%s"' % name)
        assert b"DNS Fail" in r and r.endswith(b"ERROR\r\n"), name


def test_connect_is_printed_before_the_first_data_of_a_connection(make_emu):
    """A server that speaks first (a banner): its +IPD never overtakes <id>,CONNECT.
    A host takes data on an id before its CONNECT for the id's previous connection."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                return
            c.sendall(b"banner\r\n")
            c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    emu = make_emu()
    at = open_at(emu)
    join(at, mux=True)
    try:
        for i in range(15):
            at.port.write(b'AT+CIPSTART=%d,"TCP","127.0.0.1",%d\r\n' % (i % 5, port))
            raw = b""
            end = time.monotonic() + 5
            while b"CLOSED\r\n" not in raw and time.monotonic() < end:
                raw += at.port.read(max(1, at.port.in_waiting))
            connect = raw.find(b"%d,CONNECT" % (i % 5))
            ipd = raw.find(b"+IPD,%d," % (i % 5))
            assert 0 <= connect < ipd, raw
    finally:
        stop.set()
        srv.close()
