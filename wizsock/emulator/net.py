"""TCP/IP commands of the emulated module (spec §3.3): real sockets behind the links."""
from __future__ import annotations

import functools
import logging
import socket as _socket
import ssl
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Set, Tuple, Union, cast

import trio

from wizsock import protocol as P
from wizsock.emulator import atparse
from wizsock.emulator.commands import get, need_form, number_setting, put, reply
from wizsock.emulator.registry import CommandFailed, Context, handler
from wizsock.protocol import Request
from wizsock.protocol import records as R

if TYPE_CHECKING:
    from wizsock.emulator.core import Emulator

log = logging.getLogger("wizsock.emulator")

MAX_LINKS = 5
#: how long a connection arriving at a full server waits for an earlier one's end
ACCEPT_GRACE = 0.1
MAX_SEND = 2048
SENDBUF_SIZE = 21900
CONNECT_TIMEOUT = 10.0
TCP_WINDOW = 8192      # the module's TCP receive buffer
# Units (a read of <= 1460 bytes, or an acknowledgement) the inbound delay line holds:
# about one receive window in flight, so a host that stops reading still pushes back.
LINE_UNITS = TCP_WINDOW // 1460 + 1
PACKET_GAP = 0.02      # quirk overlong_discard: a pause this long ends a burst of input


#: an address as the module shows it: (ip, port)
Address = Tuple[str, int]
#: a unit on a link's inbound line: ("data", bytes, source address) or ("call", async fn)
Unit = Tuple[Any, ...]

