"""Network services of the emulated module: AT+CIUPDATE, AT+CIPSNTPCFG, AT+CIPSNTPTIME.

Also the endpoint helpers the cloud plug-ins share (`endpoint`, `split_hostport`).

Where the module talks to a fixed or named host
------------------------------------------------
The firmware has public defaults (the OTA server of AT+CIUPDATE, the SNTP
servers "cn.ntp.org.cn", "ntp.sjtu.edu.cn", "us.pool.ntp.org", Azure's
``<hub>.azure-devices.net:8883``).  The emulator lets the world file redirect
any of them, so tests stay on loopback::

    {"endpoints": {"ciupdate": "http://127.0.0.1:8080/fw.img",   # AT+CIUPDATE with no URL
                   "cn.ntp.org.cn": "127.0.0.1:12300",          # any host name -> host:port
                   "azure": "127.0.0.1:8883", "aws": "127.0.0.1:8884"}}

Lookup order for a host name: ``endpoints["<name>:<port>"]``, ``endpoints[<name>]``,
then ``endpoints[<service>]`` (``"azure"``, ``"aws"``, ``"sntp"``), then the name
itself through the module's DNS (world ``dns`` first, then the host resolver), and
last the core's ``nat`` map (``Emulator.route``) on the resulting address.  The
same applies to AT+MQTTCON's broker, so the spec's ``"192.168.1.20",1883`` can be
pointed at a local broker.  The SNTP handler also takes a
server written ``"host:port"`` (an emulator extension; the real module always
uses port 123), but the codec validates AT+CIPSNTPCFG's servers as host names,
so through the UART use the ``endpoints`` map.  AT+CIUPDATE with no URL and no
``endpoints["ciupdate"]`` fails with ERROR rather than contacting the public
OTA server.

AT+CIPSNTPCFG=1 starts a synchronisation in the background (UDP, RFC 4330
client request, 1 s per server, servers in order); AT+CIPSNTPTIME? waits up to
3 s for a synchronisation in flight and then prints the synchronised clock in
the configured time zone (``Thu Jan 01 00:00:00 1970`` plus the elapsed time
until the first success, as the firmware does).
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
import socket as _socket
import struct
import time
import urllib.parse
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

import trio

from wizsock.emulator.commands import need_form
from wizsock.emulator.registry import CommandFailed, Context, ModuleState, handler
from wizsock.protocol import Request

from wizsock import _orig
from wizsock import protocol as _P
from wizsock.protocol import records as _R

if TYPE_CHECKING:
    from wizsock.emulator.core import Emulator

log = logging.getLogger("wizsock.emulator.services")

SNTP_DEFAULT_SERVERS = ("cn.ntp.org.cn", "ntp.sjtu.edu.cn", "us.pool.ntp.org")
NTP_PORT = 123
NTP_EPOCH_OFFSET = 2208988800
SNTP_TIMEOUT = 1.0
SNTP_WAIT = 3.0
HTTP_TIMEOUT = 10.0


# ------------------------------------------------------------------ helpers
def split_hostport(text: str, default_port: int) -> Tuple[str, int]:
    """'host', 'host:port', '[v6]:port' -> (host, port)."""
    text = str(text).strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port


def endpoint(world: Dict[str, Any], name: str, default_port: int, service: Optional[str] = None) -> Tuple[str, int]:
    """Where the module really connects for `name`: (host, port) per the module docstring."""
    eps = (world or {}).get("endpoints") or {}
    for key in (f"{name}:{default_port}", name, service):
        if key and key in eps:
            val = eps[key]
            if isinstance(val, (list, tuple)):
                return str(val[0]), int(val[1])
            return split_hostport(val, default_port)
    return split_hostport(name, default_port) if service == "sntp" else (name, default_port)


def target(ctx: Context, name: str, port: int, service: Optional[str] = None) -> Tuple[str, Tuple[str, int]]:
    """-> (the IP the module sees, the (host, port) really contacted).

    `endpoints` first, then the module's DNS (`ctx.resolve`, raising DNS Fail),
    then the core's ``nat`` map (`Emulator.route`)."""
    host, port = endpoint(ctx.state.world, name, port, service)
    ip = ctx.resolve(host)
    try:
        seen = str(ipaddress.IPv4Address(name))     # an address the host typed stays what it sees
    except ValueError:
        seen = ip
    route = getattr(ctx.emulator, "route", None)
    return seen, (route(ip, port) if route is not None else (ip, port))


def internal() -> None:
    """Mark this task as the emulator's network side: while `wizsock.patch()` is active,
    its sockets (trio's, paho's, in `trio.to_thread` workers too) stay real kernel sockets."""
    if _orig is not None:
        _orig.mark_internal()


