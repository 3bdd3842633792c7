"""``wizsock socks [--port URL] [--listen 127.0.0.1:1080]``: a SOCKS5 proxy over the module.

Programs that are not Python (curl, git, ssh, a browser) reach the network
through the module: each SOCKS connection is one TCP link of the module.

- RFC 1928 CONNECT to an IPv4 address or a domain name; names are resolved by
  the module (AT+CIPSTART with the name), never by the host.
- Methods: no authentication, or username/password (RFC 1929) with ``--user``
  (the password comes from ``WIZSOCK_SOCKS_PASSWORD`` or ``--password-stdin``,
  never from the command line).
- UDP ASSOCIATE: datagrams from the client (from the address of its TCP
  connection) go out through one module UDP link per association (opened at the
  first datagram, mode 2 so each datagram names its destination), answers come
  back with their sender; fragments (FRAG != 0) and IPv6 are dropped, as RFC 1928
  allows; the module sends at most 2048 bytes per datagram.  The association, and
  its link, end with the client's TCP connection.
- BIND is answered ``0x07 command not supported``; IPv6 destinations get ``0x08``.
- The module has five links.  A CONNECT that finds none free waits for one of
  this proxy's connections to end, up to ``--link-wait`` seconds, then gets
  ``0x01 general failure``.
- Listens on loopback by default; a non-loopback address needs ``--user`` (or
  ``--open`` to run an unauthenticated proxy on purpose).
- No half-close on the module: after the client's EOF (a half-close or a close,
  which look alike) the remote's data is still relayed for ``--eof-grace``
  seconds (default 5), then the link is closed; a remote close ends the client
  connection at once.
"""
from __future__ import annotations

import argparse
import functools
import hmac
import ipaddress
import logging
import os
import random
import re
import signal
import socket
import struct
import sys
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple, Union

import trio

from wizsock import errors as E

__all__ = ["Credentials", "Proxy", "serve", "add_arguments", "run", "REPLY"]

log = logging.getLogger("wizsock.socks")

VERSION = 5
# RFC 1928 section 6 reply codes
REPLY = {
    "succeeded": 0x00,
    "general failure": 0x01,
    "not allowed": 0x02,
    "network unreachable": 0x03,
    "host unreachable": 0x04,
    "connection refused": 0x05,
    "ttl expired": 0x06,
    "command not supported": 0x07,
    "address type not supported": 0x08,
}
NO_AUTH, USER_PASS, NO_ACCEPTABLE = 0x00, 0x02, 0xFF
CONNECT, BIND, UDP_ASSOCIATE = 1, 2, 3
ATYP_IPV4, ATYP_DOMAIN, ATYP_IPV6 = 1, 3, 4

HANDSHAKE_TIMEOUT = 30.0     # a client must finish the SOCKS handshake in this time
CHUNK = 16384
_HOSTNAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?\Z")


class _ProtocolError(Exception):
    """The client broke the protocol: close its connection (after ``reply``, if set)."""

    def __init__(self, message: str, reply: Optional[bytes] = None):
        super().__init__(message)
        self.reply = reply


class _Reader:
    """Exact-length reads from a trio stream."""

    def __init__(self, stream: trio.abc.Stream):
        self.stream = stream
        self.buf = bytearray()

    async def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = await self.stream.receive_some(CHUNK)
            if not chunk:
                raise _ProtocolError("client closed during the handshake")
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def leftover(self) -> bytes:
        out, self.buf = bytes(self.buf), bytearray()
        return out


@dataclass(frozen=True)
class Credentials:
    """Username/password that clients must present (RFC 1929)."""

    username: str
    password: str = ""

    def __repr__(self) -> str:  # the password never reaches a log or a traceback
        return f"Credentials(username={self.username!r}, password=<hidden>)"

    def check(self, username: bytes, password: bytes) -> bool:
        # both compared (constant time), so timing tells nothing about which was wrong
        ok_user = hmac.compare_digest(username, self.username.encode())
        ok_pass = hmac.compare_digest(password, self.password.encode())
        return ok_user and ok_pass


def _reply(code: int, bound: Optional[Tuple[str, int]] = None) -> bytes:
    ip, port = bound or ("0.0.0.0", 0)
    try:
        packed = ipaddress.IPv4Address(ip).packed
    except ValueError:
        packed = bytes(4)
    return struct.pack("!BBBB4sH", VERSION, code, 0, ATYP_IPV4, packed, int(port))


def _error_reply(exc: BaseException) -> int:
    if isinstance(exc, E.ResolveError):
        return REPLY["host unreachable"]
    if isinstance(exc, E.ConnectError):
        return REPLY["connection refused"]
    if isinstance(exc, (E.CommandTimeout, TimeoutError)):
        return REPLY["host unreachable"]
    return REPLY["general failure"]


