"""The socket facade's own semantics (family/type, addresses, options, connect modes,
close/reset/shutdown, back-pressure, limits, what stays on the kernel, getaddrinfo)."""
import errno
import select
import socket
import threading
import time

import pytest

import wizsock
import wizsock.socket as wsocket
from wizsock.facade import dns_cache, registry, routing
from facade.helpers import BAUD, open_module, read_to_eof
from support.servers import free_port, tcp_source
from wizsock import _orig

MODULE_IP = "192.168.10.23"      # the emulator's default world gives the station this address


def test_describes_itself_like_a_kernel_socket(tcp_echo, patched):
    s = socket.socket()
    assert isinstance(s, wsocket.socket) and isinstance(s, _orig.socket)
    assert socket.SocketType is wsocket.socket
    with s:
        s.settimeout(10)
        s.connect(tcp_echo.address)
        assert (s.family, s.type, s.proto) == (socket.AF_INET, socket.SOCK_STREAM, 0)
        assert s.getpeername() == tcp_echo.address
        ip, port = s.getsockname()
        assert ip == MODULE_IP and 0 < port < 65536
        for level, opt, value in [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
                                  (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
                                  (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30),
                                  (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 5),
                                  (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)]:
            s.setsockopt(level, opt, value)           # never raises
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
        s.sendall(b"hello")
        assert s.recv(5) == b"hello"
        f = s.makefile("rwb")
        f.write(b"line one\nline two\n")
        f.flush()
        assert f.readline() == b"line one\n"
        assert f.readline() == b"line two\n"
        f.close()
        assert "raddr=('127.0.0.1'" in repr(s)
        conn = s._wiz
    assert conn.finished.wait(5) and conn.link.closed


def test_blocking_connect_refused_and_connect_ex(patched):
    port = free_port()
    with socket.socket() as s:
        with pytest.raises(ConnectionRefusedError):
            s.connect(("127.0.0.1", port))
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED


def test_blocking_connect_timeout(patched):
    # a loopback listener whose accept queue is full drops SYNs: the connect hangs
    lsock = _orig.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    fillers = []
    for _ in range(3):
        c = _orig.socket()
        c.setblocking(False)
        c.connect_ex(lsock.getsockname())
        fillers.append(c)
    try:
        with socket.socket() as s:
            s.settimeout(0.5)
            t0 = time.monotonic()
            with pytest.raises(TimeoutError):
                s.connect(lsock.getsockname())
            assert time.monotonic() - t0 < 3
    finally:
        for c in fillers:
            c.close()
        lsock.close()


def test_nonblocking_connect(tcp_echo, patched):
    with socket.socket() as s:
        s.setblocking(False)
        with pytest.raises(BlockingIOError) as ei:
            s.connect(tcp_echo.address)
        assert ei.value.errno == errno.EINPROGRESS
        assert s.connect_ex(tcp_echo.address) == errno.EALREADY
        _, w, _ = select.select([], [s], [], 10)
        assert w == [s]
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        assert s.getpeername() == tcp_echo.address
        s.send(b"ping")
        select.select([s], [], [], 10)
        assert s.recv(10) == b"ping"
        with pytest.raises(OSError) as ei:
            s.connect(tcp_echo.address)
        assert ei.value.errno == errno.EISCONN


def test_nonblocking_connect_refused_reports_so_error(patched):
    with socket.socket() as s:
        s.setblocking(False)
        assert s.connect_ex(("127.0.0.1", free_port())) == errno.EINPROGRESS
        _, w, _ = select.select([], [s], [], 10)
        assert w == [s]
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED


def test_remote_close_gives_eof(patched):
    with _orig.internal():          # the server's own sockets stay on the host
        src_cm = tcp_source(n=30000)
        src = src_cm.__enter__()
    try:
        with socket.create_connection(src.address, timeout=10) as s:
            assert read_to_eof(s) == src.data
            assert s.recv(10) == b""
    finally:
        src_cm.__exit__(None, None, None)


def test_shutdown_write_then_read(tcp_echo, patched):
    s = socket.create_connection(tcp_echo.address, timeout=10)
    conn = s._wiz
    s.sendall(b"abc")
    s.shutdown(socket.SHUT_WR)
    assert s.recv(3) == b"abc"
    with pytest.raises(BrokenPipeError):
        s.send(b"more")
    assert not conn.finished.is_set()      # still open for reading after the half-close
    s.close()
    assert conn.finished.wait(5) and conn.link.closed


def test_small_pump_buffers_track_the_uart(sink, patched):
    with socket.create_connection(sink.address, timeout=10) as s:
        s.settimeout(0.1)
        with pytest.raises(TimeoutError):
            s.sendall(b"z" * 4_000_000)      # 20 s of wire time at 2 Mbaud
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) <= 64 * 1024