def format_lines(cmd: str, form: str, record: object, fallback: Callable[[], List[bytes]]) -> List[bytes]:
    """Response lines through the codec (design §2); `fallback()` if it cannot express them."""
    if _P is not None:
        try:
            return list(_P.COMMANDS[cmd].format_response(form, record))
        except (KeyError, ValueError, AttributeError):
            pass
    return fallback()


# ------------------------------------------------------------------ CIUPDATE
@handler("CIUPDATE")
async def ciupdate(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "execute", "set")
    st = ctx.state
    url = _ciupdate_url(st, req)
    if st.station is None and st.mode == 1:
        raise CommandFailed("ERROR")
    internal()
    u = urllib.parse.urlsplit(url)
    if u.scheme.lower() != "http" or not u.hostname:
        raise CommandFailed("ERROR")
    port = u.port or 80
    _, addr = target(ctx, u.hostname, port)              # DNS Fail + ERROR when unknown
    await ctx.send_line(b"+CIUPDATE:<1>")                # found the server
    try:
        with trio.fail_after(HTTP_TIMEOUT):
            stream = await trio.open_tcp_stream(*addr)
    except (OSError, trio.TooSlowError):
        raise CommandFailed("ERROR")
    try:
        await ctx.send_line(b"+CIUPDATE:<2>")            # connected
        with trio.fail_after(HTTP_TIMEOUT):
            fields, body = await _http_get_head(stream, u)
            await ctx.send_line(b"+CIUPDATE:<3>")        # got the software version (the image header)
            image = await _http_body(stream, fields, body)
    except (OSError, trio.BrokenResourceError, trio.TooSlowError, ValueError):
        raise CommandFailed("ERROR")
    finally:
        await trio.aclose_forcefully(stream)
    await ctx.send_line(b"+CIUPDATE:<4>")                # start updating
    st.cur["ciupdate.last"] = {"url": url, "size": len(image), "sha256": hashlib.sha256(image).hexdigest()}
    return "OK"


def _ciupdate_url(st: ModuleState, req: Request) -> str:
    """The image's URL: the set form's, else the world file's endpoint (never the public server)."""
    if req.form == "set":
        url: str = req["url"]
        return url
    configured = ((st.world or {}).get("endpoints") or {}).get("ciupdate")
    if not configured:
        log.info("AT+CIUPDATE: no endpoints['ciupdate'] in the world file; not contacting the public OTA server")
        raise CommandFailed("ERROR")
    return str(configured)


async def _http_get_head(stream: trio.SocketStream,
                         u: urllib.parse.SplitResult) -> Tuple[Dict[str, str], bytes]:
    """GET ``u``: the answer's header fields (lower-case names) and the body read so far;
    CommandFailed unless it is a 200."""
    path = (u.path or "/") + ("?" + u.query if u.query else "")
    hostport = u.hostname if u.port in (None, 80) else f"{u.hostname}:{u.port}"
    head = (f"GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: WizFi360/1.1.1.7\r\n"
            f"Connection: close\r\n\r\n").encode()
    await stream.send_all(head)
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        chunk = await stream.receive_some(4096)
        if not chunk:
            raise CommandFailed("ERROR")
        buf += chunk
        if len(buf) > 65536:
            raise CommandFailed("ERROR")
    header, _, body = bytes(buf).partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    if len(parts) < 2 or parts[1] != "200":
        raise CommandFailed("ERROR")
    fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return fields, body


async def _http_body(stream: trio.SocketStream, fields: Dict[str, str], body: bytes) -> bytearray:
    """The rest of the image: exactly Content-Length bytes, or to the end without one."""
    length = int(fields["content-length"]) if "content-length" in fields else None
    if fields.get("transfer-encoding", "").lower() == "chunked":
        raise CommandFailed("ERROR")             # the firmware's OTA client wants a length
    image = bytearray(body)
    while length is None or len(image) < length:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        image += chunk
    if length is not None and len(image) != length or not image:
        raise CommandFailed("ERROR")
    return image


# ------------------------------------------------------------------ SNTP
@dataclass
class _Sntp:
    """Per-module SNTP state, a plain record (in _SNTP below; a new one after a reset)."""

    offset: Optional[float] = None   # server clock - time.time()
    boot: float = field(default_factory=time.time)
    done: trio.Event = field(default_factory=trio.Event)
    generation: Optional[int] = None


#: each emulator's SNTP state: this plug-in's own, not set on the emulator (the core's)
_SNTP: "weakref.WeakKeyDictionary[Emulator, _Sntp]" = weakref.WeakKeyDictionary()