# a side of a relayed connection is gone (closed, reset, link failed)
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)   # WizError is an OSError


async def _copy(receive: Callable[[int], Awaitable[Union[bytes, bytearray]]],
                send: Callable[[Union[bytes, bytearray]], Awaitable[None]]) -> bool:
    """Copy until EOF (True) or until either side fails (False)."""
    try:
        while True:
            data = await receive(CHUNK)
            if not data:
                return True
            await send(data)
    except _GONE:
        return False


class Proxy:
    """The SOCKS5 server's logic, over an ``AsyncModule`` on the running trio loop."""

    def __init__(self, module: Any, *, credentials: Optional[Credentials] = None,
                 link_wait: float = 10.0, eof_grace: float = 5.0,
                 connect_timeout: Optional[float] = None):
        self.module = module
        self.eof_grace = float(eof_grace)
        self.credentials = credentials
        self.link_wait = float(link_wait)
        self.connect_timeout = connect_timeout
        self.active = 0                      # CONNECTs carried now
        self._link_freed = trio.Event()      # set (and replaced) whenever one of ours ends

    # -------------------------------------------------------------- handshake
    async def _negotiate(self, stream: trio.abc.Stream, reader: _Reader) -> None:
        ver, n = await reader.exactly(2)
        if ver != VERSION:
            raise _ProtocolError(f"not SOCKS5 (version byte {ver})")
        methods = await reader.exactly(n)
        wanted = USER_PASS if self.credentials is not None else NO_AUTH
        if wanted not in methods:
            await stream.send_all(bytes([VERSION, NO_ACCEPTABLE]))
            raise _ProtocolError(f"no acceptable method among {list(methods)}")
        await stream.send_all(bytes([VERSION, wanted]))
        if wanted == USER_PASS:
            sub, ulen = await reader.exactly(2)
            user = await reader.exactly(ulen)
            (plen,) = await reader.exactly(1)
            password = await reader.exactly(plen)
            assert self.credentials is not None
            if sub != 1 or not self.credentials.check(user, password):
                await stream.send_all(b"\x01\x01")
                raise _ProtocolError("authentication failed")
            await stream.send_all(b"\x01\x00")

    async def _request(self, reader: _Reader) -> Tuple[int, str, int]:
        ver, cmd, _rsv, atyp = await reader.exactly(4)
        if ver != VERSION:
            raise _ProtocolError(f"request with version byte {ver}")
        if atyp == ATYP_IPV4:
            host = str(ipaddress.IPv4Address(await reader.exactly(4)))
        elif atyp == ATYP_DOMAIN:
            (n,) = await reader.exactly(1)
            raw = await reader.exactly(n)
            host = raw.decode("ascii", "replace")
            if not _HOSTNAME.match(host):
                raise _ProtocolError(f"bad domain name {raw!r}", _reply(REPLY["host unreachable"]))
        elif atyp == ATYP_IPV6:
            await reader.exactly(16 + 2)
            raise _ProtocolError("IPv6 destination", _reply(REPLY["address type not supported"]))
        else:
            raise _ProtocolError(f"address type {atyp}", _reply(REPLY["address type not supported"]))
        (port,) = struct.unpack("!H", await reader.exactly(2))
        return cmd, host, port

    # -------------------------------------------------------------- links
    async def acquire_link(self, what: str, opener: Callable[[], Awaitable[Any]]) -> Any:
        """``await opener()`` (opens a link), waiting (bounded) for one of ours to end
        when none is free; the caller holds the link as one of ours (``active``)."""
        deadline = trio.current_time() + self.link_wait
        while True:
            freed = self._link_freed
            try:
                link = await opener()
                self.active += 1
                return link
            except E.LinkLimitError:
                left = deadline - trio.current_time()
                if left <= 0:
                    raise
                log.info("no free link for %s; waiting up to %.1f s", what, left)
                with trio.move_on_after(left):
                    await freed.wait()

    def release_link(self) -> None:
        """One of this proxy's links was closed: a waiting CONNECT may have it."""
        self.active -= 1
        self._link_freed.set()
        self._link_freed = trio.Event()

    async def _handshake(self, stream: trio.abc.Stream, reader: _Reader,
                         peer: Any) -> Optional[Tuple[int, str, int, Any]]:
        """Negotiate; for CONNECT open the link.  -> (command, host, port, link or None),
        or None when the client has had its answer (a failure)."""
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                await self._negotiate(stream, reader)
                cmd, host, port = await self._request(reader)
            if cmd == UDP_ASSOCIATE:
                return cmd, host, port, None
            if cmd != CONNECT:
                name = "BIND" if cmd == BIND else f"command {cmd}"
                raise _ProtocolError(f"{name} is not supported",
                                     _reply(REPLY["command not supported"]))
            if port == 0:
                raise _ProtocolError("port 0", _reply(REPLY["host unreachable"]))
            try:
                link = await self.acquire_link(f"{host}:{port}", functools.partial(
                    self.module.net.open_tcp, host, port, timeout=self.connect_timeout))
            except (OSError, ValueError) as exc:      # WizError is an OSError
                code = _error_reply(exc)
                log.info("%s: CONNECT %s:%d failed: %s (reply %d)", peer, host, port, exc, code)
                await stream.send_all(_reply(code))
                return None
            log.info("%s: CONNECT %s:%d on link %d", peer, host, port, link.id)
            return cmd, host, port, link
        except trio.TooSlowError:
            log.info("%s: handshake not finished in %.0f s", peer, HANDSHAKE_TIMEOUT)
        except _ProtocolError as exc:
            log.info("%s: %s", peer, exc)
            if exc.reply is not None:
                try:
                    await stream.send_all(exc.reply)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        return None

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Serve one client connection (the client's or the peer's faults end only it)."""
        try:
            peer = stream.socket.getpeername()  # type: ignore[attr-defined]
        except (AttributeError, OSError):
            peer = "?"
        reader = _Reader(stream)
        got = None
        try:
            got = await self._handshake(stream, reader, peer)
        finally:
            if got is None:
                await trio.aclose_forcefully(stream)
        if got is None:
            return
        cmd, host, port, link = got
        if cmd == UDP_ASSOCIATE:
            await _Association(self, stream, peer, (host, port)).run()
            return
        try:
            await self._relay(stream, reader.leftover(), link)
        finally:
            with trio.CancelScope(shield=True):
                try:
                    await link.aclose()
                except E.WizError:
                    pass
                await trio.aclose_forcefully(stream)
            self.release_link()

    async def _relay(self, stream: trio.abc.Stream, early: bytes, link: Any) -> None:
        try:
            await stream.send_all(_reply(REPLY["succeeded"], link.local))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

        async def upstream(cancel: trio.CancelScope) -> None:
            try:
                if early:
                    await link.send(early)
            except _GONE:
                cancel.cancel()
                return
            if await _copy(stream.receive_some, link.send):
                # EOF from the client: a half-close (the remote's answer may still come)
                # or a close; the module cannot half-close, and a link is too scarce to
                # hold for a client that has gone, so the remote gets a grace period.
                await trio.sleep(self.eof_grace)
            cancel.cancel()

        async def downstream(cancel: trio.CancelScope) -> None:
            await _copy(link.receive, stream.send_all)
            cancel.cancel()   # the remote closed (or failed): the whole connection ends

        async with trio.open_nursery() as nursery:
            nursery.start_soon(upstream, nursery.cancel_scope)
            nursery.start_soon(downstream, nursery.cancel_scope)


def _udp_header(ip: str, port: int) -> bytes:
    """RFC 1928 section 7: RSV RSV FRAG=0 ATYP=IPv4 ADDR PORT."""
    return b"\x00\x00\x00\x01" + ipaddress.IPv4Address(ip).packed + struct.pack("!H", port)


def _parse_udp(data: bytes) -> Optional[Tuple[str, int, bytes]]:
    """A client's datagram -> (host, port, payload); None if it must be dropped
    (fragments, IPv6, malformed: RFC 1928 lets the relay drop what it will not handle)."""
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0:
        return None
    atyp, rest = data[3], data[4:]
    if atyp == ATYP_IPV4 and len(rest) >= 6:
        host, rest = str(ipaddress.IPv4Address(rest[:4])), rest[4:]
    elif atyp == ATYP_DOMAIN and rest and len(rest) >= 1 + rest[0] + 2:
        n = rest[0]
        host, rest = rest[1:1 + n].decode("ascii", "replace"), rest[1 + n:]
        if not _HOSTNAME.match(host):
            return None
    else:
        return None
    (port,) = struct.unpack("!H", rest[:2])
    return (host, port, rest[2:]) if port else None


class _Association:
    """One UDP ASSOCIATE: a host UDP socket beside the listener for the client's
    datagrams, and one module UDP link (mode 2: any remote), opened at the first
    datagram, for all its destinations.  It lasts as long as the client's TCP
    connection (RFC 1928 section 6)."""

    def __init__(self, proxy: "Proxy", stream: Any, peer: Any, hint: Tuple[str, int]):
        self.proxy = proxy
        self.stream = stream
        self.peer_ip = peer[0] if isinstance(peer, tuple) else None
        # the client may name the address it will send from; 0.0.0.0:0 = learn it
        self.client: Optional[Tuple[str, int]] = hint if hint[1] and hint[0] != "0.0.0.0" else None
        self.link: Any = None
        self.names: Dict[str, str] = {}
        self.udp: Any = None

    async def run(self) -> None:
        from wizsock import _orig

        try:
            with _orig.internal():    # the relay socket is the host's, even in a patched process
                self.udp = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            await self.udp.bind((self.stream.socket.getsockname()[0], 0))
            await self.stream.send_all(_reply(REPLY["succeeded"], self.udp.getsockname()))
            log.info("%s: UDP ASSOCIATE relaying at %s", self.stream.socket.getpeername(),
                     self.udp.getsockname())
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._control, nursery.cancel_scope)
                nursery.start_soon(self._from_client, nursery)
        except _GONE as exc:
            log.info("UDP association ended: %r", exc)
        finally:
            with trio.CancelScope(shield=True):
                if self.udp is not None:
                    self.udp.close()
                if self.link is not None:
                    try:
                        await self.link.aclose()
                    except E.WizError:
                        pass
                    self.proxy.release_link()
                await trio.aclose_forcefully(self.stream)

    async def _control(self, cancel: trio.CancelScope) -> None:
        """The association ends with the TCP connection (anything the client sends
        there is ignored)."""
        try:
            while await self.stream.receive_some(CHUNK):
                pass
        except _GONE:
            pass
        cancel.cancel()

    async def _resolve(self, host: str) -> str:
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            pass
        if host not in self.names:
            self.names[host] = await self.proxy.module.net.resolve(host)
        return self.names[host]

    async def _from_client(self, nursery: trio.Nursery) -> None:
        while True:
            data, addr = await self.udp.recvfrom(65535)
            if addr[0] != self.peer_ip or (self.client is not None and addr != self.client):
                log.debug("UDP relay: datagram from %s dropped (not the client)", addr)
                continue
            self.client = addr
            parsed = _parse_udp(data)
            if parsed is None:
                log.debug("UDP relay: fragment or malformed datagram from %s dropped", addr)
                continue
            host, port, payload = parsed
            try:
                ip = await self._resolve(host)
                if self.link is None:
                    self.link = await self.proxy.acquire_link(f"UDP {ip}:{port}", functools.partial(
                        self.proxy.module.net.open_udp, ip, port,
                        local_port=random.randrange(49152, 65536), mode=2))
                    nursery.start_soon(self._to_client, nursery.cancel_scope)
                await self.link.send_to(payload, (ip, port))
            except (OSError, ValueError) as exc:   # UDP: the datagram is lost, as on a network
                log.info("UDP relay: datagram to %s:%d dropped: %s", host, port, exc)
                if self.link is not None and self.link.error is not None:
                    raise

    async def _to_client(self, cancel: trio.CancelScope) -> None:
        try:
            while True:
                data, (ip, port) = await self.link.receive_from(65535)
                if not data:
                    break        # the link ended
                assert self.client is not None
                await self.udp.sendto(_udp_header(ip, port) + data, self.client)
        except _GONE as exc:
            log.info("UDP relay: link ended: %r", exc)
        cancel.cancel()


async def serve(module: Any, host: str = "127.0.0.1", port: int = 1080, *,
                credentials: Optional[Credentials] = None, link_wait: float = 10.0,
                eof_grace: float = 5.0, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Run a SOCKS5 server on ``host:port`` whose connections go over ``module``
    (the ``AsyncModule`` of :func:`wizsock.engine.open_module`); reports the bound
    ``(host, port)`` through ``task_status``.  Runs until cancelled."""
    from wizsock import _orig

    proxy = Proxy(module, credentials=credentials, link_wait=link_wait, eof_grace=eof_grace)
    with _orig.internal():   # the listening socket is the host's, even in a patched process
        listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[:2]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, proxy.handle, listeners)
        task_status.started(bound)