def test_more_sockets_than_links_is_a_clear_error(tcp_echo, patched):
    # a sixth connect waits for a link within its own timeout, then names the limit
    socks = []
    try:
        with pytest.raises(OSError) as ei:
            for i in range(7):
                s = socket.socket()
                socks.append(s)
                s.settimeout(10 if i < 5 else 0.5)
                s.connect(tcp_echo.address)
        assert ei.value.errno == errno.EBUSY
        assert "at most 5 connections" in str(ei.value) and "0.5 s" in str(ei.value)
        assert len(socks) <= 6
    finally:
        for s in socks:
            s.close()


def test_what_stays_on_the_kernel(tcp_echo, patched, at_log):
    # AF_UNIX
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"u")
        assert b.recv(1) == b"u"
        assert a._wiz_kernel
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as u:
        assert u._wiz_kernel
    # fileno=
    k = _orig.socket()
    with socket.socket(fileno=k.detach()) as f:
        assert f._wiz_kernel
    # paho's wake-up pair: a loopback listener of this process and a connect to it
    import paho.mqtt.client as mqtt_client
    r, w = mqtt_client._socketpair_compat()
    with r, w:
        r.send(b"0")
        select.select([w], [], [], 5)
        assert w.recv(1) == b"0"
    assert at_log.count("CIPSTART") == 0


def test_a_loopback_bound_socket_connects_to_a_name(tcp_echo, patched, at_log):
    # bound to loopback, the socket stays on the kernel: a name it connects to is resolved
    # first, as the kernel path needs an address (it was handed (None, port): TypeError)
    with socket.socket() as s:
        s.settimeout(10)
        s.bind(("127.0.0.1", 0))
        s.connect(("localhost", tcp_echo.port))
        s.sendall(b"n")
        assert s.recv(1) == b"n"
        assert s.getpeername() == ("127.0.0.1", tcp_echo.port)
    assert at_log.count("CIPSTART") == 0 and at_log.count("CIPDOMAIN") == 0


def test_routing_policy_keeps_destinations_on_the_kernel(tcp_echo, module, at_log):
    keep_local = {tcp_echo.port}
    with wizsock.patched(module, route=lambda ip, port, kind: port not in keep_local):
        with socket.create_connection(tcp_echo.address, timeout=5) as s:
            s.sendall(b"k")
            assert s.recv(1) == b"k"
            assert s.getsockname()[0] == "127.0.0.1"   # the kernel's own connection, relayed
    assert at_log.count("CIPSTART") == 0