async def tcp_connect(ip: str, port: int) -> trio.SocketStream:
    """A TCP connection with the module's small receive window, so that a host
    that stops reading (flow control) pushes back on the remote peer soon."""
    sock = trio.socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    try:
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, TCP_WINDOW)
        await sock.connect((ip, port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


class Link:
    def __init__(self, net: Net, lid: int, kind: str, remote: Address, local_port: int,
                 tcp_type: int = 0) -> None:
        self.net = net
        self.id = lid
        self.kind = kind
        self.remote = remote            # (ip, port)
        self.local_port = local_port
        self.tcp_type = tcp_type
        self.stream: Optional[trio.abc.Stream] = None    # TCP/SSL
        self.sock: Optional[trio.socket.SocketType] = None   # UDP
        self.udp_mode = 0
        self.udp_changed = False
        self.real = remote              # where the socket really goes (world `nat`)
        self.target: Optional[Tuple[str, str, int, List[Any]]] = None   # as CIPSTART gave it
        self.scope = trio.CancelScope()
        self.closed = False
        #: set once "<id>,CONNECT" is out: a real module prints no +IPD of a connection
        #: before it (the host takes such data for the id's previous connection's)
        self.announced = trio.Event()
        self.last_activity = time.monotonic()
        self.send_lock = trio.Lock()
        # CIPSENDBUF bookkeeping
        self.next_seg = 1
        self.sent_seg = 0
        self.acked_seg = 0
        self.pending = 0
        self.seg_ok: Dict[int, bool] = {}
        self.seg_queue: Optional[_SegmentPipe] = None
        # The network timing model (design.md §5b): every unit crosses the network in
        # emu.one_way() (rtt/2 + jitter), first in first out per link and direction.
        # The inbound line carries the peer's data and its acknowledgements of ours to
        # the host, so SEND OK, +IPD and CLOSED come out in the order the network made.
        self.line: Optional[trio.MemorySendChannel[Tuple[float, Unit]]] = None   # while the link reads
        self._due_in = 0.0
        self._due_out = 0.0

    def due_out(self) -> float:
        """When data leaving the module now reaches the peer (trio clock)."""
        self._due_out = max(self._due_out, trio.current_time() + self.net.emu.one_way())
        return self._due_out

    def _due_in_now(self) -> float:
        self._due_in = max(self._due_in, trio.current_time() + self.net.emu.one_way())
        return self._due_in

    async def arrive(self, unit: Unit) -> bool:
        """Put a unit on the inbound line, due one crossing from now: ("data", bytes, src)
        or ("call", async fn) for an acknowledgement. False if the link reads no more."""
        line = self.line
        if line is None:
            return False
        try:
            await line.send((self._due_in_now(), unit))
            return True
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False

    async def send(self, data: bytes, remote: Optional[Address] = None) -> None:
        self.last_activity = time.monotonic()
        if self.kind == "UDP":
            dest = remote or self.remote
            assert self.sock is not None       # a UDP link has its socket from the start
            await self.sock.sendto(data, self.net.emu.route(*dest))
        else:
            assert self.stream is not None
            await self.stream.send_all(data)

    def close(self) -> None:
        self.net.emu.call_soon(self.scope.cancel)

    # the link's own state, changed by the network and the handlers through these
    def mark_closed(self) -> bool:
        """The link is closing: True the first time, False if it already was."""
        if self.closed:
            return False
        self.closed = True
        return True

    def attach_line(self, line: Optional[trio.MemorySendChannel[Tuple[float, Unit]]]) -> None:
        """The inbound line while the link reads (None when it reads no more)."""
        self.line = line

    def heard_from(self, addr: Optional[Address] = None) -> None:
        """Peer data arrived (from ``addr``: a UDP peer that may have moved, per udp_mode)."""
        self.last_activity = time.monotonic()
        if addr is not None and (self.udp_mode == 2 or (self.udp_mode == 1 and not self.udp_changed)):
            if addr != self.remote:
                self.udp_changed = True
                self.remote = addr

    def segment_taken(self, emu: Emulator, n: int, prefix_link: Optional[int]) -> _SegmentPipe:
        """AT+CIPSENDBUF took ``n`` bytes as segment ``next_seg``: count it, and the pipe
        that carries segments to the peer (made on first use)."""
        self.next_seg += 1
        self.pending += n
        if self.seg_queue is None or self.seg_queue.closed:
            self.seg_queue = _SegmentPipe(emu, self, prefix_link)
        return self.seg_queue

    def segment_sent(self, seg: int) -> None:
        self.sent_seg = seg

    def segment_settled(self, seg: int, n: int, ok: bool) -> None:
        """Segment ``seg`` (``n`` bytes) left the buffer, sent (``ok``) or not."""
        self.pending -= n
        self.seg_ok[seg] = ok

    def segment_acked(self, seg: int) -> None:
        self.acked_seg = seg

    def reset_segments(self) -> None:
        """AT+CIPBUFRESET: the segment count starts again."""
        self.next_seg, self.sent_seg, self.acked_seg = 1, 0, 0
        self.seg_ok.clear()


class Net:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.state = emu.state
        self.server: Optional[Tuple[List[trio.SocketListener], trio.CancelScope, int]] = None
        self.closing: Set[int] = set()  # ids whose CLOSED is not printed yet: not free
        self.last_given = MAX_LINKS - 1  # the id the server gave last ("rotate" starts after it)
        self.pass_target: Optional[Tuple[str, str, int, List[Any]]] = None   # what passthrough reconnects to

    # ----------------------------------------------------------- bookkeeping
    @property
    def links(self) -> Dict[int, Link]:
        return self.state.links

    def free_id(self) -> Optional[int]:
        """The id an accepted connection gets: the lowest free one, free from the moment
        its `<id>,CLOSED` is printed; the host's AT+CIPCLOSE is not awaited.

        Evidence (WIZnet publishes no WizFi360 firmware source; it derives from
        Espressif's ESP8266 AT): Espressif's open AT source (espressif/ESP8266_AT,
        at/user/at_ipCmd.c) clears the slot (`linkEn = FALSE`) in the server link's
        disconnect callback, in the same breath as it prints `%d,CLOSED`, and its accept
        callback `at_tcpserver_listen` takes the first slot with `linkEn == FALSE` from 0
        up.  Later closed-source AT 1.x/2.x behave alike in reports: ESP8266_NONOS_SDK
        issue #50 (an accepted client given the id a pending CIPSTART had chosen), and
        MaJerle's advice there and in esp-at issue #28 ("Server will populate 0, 1, ...":
        start client links from the highest id).  No source shows an id held until the
        host's AT+CIPCLOSE, nor a rotating order; `link_ids="rotate"` (next free id after
        the last one given) is there to test a host against the alternative."""
        start = self.last_given + 1 if self.emu.link_ids == "rotate" else 0
        for k in range(MAX_LINKS):
            i = (start + k) % MAX_LINKS
            if i not in self.links and i not in self.closing:
                return i
        return None

    def closed_line(self, lid: int) -> bytes:
        return b"%d,CLOSED" % lid if self.state.mux else b"CLOSED"

    async def close_link(self, link: Link, notify: bool = True) -> None:
        """Close a link; with `notify`, print `<id>,CLOSED`. The id is given to no new
        connection before that line is out: a real module prints CLOSED first, and a
        host that saw `0,CONNECT` before the old `0,CLOSED` would close the new link."""
        if not link.mark_closed():
            return
        self.closing.add(link.id)
        try:
            if self.links.get(link.id) is link:
                del self.links[link.id]
            self.state.cur["had_link"] = True
            link.scope.cancel()
            if link.seg_queue is not None:
                link.seg_queue.close()      # its sender drains what is queued, then ends
            try:
                if link.stream is not None:
                    with trio.move_on_after(1) as cs:
                        cs.shield = True
                        await link.stream.aclose()
                if link.sock is not None:
                    link.sock.close()
            except Exception:
                pass
            if notify and not (self.state.transparent and link.id == 0):  # passthrough data stays pure
                await self.emu.write_unit(self.closed_line(link.id) + b"\r\n")
                self.emu.note("closed", link.id)
        finally:
            self.closing.discard(link.id)

    async def drop_all(self, silent: bool = True) -> None:
        for link in list(self.links.values()):
            await self.close_link(link, notify=not silent)
        self.links.clear()
        self.stop_server()

    def stop_server(self) -> None:
        if self.server is not None:
            self.server[1].cancel()
            self.server = None

    def enter_passthrough(self, target: Optional[Tuple[str, str, int, List[Any]]]) -> None:
        """AT+CIPSEND (CIPMODE=1): what passthrough reconnects to after a drop."""
        self.pass_target = target

    # --------------------------------------------------------------- opening
    async def open_link(self, lid: int, kind: str, host: str, port: int, extra: Sequence[Any],
                        nursery: trio.Nursery) -> Link:
        emu = self.emu
        st = self.state
        if st.station is None and st.mode == 1:
            raise CommandFailed("ERROR")  # no network to reach anything on
        if lid in self.links or lid in self.closing:
            raise CommandFailed("ERROR", [b"ALREADY CONNECTED"])
        f = emu.faults
        if f and f.hit("limit"):
            raise CommandFailed("ERROR")
        if kind == "SSL" and any(ln.kind == "SSL" for ln in self.links.values()):
            raise CommandFailed("ERROR")  # one SSL session at most
        ip = emu.resolve(host)
        real = emu.route(ip, port)
        if kind == "UDP":
            local_port = extra[0] if extra else 0
            mode = extra[1] if len(extra) > 1 else 0
            sock = trio.socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
            bind = emu.bind_host if real[0].startswith("127.") else "0.0.0.0"
            try:
                await sock.bind((bind, local_port))
            except PermissionError:
                # the module's own stack has no privileged ports (WIZnet's driver and its
                # ESP-AT upstream open UDP with local port 10: Wiznet/WizFi360-EVB-Pico-
                # CircuitPython@6dbc9e4, tests/vendor); the host's may refuse it, so take
                # any and show the asked one
                await sock.bind((bind, 0))
            except OSError:
                sock.close()
                raise CommandFailed("ERROR")
            link = Link(self, lid, "UDP", (ip, port), local_port or sock.getsockname()[1])
            link.sock = sock
            link.udp_mode = mode
            link.real = real
        else:
            stream: Union[trio.SocketStream, trio.SSLStream[trio.SocketStream]]
            try:
                with trio.fail_after(CONNECT_TIMEOUT):
                    stream = await tcp_connect(*real)
            except (OSError, trio.TooSlowError):
                emu.urc(self.closed_line(lid))
                raise CommandFailed("ERROR")
            local_port = stream.socket.getsockname()[1]
            if kind == "SSL":
                stream = await self._tls(stream, host, real)
            link = Link(self, lid, kind, (ip, port), local_port)
            link.real = real
            link.stream = stream
        link.target = (kind, host, port, list(extra))
        self.links[lid] = link
        nursery.start_soon(self._reader, link)
        return link

    def _tls_context(self, verify: bool) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        ca = self.state.flash.get("ca")
        # verification uses only the CA given with AT+CASEND, as the module does
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if ca:
            try:
                ctx.load_verify_locations(cadata=ca)
            except ssl.SSLError:
                pass
        return ctx

    async def _tls(self, tcp: trio.SocketStream, host: str, real: Address) -> trio.SSLStream[trio.SocketStream]:
        mode = self.state.flash.get("sslconf", 0)
        stream = trio.SSLStream(tcp, self._tls_context(mode != 0), server_hostname=host)
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                await stream.do_handshake()
            return stream
        except (trio.BrokenResourceError, ssl.SSLError, trio.TooSlowError, OSError):
            await trio.aclose_forcefully(tcp)
            if mode != 1:
                raise CommandFailed("ERROR")
        # mode 1: verification failed, connect anyway
        tcp = await tcp_connect(*real)
        stream = trio.SSLStream(tcp, self._tls_context(False), server_hostname=host)
        try:
            await stream.do_handshake()
        except (trio.BrokenResourceError, ssl.SSLError, OSError):
            await trio.aclose_forcefully(tcp)
            raise CommandFailed("ERROR")
        return stream

    # --------------------------------------------------------------- reading
    async def _reader(self, link: Link) -> None:
        with link.scope:
            send, recv = trio.open_memory_channel(LINE_UNITS)
            link.attach_line(send)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._deliver, link, recv)
                    async with send:  # closed at the end of the stream: the line drains, then CLOSED
                        await self._read(link)
            except Exception:  # whatever breaks a link must not take the module down
                log.exception("link %d reader failed", link.id)
        link.attach_line(None)
        if link.scope.cancelled_caught and link.closed:
            return
        if not link.closed:
            await self.close_link(link)

    async def _deliver(self, link: Link, recv: trio.MemoryReceiveChannel[Tuple[float, Unit]]) -> None:
        """The inbound line's far end: each unit reaches the UART when it is due."""
        emu, st = self.emu, self.state
        await link.announced.wait()
        async for due, unit in recv:
            await trio.sleep_until(due)
            if unit[0] == "call":
                await unit[1]()
                continue
            _, data, src = unit

            def out(data: bytes = data, src: Optional[Address] = src) -> bytes:
                # Decided as it goes out: AT+CIPSEND may enter passthrough
                # while this unit waits for the UART.
                if st.transparent:
                    return data
                remote = src if st.cur.get("cipdinfo") else None
                return b"\r\n" + atparse.format_ipd(
                    link.id if st.mux else None, data, remote=remote, mux=bool(st.mux))
            await emu.write_unit(out)
            emu.note("ipd", link.id, len(data))

    async def _read(self, link: Link) -> None:
        """Peer data onto the inbound line until the stream ends."""
        data: Union[bytes, bytearray]
        try:
            while True:
                if link.kind == "UDP":
                    assert link.sock is not None
                    data, addr = await link.sock.recvfrom(65536)
                    addr = self.unroute(addr[:2], link)
                    link.heard_from(addr[:2])
                    src = addr[:2]
                else:
                    assert link.stream is not None
                    data = await link.stream.receive_some(1460)
                    if not data:
                        break
                    src = link.remote
                    link.heard_from()
                await link.arrive(("data", data, src))
                f = self.emu.faults
                if f and link.kind != "UDP" and f.hit("early_close"):
                    break
        except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError):
            pass

    def unroute(self, addr: Address, link: Link) -> Address:
        """The module-visible address of a datagram's real source (inverse of `nat`)."""
        if tuple(addr) == tuple(getattr(link, "real", ())):
            return link.remote
        for key, target in self.emu.world.get("nat", {}).items():
            host, sep, p = str(target).rpartition(":")
            if sep and (host, int(p)) == tuple(addr):
                kh, ksep, kp = key.rpartition(":")
                return (kh, int(kp)) if ksep else (key, addr[1])
        return addr

    # ------------------------------------------------------------ transparent
    async def passthrough(self) -> None:
        """UART-WiFi passthrough: packets end at a 20 ms gap or 2048 bytes; "+++" alone exits."""
        emu = self.emu
        buf = emu.inbuf
        while not buf.data:
            await buf.wait()
        while True:
            n = len(buf.data)
            if n >= MAX_SEND:
                break
            with trio.move_on_after(0.02) as cs:
                await buf.wait()
            if cs.cancelled_caught:
                break
        pkt = bytes(buf.data[:MAX_SEND])
        del buf.data[:len(pkt)]
        if pkt == b"+++":
            await trio.sleep(0.05)
            self.state.transparent = False
            self.pass_target = None
            return
        link = self.links.get(0)
        if (link is None or link.closed) and self.pass_target is not None:
            # spec 3.3.18: in passthrough a broken TCP link is re-established until +++
            kind, host, port, extra = self.pass_target
            try:
                with trio.move_on_after(1):
                    link = await self.open_link(0, kind, host, port, extra, emu.life)
                    link.announced.set()        # passthrough: no CONNECT, pure data
            except CommandFailed:
                link = None
        if link is not None and not link.closed:
            try:
                await trio.sleep_until(link.due_out())
                await link.send(pkt)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass

    async def boot_translink(self, tl: List[Any]) -> None:
        _, host, port, kind, extra = (tl + [None, None, None, None])[:5]
        st = self.state
        for _ in range(100):
            if st.station is not None:
                break
            await trio.sleep(0.05)
        try:
            link = await self.open_link(0, kind or "TCP", host, port,
                                        [extra] if kind == "UDP" and extra else [], self.emu.life)
        except CommandFailed:
            return
        link.announced.set()                    # passthrough: no CONNECT, pure data
        st.cur["cipmode"] = 1
        self.pass_target = self.links[0].target
        st.transparent = True
        self.emu.inbuf.changed()

    # ---------------------------------------------------------------- server
    async def start_server(self, port: int) -> None:
        listeners = await trio.open_tcp_listeners(port, host=self.emu.bind_host)
        scope = trio.CancelScope()
        self.server = (listeners, scope, port)

        async def serve() -> None:
            with scope:
                async with trio.open_nursery() as n:
                    for lst in listeners:
                        n.start_soon(self._accept_loop, lst)
                    n.start_soon(self._idle_reaper)
            for lst in listeners:
                await trio.aclose_forcefully(lst)

        self.emu.life.start_soon(serve)

    async def _accept_loop(self, listener: trio.SocketListener) -> None:
        st = self.state
        while True:
            try:
                stream = await listener.accept()
            except OSError:  # e.g. out of descriptors: keep serving
                await trio.sleep(0.1)
                continue
            lid, nserv = self._server_room()
            if lid is None or nserv >= st.cur["servermaxconn"]:
                # a real stack handles a client's FIN before its next SYN; here the old
                # connection's reader may not have run yet: its end gets a moment
                with trio.move_on_after(ACCEPT_GRACE):
                    while lid is None or nserv >= st.cur["servermaxconn"]:
                        await trio.sleep(0.002)
                        lid, nserv = self._server_room()
            if lid is None or nserv >= st.cur["servermaxconn"]:
                await trio.aclose_forcefully(stream)
                continue
            peer = stream.socket.getpeername()[:2]
            link = Link(self, lid, "TCP", peer, stream.socket.getsockname()[1], tcp_type=1)
            link.stream = stream
            self.links[lid] = link
            self.last_given = lid
            # written before the link reads, so its first +IPD cannot overtake it
            await self.emu.write_unit(b"%d,CONNECT\r\n" % lid)
            self.emu.note("connect", lid)
            link.announced.set()
            self.emu.life.start_soon(self._reader, link)

    def _server_room(self) -> Tuple[Optional[int], int]:
        return self.free_id(), sum(1 for ln in self.links.values() if ln.tcp_type == 1)

    async def _idle_reaper(self) -> None:
        while True:
            await trio.sleep(0.5)
            sto = self.state.cur["cipsto"]
            if not sto:
                continue
            now = time.monotonic()
            for link in list(self.links.values()):
                if link.tcp_type == 1 and now - link.last_activity > sto:
                    await self.close_link(link)