# ------------------------------------------------------------------ command line

def _listen_address(text: str) -> Tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[1]
    parser.add_argument("--port", default=None,
                        help="serial port of the module (anything pyserial opens); "
                             "default: the in-process emulator, joined to its default access point")
    parser.add_argument("--baudrate", type=int, default=None,
                        help="UART rate (default 115200; 921600 for the emulator)")
    parser.add_argument("--listen", type=_listen_address, default=("127.0.0.1", 1080),
                        metavar="HOST:PORT", help="where to accept SOCKS clients (default "
                        "127.0.0.1:1080; port 0 picks a free one)")
    parser.add_argument("--ssid", default=os.environ.get("WIZSOCK_SSID"),
                        help="join this WiFi network first (env WIZSOCK_SSID)")
    parser.add_argument("--password", default=os.environ.get("WIZSOCK_PASSWORD", ""),
                        help="its password (env WIZSOCK_PASSWORD)")
    parser.add_argument("--world", default=None,
                        help="emulator only: a world file (access points, dns, nat)")
    parser.add_argument("--user", default=None,
                        help="require this SOCKS username (RFC 1929); the password comes from "
                             "WIZSOCK_SOCKS_PASSWORD or --password-stdin")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the SOCKS password from the first line of standard input")
    parser.add_argument("--open", action="store_true",
                        help="allow a non-loopback --listen address without --user")
    parser.add_argument("--link-wait", type=float, default=10.0, metavar="SECONDS",
                        help="how long a CONNECT waits for a free link (default 10)")
    parser.add_argument("--eof-grace", type=float, default=5.0, metavar="SECONDS",
                        help="after a client's EOF, how long the remote may still answer before "
                             "the link is closed (default 5)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log connections (-vv: the AT traffic too, secrets masked)")