def _sntp(ctx: Context) -> _Sntp:
    emu = ctx.emulator
    s = _SNTP.get(emu)
    if s is None or s.generation != emu.generation:
        s = _Sntp()
        s.generation = emu.generation
        s.done.set()
        _SNTP[emu] = s
    return s


def _ntp_request(now: float) -> bytes:
    t = now + NTP_EPOCH_OFFSET
    sec = int(t)
    frac = int((t - sec) * (1 << 32)) & 0xFFFFFFFF
    return bytes([0x23]) + bytes(39) + struct.pack("!II", sec & 0xFFFFFFFF, frac)


def _ntp_time(data: bytes, sent: bytes) -> Optional[float]:
    if len(data) < 48 or (data[0] & 0x07) not in (4, 5) or data[1] == 0 or data[24:32] != sent[40:48]:
        return None
    sec, frac = struct.unpack("!II", data[40:48])
    if sec == 0:
        return None
    return float(sec - NTP_EPOCH_OFFSET + frac / (1 << 32))


async def sntp_query(ctx: Context, server: str) -> Optional[float]:
    """One SNTP exchange with `server`; -> offset (server - local clock) or None."""
    internal()
    try:
        _, (ip, port) = target(ctx, server, NTP_PORT, service="sntp")
    except CommandFailed:
        return None
    sock = trio.socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        t0 = time.time()
        req = _ntp_request(t0)
        await sock.sendto(req, (ip, port))
        with trio.move_on_after(SNTP_TIMEOUT):
            while True:
                data, addr = await sock.recvfrom(512)
                if addr[0] != ip:
                    continue
                t = _ntp_time(data, req)
                if t is not None:
                    t1 = time.time()
                    return t - (t0 + t1) / 2
    except OSError:
        return None
    finally:
        sock.close()
    return None


async def _sync(ctx: Context, s: _Sntp, servers: List[str]) -> None:
    try:
        for server in servers:
            off = await sntp_query(ctx, server)
            if off is not None:
                s.offset = off
                return
    finally:
        s.done.set()


def _start_sync(ctx: Context) -> None:
    s = _sntp(ctx)
    cfg = ctx.state.cur.get("sntp.cfg") or [0, None, []]
    if not cfg[0]:
        return
    s.done = trio.Event()
    servers = cfg[2] or list(SNTP_DEFAULT_SERVERS)
    emu = ctx.emulator
    nursery = getattr(emu, "life", None) or getattr(emu, "nursery")
    nursery.start_soon(_sync, ctx, s, servers)


@handler("CIPSNTPCFG")
async def cipsntpcfg(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "set")
    st = ctx.state
    if req.form == "query":
        en, tz, servers = st.cur.get("sntp.cfg") or [0, None, []]
        if en:
            servers = servers or list(SNTP_DEFAULT_SERVERS)

            def manual() -> List[bytes]:
                return [b"+CIPSNTPCFG:%d,%d," % (en, tz) + b",".join(b'"%s"' % s.encode() for s in servers)]
            rec = _R.SntpConfig(en, tz, tuple(servers)) if _R else None
            lines = format_lines("CIPSNTPCFG", "query", rec, manual)
        else:
            lines = [b"+CIPSNTPCFG:0"]
        for line in lines:
            await ctx.send_line(line)
        return "OK"
    en, tz = req["enable"], req["timezone"]
    servers = [s for s in (req["server0"], req["server1"], req["server2"]) if s is not None]
    st.cur["sntp.cfg"] = [en, tz if tz is not None else 0, servers]
    _sntp(ctx).offset = None
    _start_sync(ctx)
    return "OK"


@handler("CIPSNTPTIME")
async def cipsntptime(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query")
    st = ctx.state
    en, tz, _ = st.cur.get("sntp.cfg") or [0, 0, []]
    s = _sntp(ctx)
    if en and s.offset is None:
        if s.done.is_set():
            _start_sync(ctx)          # retry, as the firmware keeps polling
        with trio.move_on_after(SNTP_WAIT):
            await s.done.wait()
    if en and s.offset is not None:
        now = time.time() + s.offset
    else:
        now = time.time() - s.boot    # the firmware's clock starts at the epoch
    text = time.asctime(time.gmtime(now + (tz or 0) * 3600))
    rec = _R.SntpTime(text) if _R else None
    for line in format_lines("CIPSNTPTIME", "query", rec, lambda: [b"+CIPSNTPTIME:" + text.encode()]):
        await ctx.send_line(line)
    return "OK"