# -------------------------------------------------------------------- helpers
def _net(ctx: Context) -> Net:
    return ctx.emulator.net


def _link_id(ctx: Context, req: Request, single_ignores: bool = False) -> int:
    """The link a multi-connection command names. The codec reads a leading link id
    wherever the line has one (`req.link`); whether the module takes one is its CIPMUX
    state's call, behaviour rather than syntax: multi-connection mode needs it, single
    mode refuses it (or, `single_ignores`, reads past it: AT+CIPBUFSTATUS=0) and means 0."""
    if ctx.state.mux:
        if req.link is None:
            raise CommandFailed("ERROR")
        return req.link
    if req.link is not None and not single_ignores:
        raise CommandFailed("ERROR")
    return 0


def _need_link(ctx: Context, lid: Optional[int]) -> Link:
    link = None if lid is None else ctx.state.links.get(lid)
    if link is None or link.closed:
        if ctx.state.mux:
            raise CommandFailed("ERROR", [b"link is not valid"])
        raise CommandFailed("ERROR")
    return link


# ------------------------------------------------------------------ commands
@handler("CIPSTATUS")
async def cipstatus(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "execute")
    st = ctx.state
    if st.station is None:
        stat = 5
    elif st.links:
        stat = 3
    elif st.cur.get("had_link"):
        stat = 4
    else:
        stat = 2
    links = tuple(R.LinkStatus(lid, ln.kind, ln.remote[0], ln.remote[1], ln.local_port, ln.tcp_type)
                  for lid, ln in sorted(st.links.items()))
    await reply(ctx, req, R.ConnectionStatus(stat, links))
    return "OK"