def _credentials(args: argparse.Namespace,
                 stdin_line: Callable[[], str] = sys.stdin.readline) -> Optional[Credentials]:
    if args.user is None:
        if args.password_stdin:
            raise SystemExit("wizsock socks: --password-stdin needs --user")
        return None
    password: Optional[str]
    if args.password_stdin:
        password = stdin_line().rstrip("\r\n")
    else:
        password = os.environ.get("WIZSOCK_SOCKS_PASSWORD")
        if password is None:
            raise SystemExit("wizsock socks: --user needs a password: set WIZSOCK_SOCKS_PASSWORD "
                             "or use --password-stdin")
    if len(args.user.encode()) > 255 or len(password.encode()) > 255:
        raise SystemExit("wizsock socks: username and password are at most 255 bytes (RFC 1929)")
    return Credentials(args.user, password)


def _module_url(args: argparse.Namespace) -> Tuple[str, int, Optional[Tuple[str, str]]]:
    """(port URL, baud rate, (ssid, password) to join or None)."""
    from urllib.parse import urlencode

    from wizsock.patch import EMULATOR_AP, EMULATOR_BAUD

    join = (args.ssid, args.password or "") if args.ssid else None
    if args.port is None:
        baud = args.baudrate or EMULATOR_BAUD
        query = {"baud": baud}
        if args.world:
            query["world"] = os.path.abspath(args.world)
        return f"wizemu://?{urlencode(query)}", baud, join or EMULATOR_AP
    if args.world:
        raise SystemExit("wizsock socks: --world is for the emulator (no --port)")
    return args.port, args.baudrate or 115200, join