def test_getaddrinfo_semantics(patched, at_log):
    # literals: stdlib answers, no AT traffic
    assert socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM) == \
        _orig.getaddrinfo("127.0.0.1", 80, socket.AF_INET, socket.SOCK_STREAM)
    assert socket.getaddrinfo(b"127.1", "80", socket.AF_INET, socket.SOCK_DGRAM)[0][4] == ("127.0.0.1", 80)
    assert socket.gethostbyname("10.1.2.3") == "10.1.2.3"
    with pytest.raises(socket.gaierror) as ei:
        socket.getaddrinfo("lab.wizsock.test", 80, flags=socket.AI_NUMERICHOST)
    assert ei.value.errno == socket.EAI_NONAME
    assert at_log.count("CIPDOMAIN") == 0
    # names: the module resolves them (once; cached)
    wsocket.clear_dns_cache()
    res = socket.getaddrinfo("lab.wizsock.test", 443, 0, socket.SOCK_STREAM, 0, socket.AI_CANONNAME)
    assert res == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "lab.wizsock.test",
                    ("127.0.0.1", 443))]
    assert socket.gethostbyname("lab.wizsock.test") == "127.0.0.1"
    assert at_log.count("CIPDOMAIN") == 1
    # unspecified type: one entry per socket type, as the stdlib gives
    kinds = {r[1] for r in socket.getaddrinfo("lab.wizsock.test", 53)}
    assert {socket.SOCK_STREAM, socket.SOCK_DGRAM} <= kinds
    # a bad service fails without AT traffic
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("lab.wizsock.test", "no-such-service")
    # IPv6: refused the way a host without IPv6 refuses it
    assert all(r[0] == socket.AF_INET for r in socket.getaddrinfo("lab.wizsock.test", 80))
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("lab.wizsock.test", 80, socket.AF_INET6)
    assert socket.getaddrinfo("::1", 80, socket.AF_INET6, socket.SOCK_STREAM)[0][0] == socket.AF_INET6
    with pytest.raises(OSError) as ei:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    assert ei.value.errno == errno.EAFNOSUPPORT
    with pytest.raises(OSError):
        socket.create_connection(("::1", 80), timeout=2)


def test_getaddrinfo_thread_safe(patched, at_log):
    wsocket.clear_dns_cache()
    results, errors = [], []

    def worker(i):
        try:
            name = "lab.wizsock.test" if i % 2 else "localhost"
            results.append(socket.getaddrinfo(name, 80 + i, socket.AF_INET, socket.SOCK_STREAM)[0][4])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert sorted(results) == sorted(("127.0.0.1", 80 + i) for i in range(12))
    assert at_log.count("CIPDOMAIN") == 1
    # the per-name lock of a lookup goes with its last caller (it was kept for every
    # name ever looked up: a process resolving many names grew without bound)
    assert len(dns_cache._dns_inflight) == 0


def test_create_connection_by_name(tcp_echo, patched):
    with socket.create_connection(("lab.wizsock.test", tcp_echo.port), timeout=10) as s:
        s.sendall(b"n")
        assert s.recv(1) == b"n"


# its own module (it restarts it), from the wizsock pytest plugin
@pytest.mark.wizfi360(baud=BAUD)
def test_module_reset_gives_connection_reset(tcp_echo, wizsock_patched):
    s = socket.create_connection(tcp_echo.address, timeout=10)
    s.sendall(b"before")
    assert s.recv(6) == b"before"
    wizsock_patched.system.restart()
    with pytest.raises(ConnectionResetError):
        s.settimeout(10)
        while s.recv(100):
            pass
    s.close()


def test_loopback_stays_on_the_host_with_a_real_module(tcp_echo):
    class RealModule:                 # what the facade looks at to route loopback
        port = "/dev/ttyUSB0"

    handle = registry.Handle(RealModule())
    assert not routing.route_to_module("127.0.0.1", tcp_echo.port, socket.SOCK_STREAM, handle)
    assert routing.route_to_module("192.0.2.10", 80, socket.SOCK_STREAM, handle)
    emulated = registry.Handle(type("Emu", (), {"port": "wizemu://"})())
    assert routing.route_to_module("127.0.0.1", tcp_echo.port, socket.SOCK_STREAM, emulated)


def test_closing_the_module_resets_open_sockets(tcp_echo):
    m = open_module()
    try:
        with wizsock.patched(m):
            s = socket.create_connection(tcp_echo.address, timeout=10)
    finally:
        m.close()
    with s, pytest.raises(ConnectionResetError):
        while s.recv(100):
            pass