@handler("CIPDOMAIN")
async def cipdomain(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "set")
    await trio.sleep(ctx.emulator.rtt)
    ip = ctx.resolve(req["domain"])
    await reply(ctx, req, R.DomainAddress(ip))
    return "OK"


@handler("CIPDNS_CUR", "CIPDNS_DEF")
async def cipdns(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "set")
    if req.form == "query":
        en, servers = get(ctx, req, "dns")
        await reply(ctx, req, R.DnsServers(tuple(servers)))
        return "OK"
    en = req["enable"]
    servers = [x for x in (req["dns0"], req["dns1"]) if x is not None]
    if en == 0:
        servers = ["208.67.220.220"]
    elif not servers:
        servers = ["208.67.222.222"]
    put(ctx, req, "dns", [en, servers])
    return "OK"


@handler("CIPSTART")
async def cipstart(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "set")
    st = ctx.state
    lid = _link_id(ctx, req)
    kind, host, port = req["type"], req["remote"], req["port"]
    extra = []
    if kind == "UDP":
        extra = [p for p in (req["local_port"], req["mode"]) if p is not None]
        if st.cur["cipmode"] == 1 and req.get("mode", 0) != 0:
            raise CommandFailed("ERROR")   # passthrough (AT+CIPMODE=1) takes UDP mode 0 only
    elif kind == "SSL" and st.cur["cipmode"] == 1:
        raise CommandFailed("ERROR")       # SSL does not support passthrough
    link = await _net(ctx).open_link(lid, kind, host, port, extra, ctx.emulator.life)
    try:
        await ctx.send_line(b"%d,CONNECT" % lid if st.mux else b"CONNECT")
    finally:
        link.announced.set()
    return "OK"


