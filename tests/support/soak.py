"""Connect / exchange / close cycles for the memory soak (issue 21): the CI leak test
(tests/engine/test_soak_memory.py) and the soak benchmark (bench/bench_soak.py) drive
the same cycles and measure them the same way.

A cycle opens one connection, sends a payload, reads it back byte-exact and closes:
TCP client links with AT+CIPSENDBUF and with AT+CIPSEND, UDP client links, TCP server
links (a loopback client connects to the module's AT+CIPSERVER port) and facade
sockets (``wizsock.socket``) over the module (a pump) and kept on the kernel (a relay).  The peers
are plain kernel sockets on 127.0.0.1, served by one thread, so they add no thread
or descriptor per connection to what is measured.

Memory is measured with tracemalloc, split by who allocated: a trace whose stack
passes through the emulator (``wizsock/emulator``, the ``wizemu://`` port's far end)
is the emulator's, any other the host's (engine, facade, trio, the peers).
"""
from __future__ import annotations

import contextlib
import gc
import os
import selectors
import socket as _std
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import trio

from wizsock import _orig

KINDS = ("tcp-sendbuf", "tcp-send", "udp", "server", "facade", "relay")
PAYLOAD = 100
#: frames kept per trace: deep enough to reach the emulator's own frame from trio's
#: channel, task and socket internals it calls (the attribution above needs it)
TRACE_FRAMES = 24
EMULATOR_PATHS = ("*/wizsock/emulator/*", "*/wizsock/urlhandler/protocol_wizemu.py")


def payload(i: int, n: int = PAYLOAD) -> bytes:
    """Distinct bytes per cycle, so a late or misrouted echo cannot pass as this one's."""
    head = b"%08d:" % i
    return (head + bytes((i + k) % 251 for k in range(n)))[:n]


class EchoPeers:
    """TCP and UDP echo on 127.0.0.1, one selector thread, kernel sockets (created
    through ``wizsock._orig``: a facade in this process never takes them over)."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.tcp = self._listener()
        self.kernel = self._listener()   # reached by facade sockets kept on the kernel
        self.udp = _orig.socket(_std.AF_INET, _std.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.setblocking(False)
        self.tcp_port = self.tcp.getsockname()[1]
        self.kernel_port = self.kernel.getsockname()[1]
        self.udp_port = self.udp.getsockname()[1]
        self._wake_r, self._wake_w = _orig.socketpair()
        self.sel.register(self.tcp, selectors.EVENT_READ, "accept")
        self.sel.register(self.kernel, selectors.EVENT_READ, "accept")
        self.sel.register(self.udp, selectors.EVENT_READ, "udp")
        self.sel.register(self._wake_r, selectors.EVENT_READ, "stop")
        self.accepted = 0
        self._thread = threading.Thread(target=self._run, name="test-soak-peers", daemon=True)
        self._thread.start()

    @staticmethod
    def _listener():
        sock = _orig.socket(_std.AF_INET, _std.SOCK_STREAM)
        sock.setsockopt(_std.SOL_SOCKET, _std.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.setblocking(False)
        return sock

    def _run(self) -> None:
        while True:
            for key, _ in self.sel.select():
                what = key.data
                if what == "stop":
                    return
                if what == "accept":
                    try:
                        conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                    except BlockingIOError:
                        continue
                    conn.setblocking(False)
                    self.accepted += 1
                    self.sel.register(conn, selectors.EVENT_READ, "conn")
                elif what == "udp":
                    try:
                        data, addr = self.udp.recvfrom(65536)
                        self.udp.sendto(data, addr)
                    except OSError:
                        pass
                else:
                    conn = key.fileobj
                    try:
                        data = conn.recv(65536)
                        if data:
                            conn.sendall(data)   # 100 bytes: the socket buffer takes them
                            continue
                    except OSError:
                        pass
                    self.sel.unregister(conn)
                    conn.close()

    def close(self) -> None:
        self._wake_w.send(b"x")
        self._thread.join(5)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.sel.close()
        self._wake_w.close()


async def _receive_exactly(link, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        part = await link.receive(n - len(buf))
        if not part:
            break
        buf += part
    return buf


async def client_cycle(m, peers: EchoPeers, i: int, kind: str) -> None:
    """A client link to the echo peer: TCP (AT+CIPSENDBUF or AT+CIPSEND) or UDP."""
    data = payload(i)
    if kind == "udp":
        link = await m.net.open_udp("127.0.0.1", peers.udp_port)
    else:
        link = await m.net.open_tcp("127.0.0.1", peers.tcp_port, pipelined=kind == "tcp-sendbuf")
    try:
        await link.send(data)
        # a datagram comes back whole; a stream may come in pieces
        got = await (link.receive(65536) if kind == "udp" else _receive_exactly(link, len(data)))
    finally:
        await link.aclose()
    if got != data:
        raise AssertionError(f"cycle {i}: {kind} echo {got[:20]!r}... != {data[:20]!r}...")


async def server_cycle(server, port: int, i: int) -> None:
    """A loopback client connects to the module's server; the host echoes."""
    data = payload(i)
    got = b""

    async def client() -> None:
        nonlocal got
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        try:
            await stream.send_all(data)
            while len(got) < len(data):
                part = await stream.receive_some(65536)
                if not part:
                    break
                got += part
        finally:
            await stream.aclose()

    async def host() -> None:
        link = await server.accept()
        try:
            await link.send(await _receive_exactly(link, len(data)))
            # the client closes after the echo: the link ends with the module's CLOSED
            while await link.receive(65536):
                pass
        finally:
            await link.aclose()

    with trio.fail_after(60):
        async with trio.open_nursery() as n:
            n.start_soon(host)
            n.start_soon(client)
    if got != data:
        raise AssertionError(f"cycle {i}: server echo {got[:20]!r}... != {data[:20]!r}...")