async def _main(args: argparse.Namespace, credentials: Optional[Credentials]) -> None:
    from wizsock.engine import open_module

    url, baud, join = _module_url(args)
    host, port = args.listen
    async with open_module(url, baudrate=baud) as m:
        if join is not None:
            await m.wifi.set_mode(1)
            await m.wifi.join(*join)
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(functools.partial(
                serve, m, host, port, credentials=credentials, link_wait=args.link_wait,
                eof_grace=args.eof_grace))
            print(f"wizsock socks: listening on {bound[0]}:{bound[1]} "
                  f"(SOCKS5, {'username/password' if credentials else 'no authentication'}) "
                  f"over {url}", flush=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break


def run(args: argparse.Namespace) -> int:
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else logging.INFO,
                            format="%(asctime)s %(name)s %(message)s")
        if args.verbose < 2:
            logging.getLogger("wizsock.engine").setLevel(logging.INFO)
    credentials = _credentials(args)
    if not _is_loopback(args.listen[0]) and credentials is None and not args.open:
        print(f"wizsock socks: refusing to run an open proxy on {args.listen[0]}: "
              "use --user (or --open if you really mean it)", file=sys.stderr)
        return 2
    from wizsock.engine.groups import call_collapsed
    from wizsock.tools.explain import report

    try:
        call_collapsed(trio.run, _main, args, credentials)   # (never a group out)
    except KeyboardInterrupt:
        return 130
    except E.WizError as exc:       # no module, joining failed, ...: 3, 4, ... as every tool
        return report("socks", exc)
    except OSError as exc:
        print(f"wizsock socks: cannot listen on {args.listen[0]}:{args.listen[1]}: {exc}",
              file=sys.stderr)
        return 1
    return 0