@handler("CIPSSLSIZE")
async def cipsslsize(ctx: Context, req: Request) -> Optional[str]:
    return await number_setting(ctx, req, "sslsize", R.SslBufferSize)


@handler("CIPSSLCONF")
async def cipsslconf(ctx: Context, req: Request) -> Optional[str]:
    return await number_setting(ctx, req, "sslconf", R.SslConfig, persist=True)


@handler("CASEND")
async def casend(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "set")
    st = ctx.state
    if req.form == "query":
        ca = st.flash.get("ca")
        if not ca:
            raise CommandFailed("ERROR")
        await reply(ctx, req, R.Pem(ca))
        return "OK"
    if req["mode"] == 0:
        st.flash["ca"] = None
        return "OK"
    await ctx.prompt()
    data = await ctx.read_data(until=b"-----END CERTIFICATE-----", timeout=60)
    text = data.decode("ascii", "replace")
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise CommandFailed("ERROR")
    pem = text[text.index("-----BEGIN CERTIFICATE-----"):].replace("\r\n", "\n")
    try:
        ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError):
        raise CommandFailed("ERROR")
    st.flash["ca"] = pem + "\n"
    return "OK"


async def _send_common(ctx: Context, req: Request, ex: bool = False) -> Optional[str]:
    st = ctx.state
    emu = ctx.emulator
    if req.form == "execute" and req.name == "CIPSEND":
        # passthrough
        if st.cur["cipmode"] != 1 or st.mux:
            raise CommandFailed("ERROR")
        link = _need_link(ctx, 0)
        if link.kind == "SSL":
            raise CommandFailed("ERROR")
        await ctx.write(b"\r\nOK\r\n")
        await ctx.write(b">")
        _net(ctx).enter_passthrough(link.target)
        st.transparent = True
        return None
    need_form(req, "set")
    if st.cur["cipmode"] == 1:
        raise CommandFailed("ERROR")  # CIPMODE=1: only the passthrough form AT+CIPSEND
    lid = _link_id(ctx, req)
    n = req["length"]
    link = _need_link(ctx, lid)
    remote = None
    if req["remote"] is not None:
        if link.kind != "UDP":
            raise CommandFailed("ERROR")   # a remote address only for a UDP link
        remote = (emu.resolve(req["remote"]), req["port"])
    await ctx.write(b"\r\nOK\r\n")
    await ctx.write(b"> ")
    if ex:
        data = await ctx.read_data(n=n, until=b"\\0")
        if data.endswith(b"\\0"):
            data = data[:-2]
    else:
        data = await ctx.read_data(n=n)
    emu.sending_data()
    await ctx.write(b"\r\nRecv %d bytes\r\n" % len(data))
    if emu.profile.send_ok:
        await emu.hold(emu.profile.send_ok)   # a timing profile: the module's time to send
    f = emu.faults
    if f and f.hit("sendfail"):
        await trio.sleep(emu.rtt)
        return "SEND FAIL"
    # SEND OK means the peer acknowledged: the data crosses the network, the
    # acknowledgement comes back on the inbound line, behind the peer data before it
    emu.note("sent", link.id, len(data))
    await trio.sleep_until(link.due_out())
    sent, done, ok = trio.Event(), trio.Event(), cast(List[bool], [])

    async def acknowledged() -> None:
        await sent.wait()
        if ok:
            if f and f.hit("delay_sendok"):
                await trio.sleep(f.rng.uniform(0.05, 0.5))
            await ctx.write(b"\r\nSEND OK\r\n")
            emu.note("send_ok", link.id)
        done.set()
    # the acknowledgement takes its place on the line before the data goes: a reply
    # the peer sends at once must queue behind it
    queued = await link.arrive(("call", acknowledged))
    try:
        async with link.send_lock:
            await link.send(data, remote)
        ok.append(True)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    finally:
        sent.set()
    if not ok:
        return "SEND FAIL"
    if queued:
        while not done.is_set() and not link.closed:
            with trio.move_on_after(0.05):
                await done.wait()
        if done.is_set():
            return None
    else:
        await trio.sleep(emu.one_way())
    return "SEND OK"  # the data left before any close: the peer's stack acknowledged it