def facade_cycle(module, peers: EchoPeers, i: int, relay: bool = False) -> None:
    """A facade socket: over the module (its pump), or kept on the kernel (a relay)."""
    from wizsock import socket as wsocket
    data = payload(i)
    s = wsocket.create_connection(("127.0.0.1", peers.kernel_port if relay else peers.tcp_port),
                                  timeout=60)
    try:
        # (a relayed one cannot be told apart this way: the previous link's release
        # may still be under way)
        if not relay and not module.aio.net.links:
            raise AssertionError(f"cycle {i}: the facade connection did not go over the module")
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            part = s.recv(65536)
            if not part:
                break
            got += part
    finally:
        s.close()
    if got != data:
        raise AssertionError(f"cycle {i}: facade echo {got[:20]!r}... != {data[:20]!r}...")


class Cycler:
    """Runs cycles of the given kinds in turn on a blocking ``wizsock.Module``."""

    def __init__(self, module, peers: EchoPeers, kinds=KINDS, server_port: int = 0) -> None:
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown cycle kind(s): {sorted(unknown)}")
        self.m = module
        self.peers = peers
        self.kinds = tuple(kinds)
        self.done = 0
        self.server = None
        self.server_port = server_port
        if "server" in self.kinds:
            if not server_port:
                probe = _orig.socket(_std.AF_INET, _std.SOCK_STREAM)
                probe.bind(("127.0.0.1", 0))
                self.server_port = probe.getsockname()[1]
                probe.close()
            self.server = module.run(module.aio.net.listen, self.server_port)
        self.facade = bool({"facade", "relay"} & set(self.kinds))
        if self.facade:
            from wizsock import socket as wsocket
            wsocket.set_module(module)
            # the echo peer is this soak's network, reached through the module (loopback
            # would stay on the kernel with a real module's port, a pty); the second
            # peer stays on the kernel: those sockets are relayed
            tcp_port = peers.tcp_port
            wsocket.set_routing_policy(lambda ip, port, kind: port == tcp_port)

    def run(self, n: int) -> None:
        for _ in range(n):
            i = self.done
            kind = self.kinds[i % len(self.kinds)]
            if kind in ("facade", "relay"):
                facade_cycle(self.m, self.peers, i, relay=kind == "relay")
            elif kind == "server":
                self.m.run(server_cycle, self.server, self.server_port, i)
            else:
                self.m.run(client_cycle, self.m.aio, self.peers, i, kind)
            self.done += 1

    def close(self) -> None:
        if self.facade:
            from wizsock import socket as wsocket
            if wsocket.get_module() is self.m:
                wsocket.set_module(None)
                wsocket.set_routing_policy(None)


# ------------------------------------------------------------------ measuring
def open_fds(pid: Optional[int] = None) -> int:
    return len(os.listdir(f"/proc/{pid or 'self'}/fd"))


def proc_status(pid: Optional[int] = None) -> Dict[str, int]:
    """VmRSS (bytes) and Threads of a process, from /proc/<pid>/status."""
    out = {}
    with open(f"/proc/{pid or 'self'}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "VmRSS":
                out["rss"] = int(value.split()[0]) * 1024
            elif key == "Threads":
                out["threads"] = int(value)
    out["fds"] = open_fds(pid)
    return out


def split(snap: tracemalloc.Snapshot) -> Dict[str, int]:
    """Bytes a snapshot holds, split into the emulator's and the host's."""
    emu = snap.filter_traces([tracemalloc.Filter(True, p, all_frames=True) for p in EMULATOR_PATHS])
    emu_bytes = sum(s.size for s in emu.statistics("filename"))
    total = sum(s.size for s in snap.statistics("filename"))
    return {"emulator": emu_bytes, "host": total - emu_bytes}


def top_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int = 8) -> List[str]:
    """The lines that grew most, for a failure message that says where to look."""
    return [str(s) for s in after.compare_to(before, "lineno")[:n]]


@dataclass
class Growth:
    cycles: int
    before: Dict[str, int]
    after: Dict[str, int]
    seconds: float
    where: List[str] = field(default_factory=list)

    def per_cycle(self, side: str) -> float:
        return (self.after[side] - self.before[side]) / max(1, self.cycles)


def measure(run: Callable[[int], None], cycles: int, settle: Callable[[], None]) -> Growth:
    """tracemalloc growth over `cycles` (tracemalloc already started, warm-up done)."""
    settle()
    gc.collect()
    snap0 = tracemalloc.take_snapshot()
    t0 = time.monotonic()
    run(cycles)
    seconds = time.monotonic() - t0
    settle()
    gc.collect()
    snap1 = tracemalloc.take_snapshot()
    return Growth(cycles, split(snap0), split(snap1), seconds, top_growth(snap0, snap1))


@contextlib.contextmanager
def tracing(frames: int = TRACE_FRAMES) -> Iterator[None]:
    was = tracemalloc.is_tracing()
    if not was:
        tracemalloc.start(frames)
    try:
        yield
    finally:
        if not was:
            tracemalloc.stop()


def wait_quiet(module, emu=None, timeout: float = 10.0) -> Tuple[int, int]:
    """Wait until neither the engine nor the emulator holds a link; (host, emulator) left."""
    deadline = time.monotonic() + timeout
    while True:
        host_links = len(module.aio.net.links)
        emu_links = len(emu.state.links) + len(emu.net.closing) if emu is not None else 0
        if (not host_links and not emu_links) or time.monotonic() > deadline:
            return host_links, emu_links
        time.sleep(0.02)