@handler("CIPSEND")
async def cipsend(ctx: Context, req: Request) -> Optional[str]:
    return await _send_common(ctx, req)


@handler("CIPSENDEX")
async def cipsendex(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "set")
    return await _send_common(ctx, req, ex=True)


@handler("CIPSENDBUF", "CIPSENDERBUF")
async def cipsendbuf(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "set")
    st = ctx.state
    emu = ctx.emulator
    lid = _link_id(ctx, req)
    n = req["length"]
    link = _need_link(ctx, lid)
    if link.kind != "TCP" or link.pending + n > SENDBUF_SIZE:
        raise CommandFailed("ERROR")
    if link.next_seg > emu.segment_limit:
        raise CommandFailed("ERROR")  # the 16-bit counter: no wrap (core.SEGMENT_LIMIT)
    seg = link.next_seg
    # the answer and the prompt in one unit, as the firmware prints them: no URC between,
    # and one scheduling round before the host may send (the upload's turnaround)
    lines = P.format_response(req.name, req.form, R.BufferSegment(seg, link.acked_seg))
    await ctx.write(b"".join(ln + b"\r\n" for ln in lines) + b"\r\nOK\r\n> ")
    data = await ctx.read_data(n=n)
    if emu.quirk("overlong_discard"):
        await _discard_overlong(ctx)
    pipe = link.segment_taken(emu, n, lid if st.mux else None)
    pipe.put(seg, data)
    if link.closed:
        # closed while the module read the segment: it fails as a queued one does,
        # and the pipe ends with it rather than outliving the link
        pipe.close()
    return None


async def _discard_overlong(ctx: Context) -> None:
    """Quirk `overlong_discard` (spec 3.3.9): bytes after <length> in the same burst
    (a 20 ms gap ends it, as a passthrough packet) are dropped and answered busy."""
    emu = ctx.emulator
    await trio.sleep(PACKET_GAP)
    if emu.inbuf.data:
        emu.inbuf.data.clear()
        await ctx.send_line(b"busy s...")


class _SegmentPipe:
    """CIPSENDBUF: segments leave in order, each reaches the peer one crossing after
    the module took it, and its acknowledgement comes back on the link's inbound line.
    The pipe lives as long as its link: `close()` at the link's close lets the sender
    task answer what is queued (SEND FAIL, the link is gone) and end."""

    def __init__(self, emu: Emulator, link: Link, prefix_link: Optional[int]) -> None:
        self.emu = emu
        self.link = link
        self.prefix = b"" if prefix_link is None else b"%d," % prefix_link
        self.gen = emu.generation
        self.closed = False
        self.tx_send, tx_recv = trio.open_memory_channel[Tuple[int, bytes, float]](float("inf"))
        emu.life.start_soon(self._sender, tx_recv)

    def put(self, seg: int, data: bytes) -> None:
        self.emu.note("sent", self.link.id, len(data))
        self.tx_send.send_nowait((seg, data, self.link.due_out()))

    def close(self) -> None:
        self.closed = True
        self.tx_send.close()

    async def _sender(self, rx: trio.MemoryReceiveChannel[Tuple[int, bytes, float]]) -> None:
        link = self.link
        async for seg, data, due in rx:
            await trio.sleep_until(due)
            sent, ok = trio.Event(), cast(List[bool], [])
            ack = functools.partial(self._acknowledged, seg, len(data), ok, sent)
            # queued before the data goes, so an immediate reply comes after it
            queued = await link.arrive(("call", ack))
            try:
                async with link.send_lock:
                    await link.send(data)
                ok.append(True)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
            finally:
                sent.set()
            link.segment_sent(seg)
            if not queued:
                # the link reads no more (closed): the acknowledgement still comes
                await trio.sleep(self.emu.one_way())
                await ack(urc=True)

    async def _acknowledged(self, seg: int, n: int, sent_ok: List[bool], sent: trio.Event,
                            urc: bool = False) -> None:
        await sent.wait()
        ok = bool(sent_ok)
        link, emu = self.link, self.emu
        # the segment left before any close: the peer's stack acknowledged it (a
        # peer answering and closing at once must not turn it into SEND FAIL)
        link.segment_settled(seg, n, ok)
        if emu.generation != self.gen:
            return
        line = self.prefix + b"%d,SEND OK" % seg if ok else b"SEND FAIL"
        if ok:
            link.segment_acked(seg)
            emu.note("send_ok", link.id, seg)
        if urc:
            emu.urc(line)
        else:
            await emu.write_unit(line + b"\r\n")


@handler("CIPBUFRESET")
async def cipbufreset(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "execute", "set")
    link = _need_link(ctx, _link_id(ctx, req, single_ignores=True))
    if link.pending or link.next_seg - link.sent_seg != 1:
        raise CommandFailed("ERROR")
    link.reset_segments()
    return "OK"


@handler("CIPBUFSTATUS")
async def cipbufstatus(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "execute", "set")
    link = _need_link(ctx, _link_id(ctx, req, single_ignores=True))
    if link.kind != "TCP":
        raise CommandFailed("ERROR")
    queue = max(0, 7 - (link.next_seg - 1 - link.acked_seg))
    await reply(ctx, req, R.BufferStatus(link.next_seg, link.sent_seg, link.acked_seg,
                                         SENDBUF_SIZE - link.pending, queue))
    return "OK"


@handler("CIPCHECKSEQ")
async def cipcheckseq(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "set")
    st = ctx.state
    lid = _link_id(ctx, req)
    seg = req["segment"]
    link = _need_link(ctx, lid)
    await reply(ctx, req, R.SegmentCheck(lid if st.mux else None, seg, bool(link.seg_ok.get(seg))))
    return "OK"


@handler("CIPCLOSE")
async def cipclose(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "execute", "set")
    st = ctx.state
    net = _net(ctx)
    if (req.form == "set") != bool(st.mux):
        raise CommandFailed("ERROR")   # a link id in multi-connection mode, none in single mode
    lid = req.link if st.mux else 0
    if lid == 5:
        if net.server is not None:
            return "OK"  # spec 3.3.13: in server mode, ID 5 has no effect
        for link in sorted(list(st.links.values()), key=lambda x: x.id):
            await net.close_link(link)
        return "OK"
    link = _need_link(ctx, lid)
    await net.close_link(link)
    return "OK"


@handler("CIFSR")
async def cifsr(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "execute")
    st = ctx.state
    ap = st.mode in (2, 3)
    sta = st.mode in (1, 3)
    await reply(ctx, req, R.LocalAddresses(
        st.cur["ap_ip"][0] if ap else None, st.cur["apmac"] if ap else None,
        (st.station_ip or "0.0.0.0") if sta else None, st.cur["stamac"] if sta else None))
    return "OK"


@handler("CIPMUX")
async def cipmux(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "set")
    st = ctx.state
    if req.form == "query":
        await reply(ctx, req, R.MuxMode(st.mux))
        return "OK"
    m = req["mode"]
    if m == st.mux:
        return "OK"
    if st.links:
        raise CommandFailed("ERROR", [b"link is builded"])
    if m == 1 and st.cur["cipmode"] == 1:
        raise CommandFailed("ERROR")
    if m == 0 and _net(ctx).server is not None:
        raise CommandFailed("ERROR")
    st.mux = m
    st.cur["cipmux"] = m
    return "OK"


@handler("CIPSERVER")
async def cipserver(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "set")
    st = ctx.state
    net = _net(ctx)
    if req["mode"] == 0:
        if net.server is not None:
            net.stop_server()
        elif ctx.emulator.quirk("no_change"):
            await ctx.send_line(b"no change")   # wizsock.emulator.quirks: ESP8266 AT 1.3
        return "OK"
    port = req.get("port", 333)
    if not st.mux:
        raise CommandFailed("ERROR")
    if net.server is not None:
        if net.server[2] == port:
            return "OK"
        raise CommandFailed("ERROR")
    try:
        await net.start_server(port)
    except OSError:
        raise CommandFailed("ERROR")
    return "OK"


@handler("CIPSERVERMAXCONN")
async def cipservermaxconn(ctx: Context, req: Request) -> Optional[str]:
    return await number_setting(ctx, req, "servermaxconn", R.ServerMaxConn)


@handler("CIPMODE")
async def cipmode(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "set")
    st = ctx.state
    if req.form == "query":
        await reply(ctx, req, R.TransferMode(st.cur["cipmode"]))
        return "OK"
    m = req["mode"]
    if m == 1 and (st.mux or _net(ctx).server is not None):
        raise CommandFailed("ERROR")
    if m == 1 and any(ln.kind == "SSL" for ln in st.links.values()):
        raise CommandFailed("ERROR")
    st.cur["cipmode"] = m
    return "OK"


@handler("SAVETRANSLINK")
async def savetranslink(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "set")
    if req["mode"] == 0:
        ctx.state.flash["translink"] = None
        return "OK"
    kind = req.get("type", "TCP")
    extra = req["local_port"] if kind == "UDP" else req["keepalive"]
    ctx.state.flash["translink"] = [1, req["remote"], req["port"], kind, extra]
    return "OK"


@handler("CIPSTO")
async def cipsto(ctx: Context, req: Request) -> Optional[str]:
    return await number_setting(ctx, req, "cipsto", R.ServerTimeout)


@handler("PING")
async def ping(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "set")
    host = req["host"]
    emu = ctx.emulator
    if ctx.state.station is None:
        raise CommandFailed("ERROR", P.format_response("PING", "set", R.PingResult(None)))
    try:
        ip = ctx.resolve(host)
    except CommandFailed:
        raise CommandFailed("ERROR", P.format_response("PING", "set", R.PingResult(None)))
    t0 = time.monotonic()
    reached = False
    try:
        with trio.move_on_after(2) as cs:
            # ICMP needs privileges: a TCP connection attempt is answered by the
            # host's stack (SYN-ACK or RST) one round trip later; either means alive
            s = trio.socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
            try:
                await s.connect((ip, 7))
            finally:
                s.close()
        reached = not cs.cancelled_caught
    except ConnectionRefusedError:
        reached = True
    except OSError:
        reached = False
    if not reached or time.monotonic() - t0 >= 2:
        raise CommandFailed("ERROR", P.format_response("PING", "set", R.PingResult(None)))
    await trio.sleep(emu.rtt)
    ms = int(round((time.monotonic() - t0) * 1000))
    await reply(ctx, req, R.PingResult(ms))
    return "OK"


@handler("CIPDINFO")
async def cipdinfo(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "set")
    if req.form == "query":
        await reply(ctx, req, R.IpdInfo(bool(ctx.state.cur["cipdinfo"])))
        return "OK"
    ctx.state.cur["cipdinfo"] = req["mode"]
    return "OK"


