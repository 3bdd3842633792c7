"""The typed API, grouped as the spec groups the instruction set.

``module.system`` (3.1), ``module.wifi`` (3.2), ``module.net`` (3.3 TCP/IP),
``module.mqtt`` (3.3.29-33), ``module.azure`` (3.3.34-35), ``module.aws``
(3.3.36-38).  Every method builds its command through
``wizsock.protocol.COMMANDS`` and returns the codec's typed record (or None
for commands that only answer OK); failures raise ``wizsock.errors``.
"""
from __future__ import annotations

import contextvars
import logging
import math
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Tuple, Type, TypeVar, Union

import trio

from .. import errors as E
from .. import protocol as P
from ..protocol import records as R
from ..protocol import request as req
from .core import Engine, Response
from .links import Link, Server

if TYPE_CHECKING:
    from .passthrough import Passthrough

_Rec = TypeVar("_Rec")
#: a PEM text (a certificate or a key), as str or bytes
Pem = Union[str, bytes, bytearray, memoryview]

log = logging.getLogger("wizsock.engine")


def _cd(name: str, default: bool) -> str:
    return name + ("_DEF" if default else "_CUR")


def _meaning(code: int) -> str:
    return R.CWJAP_ERRORS.get(code, f"unknown error {code}")


class _Group:
    def __init__(self, module: AsyncModule) -> None:
        self._m = module
        self._e: Engine = module.engine

    async def _cmd(self, name: str, form: str = "execute", *, timeout: Optional[float] = None,
                   payload: Optional[bytes] = None, **params: Any) -> Response:
        r = req(name, form, **params) if form in ("set", "execute") else req(name, form)
        resp: Response = await self._e.command(r, timeout=timeout, payload=payload)
        return resp

    async def _get(self, expect: Type[_Rec], name: str, form: str = "query", **params: Any) -> Optional[_Rec]:
        """The record of a command's response: ``expect``, the type the codec's table gives
        it (a record of another type raises ResponseError, as the codec's ``expect=``)."""
        record = (await self._cmd(name, form, **params)).record
        if record is not None and not isinstance(record, expect):
            raise P.ResponseError(f"AT+{name} {form}: the response is a {type(record).__name__}, "
                                  f"not a {expect.__name__}")
        return record


# ============================================================================ system
class System(_Group):
    """System control commands (spec 3.1)."""

    async def at(self) -> None:
        """AT: is the module there?"""
        await self._cmd("")

    async def restart(self, timeout: float = 10.0) -> None:
        """AT+RST; returns once the module is initialised again (links fail: ModuleReset)."""
        await self._expect_reset(req("RST", "execute"), timeout)

    async def restore(self, full: bool = False, timeout: float = 10.0) -> None:
        """AT+RESTORE[=1]: factory settings (the module restarts)."""
        r = req("RESTORE", "set", type=1) if full else req("RESTORE", "execute")
        await self._expect_reset(r, timeout)

    async def deep_sleep(self, ms: int, wait: bool = True) -> None:
        """AT+GSLP=<ms>; with ``wait``, returns once the module woke up and was re-initialised."""
        await self._expect_reset(req("GSLP", "set", time=ms), ms / 1000 + 10.0, wait=wait)

    async def _expect_reset(self, r: P.Request, timeout: float, wait: bool = True) -> None:
        e = self._e
        before = e.reset_count
        await e.command(r)
        if not wait:
            return
        with trio.move_on_after(timeout) as cs:
            while e.reset_count == before:
                await trio.sleep(0.01)
            await e.until_usable()
            while not e.usable:
                await trio.sleep(0.01)
        if cs.cancelled_caught:
            if e.reset_count == before:
                # no "ready" seen: the module may restart silently; probe until it answers
                e.declare_reset(f"{r.name} (no ready seen)")
            with trio.fail_after(timeout):
                while not e.usable:
                    await trio.sleep(0.01)

    async def version(self) -> Optional[R.VersionInfo]:
        """AT+GMR -> records.VersionInfo."""
        return await self._get(R.VersionInfo, "GMR", "execute")

    async def echo(self, on: bool) -> None:
        """ATE1 / ATE0 (the engine ignores echoed lines either way)."""
        await self._cmd("E1" if on else "E0")

    async def uart(self, default: bool = False) -> Optional[R.UartConfig]:
        """AT+UART_CUR? / AT+UART_DEF? -> records.UartConfig."""
        return await self._get(R.UartConfig, _cd("UART", default))

    async def set_uart(self, baudrate: int, databits: int = 8, stopbits: int = 1, parity: int = 0,
                       flow_control: int = 0, default: bool = False) -> None:
        """AT+UART_CUR=... (the host port follows at once) / AT+UART_DEF=... (next boot)."""
        e = self._e
        r = req(_cd("UART", default), "set", baudrate=baudrate, databits=databits,
                stopbits=stopbits, parity=parity, flow_control=flow_control)
        if default:
            await e.command(r)
            return
        await e.command(r)          # (AT+UART_CUR= has no response record)
        await e.follow_uart(baudrate, flow_control)

    async def uart_cur(self) -> Optional[R.UartConfig]:
        return await self.uart(False)

    async def uart_def(self) -> Optional[R.UartConfig]:
        return await self.uart(True)

    async def sleep_mode(self) -> Optional[R.SleepMode]:
        """AT+SLEEP? -> records.SleepMode."""
        return await self._get(R.SleepMode, "SLEEP")

    async def set_sleep_mode(self, mode: int) -> None:
        await self._cmd("SLEEP", "set", mode=mode)

    # -- GPIO
    async def io_config(self, pin: int, mode: int, pull_up: int = 0) -> None:
        """AT+SYSIOSETCFG=<pin>,<mode>,<pull-up>."""
        await self._cmd("SYSIOSETCFG", "set", pin=pin, mode=mode, pull_up=pull_up)

    async def io_get(self, pin: int) -> Optional[R.IoConfig]:
        """AT+SYSIOGETCFG=<pin> -> records.IoConfig."""
        return await self._get(R.IoConfig, "SYSIOGETCFG", "set", pin=pin)

    async def gpio_direction(self, pin: int, output: Any) -> None:
        """AT+SYSGPIODIR (raises NotGpioMode)."""
        await self._cmd("SYSGPIODIR", "set", pin=pin, dir=int(output))

    async def gpio_write(self, pin: int, level: Any) -> None:
        """AT+SYSGPIOWRITE (raises NotGpioMode/NotOutputMode)."""
        await self._cmd("SYSGPIOWRITE", "set", pin=pin, level=int(level))

    async def gpio_read(self, pin: int) -> Optional[R.GpioState]:
        """AT+SYSGPIOREAD -> records.GpioState."""
        return await self._get(R.GpioState, "SYSGPIOREAD", "set", pin=pin)


# ============================================================================ WiFi
class Wifi(_Group):
    """WiFi commands (spec 3.2)."""

    async def mode(self, default: bool = False) -> Optional[R.WifiMode]:
        """AT+CWMODE_CUR? -> records.WifiMode."""
        return await self._get(R.WifiMode, _cd("CWMODE", default))

    async def set_mode(self, mode: int, default: bool = False) -> None:
        r = req(_cd("CWMODE", default), "set", mode=mode)
        await self._e.command(r)
        if not default:
            self._e.remember(r)

    async def join(self, ssid: str, password: str = "", bssid: Optional[str] = None,
                   default: bool = False, timeout: Optional[float] = None) -> None:
        """AT+CWJAP_CUR/_DEF; raises JoinError(code, meaning) on failure."""
        name = _cd("CWJAP", default)
        r = req(name, "set", ssid=ssid, pwd=password, bssid=bssid)
        resp: Response = await self._e.command(r, timeout=timeout, check=False, parse=False)
        if resp.result == "OK":
            self._e.station_ip = None
            if not default:
                self._e.remember(r)
            return None
        code: Optional[int] = None
        rec: object
        try:
            rec = P.COMMANDS[name].parse_response("set", resp.events)
            code = getattr(rec, "code", None)
        except Exception:
            rec = None
        if code is None:
            for ev in resp.events:
                v = getattr(ev, "value", None)
                if getattr(ev, "name", None) in (name, "CWJAP_CUR", "CWJAP_DEF") and v:
                    try:
                        code = int(v.strip())
                    except ValueError:
                        pass
        meaning = (getattr(rec, "meaning", None) or _meaning(code)) if code is not None \
            else "no error code given"
        raise E.JoinError(f"joining {ssid!r} failed: {meaning}" +
                          (f" (code {code})" if code is not None else ""),
                          code=code, meaning=meaning, command=name, result=resp.result,
                          lines=resp.lines())

    async def joined(self, default: bool = False) -> Optional[R.JoinedAp]:
        """AT+CWJAP_CUR? -> records.JoinedAp (None if not joined)."""
        try:
            return await self._get(R.JoinedAp, _cd("CWJAP", default))
        except E.CommandError:
            return None

    async def quit(self) -> None:
        """AT+CWQAP."""
        await self._cmd("CWQAP")
        self._e.station_ip = None
        self._e.forget("CWJAP_CUR")

    async def scan(self, ssid: Optional[str] = None, mac: Optional[str] = None,
                   channel: Optional[int] = None, timeout: Optional[float] = None) -> list[R.AccessPoint]:
        """AT+CWLAP[=<ssid>[,<mac>][,<channel>]] -> list of records.AccessPoint."""
        opts = {"mask": self._mask}
        resp: Response
        if ssid is None and mac is None and channel is None:
            resp = await self._e.command(req("CWLAP", "execute"), timeout=timeout,
                                         parse_opts=opts)
        else:
            resp = await self._e.command(req("CWLAP", "set", ssid=ssid or "", mac=mac,
                                             channel=channel), timeout=timeout,
                                         parse_opts=opts)
        rec: Optional[Tuple[R.AccessPoint, ...]] = resp.record
        return list(rec) if rec is not None else []

    async def scan_options(self, sort_by_rssi: bool = False, mask: int = 0b10000011111) -> None:
        """AT+CWLAPOPT=<sort>,<mask> (records.CWLAP_MASK_BITS)."""
        await self._cmd("CWLAPOPT", "set", sort_enable=int(bool(sort_by_rssi)), mask=mask)
        self._mask = mask

    #: the AT+CWLAPOPT mask in effect (which AccessPoint fields the module prints)
    _mask = 0b10000011111

    async def softap(self, default: bool = False) -> Optional[R.SoftApConfig]:
        """AT+CWSAP_CUR? -> records.SoftApConfig."""
        return await self._get(R.SoftApConfig, _cd("CWSAP", default))

    async def configure_softap(self, ssid: str, password: str, channel: int, ecn: int,
                               max_conn: Optional[int] = None, ssid_hidden: Optional[int] = None,
                               default: bool = False) -> None:
        await self._cmd(_cd("CWSAP", default), "set", ssid=ssid, pwd=password, channel=channel,
                        ecn=ecn, max_conn=max_conn, ssid_hidden=ssid_hidden)

    async def stations(self) -> list[R.Station]:
        """AT+CWLIF -> list of records.Station."""
        rec = await self._get(tuple, "CWLIF", "execute")
        return list(rec) if rec is not None else []

    async def dhcp(self, default: bool = False) -> Optional[R.DhcpStatus]:
        """AT+CWDHCP_CUR? -> records.DhcpStatus."""
        return await self._get(R.DhcpStatus, _cd("CWDHCP", default))

    async def set_dhcp(self, mode: int, enable: bool, default: bool = False) -> None:
        """mode 0 SoftAP, 1 station, 2 both."""
        await self._cmd(_cd("CWDHCP", default), "set", mode=mode, en=int(bool(enable)))

    async def dhcps(self, default: bool = False) -> Optional[R.DhcpRange]:
        """AT+CWDHCPS_CUR? -> records.DhcpRange."""
        return await self._get(R.DhcpRange, _cd("CWDHCPS", default))

    async def set_dhcps(self, enable: bool, lease_time: Optional[int] = None,
                        start_ip: Optional[str] = None, end_ip: Optional[str] = None,
                        default: bool = False) -> None:
        await self._cmd(_cd("CWDHCPS", default), "set", enable=int(bool(enable)),
                        lease_time=lease_time, start_ip=start_ip, end_ip=end_ip)

    async def autoconnect(self) -> Optional[R.AutoConnect]:
        """AT+CWAUTOCONN? -> records.AutoConnect."""
        return await self._get(R.AutoConnect, "CWAUTOCONN")

    async def set_autoconnect(self, enable: bool) -> None:
        await self._cmd("CWAUTOCONN", "set", enable=int(bool(enable)))

    async def sta_mac(self, default: bool = False) -> Optional[R.MacAddress]:
        return await self._get(R.MacAddress, _cd("CIPSTAMAC", default))

    async def set_sta_mac(self, mac: str, default: bool = False) -> None:
        await self._cmd(_cd("CIPSTAMAC", default), "set", mac=mac)

    async def ap_mac(self, default: bool = False) -> Optional[R.MacAddress]:
        return await self._get(R.MacAddress, _cd("CIPAPMAC", default))

    async def set_ap_mac(self, mac: str, default: bool = False) -> None:
        await self._cmd(_cd("CIPAPMAC", default), "set", mac=mac)

    async def sta_ip(self, default: bool = False) -> Optional[R.IpConfig]:
        """AT+CIPSTA_CUR? -> records.IpConfig."""
        return await self._get(R.IpConfig, _cd("CIPSTA", default))

    async def set_sta_ip(self, ip: str, gateway: Optional[str] = None, netmask: Optional[str] = None,
                         default: bool = False) -> None:
        await self._cmd(_cd("CIPSTA", default), "set", ip=ip, gateway=gateway, netmask=netmask)
        self._e.station_ip = None

    async def ap_ip(self, default: bool = False) -> Optional[R.IpConfig]:
        return await self._get(R.IpConfig, _cd("CIPAP", default))

    async def set_ap_ip(self, ip: str, gateway: Optional[str] = None, netmask: Optional[str] = None,
                        default: bool = False) -> None:
        await self._cmd(_cd("CIPAP", default), "set", ip=ip, gateway=gateway, netmask=netmask)

    async def start_smartconfig(self, try_count: Optional[int] = None,
                                type: Optional[int] = None) -> None:
        """AT+CWSTARTSMART[=[<type>,]<try count>] (messages arrive later; see ``on_event``)."""
        if try_count is None and type is None:
            await self._cmd("CWSTARTSMART")
        else:
            await self._cmd("CWSTARTSMART", "set", try_count=try_count, type=type)

    async def stop_smartconfig(self) -> None:
        await self._cmd("CWSTOPSMART")

    async def wps(self, enable: bool = True) -> Optional[R.WpsState]:
        """AT+WPS=<enable> -> records.WpsState."""
        return await self._get(R.WpsState, "WPS", "set", enable=int(bool(enable)))

    async def hostname(self) -> Optional[R.Hostname]:
        """AT+CWHOSTNAME? -> records.Hostname."""
        return await self._get(R.Hostname, "CWHOSTNAME")

    async def set_hostname(self, hostname: str) -> None:
        await self._cmd("CWHOSTNAME", "set", hostname=hostname)

    async def country(self, default: bool = False) -> Optional[R.CountryCode]:
        return await self._get(R.CountryCode, _cd("CWCOUNTRY", default))

    async def set_country(self, policy: int, country_code: str, channel_option: int,
                          default: bool = False) -> None:
        await self._cmd(_cd("CWCOUNTRY", default), "set", policy=policy,
                        country_code=country_code, channel_option=channel_option)

    async def netconfig(self) -> None:
        """AT+WIZ_NETCONFIG: start the module's setup web server."""
        await self._cmd("WIZ_NETCONFIG")

    def on_event(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for WiFi/SoftAP URCs; returns an unsubscribe function."""
        return self._e.on_urc(callback)


# ============================================================================ TCP/IP
_RESERVATION: contextvars.ContextVar[Optional[LinkReservation]] = contextvars.ContextVar(
    "wizsock_link_reservation", default=None)


class LinkReservation:
    """A link id held for one open (see :meth:`Net.reserve_link`)."""

    def __init__(self, engine: Engine, lid: int) -> None:
        self.engine = engine
        self.lid = lid
        self.used = False
        self._token: Optional[contextvars.Token[Optional[LinkReservation]]] = None

    def __enter__(self) -> LinkReservation:
        self._token = _RESERVATION.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None   # __enter__ set it
        _RESERVATION.reset(self._token)
        self.release()

    def claim(self) -> int:
        """The held id, for the open it was reserved for (then used: not given back)."""
        self.used = True
        return self.lid

    def release(self) -> None:
        """Give the id back if no open used it."""
        if not self.used:
            self.used = True
            self.engine.release_id(self.lid)


class Net(_Group):
    """TCP/IP commands (spec 3.3.1-3.3.28) and links."""

    @property
    def links(self) -> Mapping[int, Link]:
        """Read-only view: link id -> Link currently held by the engine."""
        links: Mapping[int, Link] = self._e.links
        return links

    async def status(self) -> Optional[R.ConnectionStatus]:
        """AT+CIPSTATUS -> records.ConnectionStatus."""
        return await self._get(R.ConnectionStatus, "CIPSTATUS", "execute")

    async def resolve(self, name: str, timeout: Optional[float] = None) -> str:
        """AT+CIPDOMAIN -> IP text; raises ResolveError."""
        try:
            resp: Response = await self._e.command(req("CIPDOMAIN", "set", domain=name), timeout=timeout)
        except E.CommandError as exc:
            raise E.ResolveError(f"cannot resolve {name!r}: "
                                 f"{'; '.join(exc.lines) or exc.result}") from None
        rec = resp.record
        ip: Optional[str] = getattr(rec, "ip", None)
        if not ip:
            raise E.ResolveError(f"cannot resolve {name!r}: no address in {resp.lines()}")
        return ip

    async def reserve_link(self, kind: str = "TCP", wait: Optional[float] = None) -> LinkReservation:
        """Wait, first come first served, up to ``wait`` seconds (None: no limit) for a
        free link and hold it for the next open: ``with await net.reserve_link(w) as r:
        await net.open_tcp(...)`` (the open inside the block, in the same task, uses it;
        leaving the block gives back an unused one).  Raises LinkLimitError naming the
        five-link limit when none frees in time.  Cancellable."""
        lid: int = await self._e.reserve_id(kind, wait)
        return LinkReservation(self._e, lid)

    async def _open(self, kind: str, host: str, port: int, timeout: Optional[float] = None,
                    _reclaim: bool = True, **extra: Any) -> Link:
        e = self._e
        await e.wait_usable(10.0)
        res = _RESERVATION.get()
        if res is not None and res.engine is e and not res.used:
            lid = res.claim()
            e.take_reserved(lid)
        else:
            lid = e.alloc_id(kind)
        return await self._open_on(lid, kind, host, port, timeout, _reclaim, **extra)

    async def _open_on(self, lid: int, kind: str, host: str, port: int, timeout: Optional[float],
                       reclaim: bool, **extra: Any) -> Link:
        """AT+CIPSTART on ``lid`` (taken for this open).  Every way out lets go of the id
        unless the link holds it: its lifecycle (session.TRANSITIONS) says which."""
        e = self._e
        assert isinstance(lid, int)
        gen = e.new_generation(lid)
        link = Link(e, lid, gen, kind, remote=(str(host), int(port)))
        e.add_link(link)
        answered = False
        try:
            r = req("CIPSTART", "set", link=lid if e.mux else None, type=kind, remote=str(host),
                    port=int(port), **extra)
            resp: Response = await e.command(r, timeout=timeout, check=False, parse=False)
            if link.error is not None:
                raise link.error
            if resp.result != "OK" and not (link.connected and "ALREADY CONNECTED" in resp.notes):
                # (ALREADY CONNECTED after our own "<id>,CONNECT": an attempt the module
                # answered busy to was run after all; the link is ours and up)
                lines = resp.lines()
                if "ALREADY CONNECTED" in resp.notes and reclaim:
                    # the module holds the id: a connection our server accepted meanwhile,
                    # or one whose CLOSED was false; the engine sorts it out (the id stays
                    # reserved meanwhile), then once more
                    e.drop_link(lid)
                    try:
                        await e.reclaim_id(lid)
                    except BaseException:
                        e.release_id(lid)
                        raise
                    if e.links.get(lid) is not None:
                        # it was a server's connection: now an accepted link; another id
                        e.release_id(lid)
                        lid = e.alloc_id(kind)
                    else:
                        e.take_reserved(lid)
                    return await self._open_on(lid, kind, host, port, timeout, False, **extra)
                if "DNS Fail" in resp.notes:
                    raise E.ResolveError(f"cannot resolve {host!r} (DNS Fail)")
                raise E.ConnectError(f"{kind} connect to {host}:{port} failed: "
                                     f"{'; '.join(lines) or resp.result}", lines=lines)
            # OPEN; a peer that closed at once leaves it closed (its data kept, id free)
            e.link_event(link, "opened")
            answered = True
            await trio.lowlevel.checkpoint_if_cancelled()
            try:
                if kind != "SSL" and not link.module_closed:
                    await self.fill_addresses(link)
            except E.WizError:
                pass
            return link
        except BaseException:
            if answered:
                # up on the module, but its opener gave up (cancelled): close it
                with trio.CancelScope(shield=True):
                    try:
                        await link.module_close()
                    except E.WizError:
                        pass
            e.link_event(link, "open_failed")
            e.link_event(link, "lost")
            link.discard()
            raise

    async def fill_addresses(self, link: Link) -> None:
        """Fill ``link.local`` (and an accepted link's ``remote``) from AT+CIFSR/AT+CIPSTATUS."""
        e = self._e
        if e.station_ip is None:
            try:
                addrs = await self.addresses()
                e.station_ip = getattr(addrs, "sta_ip", None) or getattr(addrs, "ap_ip", None)
            except E.WizError:
                pass
        st = await self.status()
        for ls in getattr(st, "links", ()) or ():
            if ls.link == link.id:
                link.set_addresses(
                    (e.station_ip or "0.0.0.0", ls.local_port),
                    (ls.remote_ip, ls.remote_port) if link.remote is None or link.accepted
                    else None)

    async def open_tcp(self, host: str, port: int, keepalive: Optional[int] = None,
                       timeout: Optional[float] = None, pipelined: Optional[bool] = None) -> Link:
        """AT+CIPSTART=<id>,"TCP",... -> Link (raises ConnectError, LinkLimitError).

        ``pipelined``: send with AT+CIPSENDBUF (default: the engine's ``use_sendbuf``)
        or, with False, stop-and-wait AT+CIPSEND."""
        link = await self._open("TCP", host, port, timeout=timeout, keepalive=keepalive)
        link.set_pipelined(pipelined)
        return link

    async def open_ssl(self, host: str, port: int, keepalive: Optional[int] = None,
                       timeout: Optional[float] = None) -> Link:
        """AT+CIPSTART=<id>,"SSL",... (one SSL link at most: LinkLimitError)."""
        return await self._open("SSL", host, port, timeout=timeout or 25.0,
                                keepalive=keepalive)

    async def open_udp(self, host: str, port: int, local_port: Optional[int] = None,
                       mode: int = 0, timeout: Optional[float] = None) -> Link:
        """AT+CIPSTART=<id>,"UDP",<host>,<port>[,<local port>,<mode>]."""
        return await self._open("UDP", host, port, timeout=timeout, local_port=local_port,
                                mode=mode if local_port is not None else None)

    async def close(self, link: Union[Link, int]) -> None:
        """Close a Link (or, given an int, whatever link id that is; 5 closes all)."""
        if isinstance(link, Link):
            await link.aclose()
            return
        lid = int(link)
        e = self._e
        await e.command(req("CIPCLOSE", "set", link=lid), check=False)
        targets = list(e.links.values()) if lid == 5 else [e.links.get(lid)]
        for l in targets:
            if l is not None:
                e.link_event(l, "lost")

    async def ssl_size(self) -> Optional[R.SslBufferSize]:
        return await self._get(R.SslBufferSize, "CIPSSLSIZE")

    async def set_ssl_size(self, size: int) -> None:
        await self._cmd("CIPSSLSIZE", "set", size=size)

    async def ssl_conf(self) -> Optional[R.SslConfig]:
        """AT+CIPSSLCONF? -> records.SslConfig."""
        return await self._get(R.SslConfig, "CIPSSLCONF")

    async def set_ssl_conf(self, mode: int) -> None:
        await self._cmd("CIPSSLCONF", "set", mode=mode)

    async def send_pem(self, name: str, pem: Pem) -> None:
        """Upload a PEM with AT+<name>=1 (CASEND, CLICASEND, AWSPKSEND), checked by the codec."""
        # the codec's check is the one path to the wire: a second block or anything
        # after the END line would otherwise run as commands (PemError, a ValueError)
        data = P.pem_upload(name, pem)
        await self._e.command(req(name, "set", mode=1), payload=data)

    async def set_ca(self, pem: Pem) -> None:
        """AT+CASEND=1 and the CA certificate (PEM)."""
        await self.send_pem("CASEND", pem)

    async def delete_ca(self) -> None:
        await self._cmd("CASEND", "set", mode=0)

    async def ca(self) -> Optional[R.Pem]:
        """AT+CASEND? -> records.Pem (None if none stored)."""
        try:
            return await self._get(R.Pem, "CASEND")
        except E.CommandError:
            return None

    async def addresses(self) -> Optional[R.LocalAddresses]:
        """AT+CIFSR -> records.LocalAddresses."""
        rec = await self._get(R.LocalAddresses, "CIFSR", "execute")
        ip = getattr(rec, "sta_ip", None)
        if ip and ip != "0.0.0.0":
            self._e.station_ip = ip
        return rec

    async def local_ip(self) -> str:
        """The station IP (SoftAP IP if no station), for getsockname()."""
        if self._e.station_ip:
            return self._e.station_ip
        rec = await self.addresses()
        ip: str = getattr(rec, "sta_ip", None) or getattr(rec, "ap_ip", None) or "0.0.0.0"
        return ip

    async def mux(self) -> Optional[R.MuxMode]:
        """AT+CIPMUX? -> records.MuxMode (the engine runs with 1)."""
        return await self._get(R.MuxMode, "CIPMUX")

    async def set_mux(self, mode: int) -> None:
        """AT+CIPMUX=<mode> (only with no link open; the engine's links need 1)."""
        if mode == 0 and self._e.links:
            raise E.CommandError("CIPMUX=0 needs every link closed", command="CIPMUX")
        await self._cmd("CIPMUX", "set", mode=mode)
        self._e.mux = bool(mode)

    async def listen(self, port: int, backlog: int = 4) -> Server:
        """AT+CIPSERVERMAXCONN and AT+CIPSERVER=1,<port> -> Server (one per module)."""
        e = self._e
        if e.server is not None:
            raise E.LinkLimitError(f"the module runs one server (port {e.server.port})")
        n = max(1, min(4, int(backlog or 4)))
        await self._cmd("CIPSERVERMAXCONN", "set", num=n)
        server = Server(e, int(port), n)
        e.server = server
        try:
            await self._cmd("CIPSERVER", "set", mode=1, port=int(port))
        except BaseException:
            e.server = None
            raise
        return server

    async def server_maxconn(self) -> Optional[R.ServerMaxConn]:
        return await self._get(R.ServerMaxConn, "CIPSERVERMAXCONN")

    async def set_server_maxconn(self, num: int) -> None:
        await self._cmd("CIPSERVERMAXCONN", "set", num=num)

    def passthrough(self, host: str, port: int, kind: str = "TCP", local_port: Optional[int] = None,
                    timeout: Optional[float] = None) -> AbstractAsyncContextManager[Passthrough]:
        """``async with m.net.passthrough(host, port) as stream``: UART-WiFi passthrough.

        CIPMUX=0, CIPMODE=1, CIPSTART, AT+CIPSEND, then ``stream`` (a
        ``trio.abc.Stream``) carries raw bytes both ways; leaving sends ``+++``
        with the spec's guard times and restores CIPMUX=1.  Needs no link,
        server or other session open (``LinkLimitError``).  See
        ``wizsock/engine/passthrough.py`` for remote close and reset handling."""
        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def session() -> AsyncIterator[Passthrough]:
            stream = await self.open_passthrough(host, port, kind, local_port, timeout)
            try:
                yield stream
            finally:
                await stream.aclose()
        return session()

    async def open_passthrough(self, host: str, port: int, kind: str = "TCP",
                               local_port: Optional[int] = None, timeout: Optional[float] = None) -> Passthrough:
        """The session of :meth:`passthrough` without the ``async with``; ``aclose`` it."""
        from .passthrough import open_passthrough
        return await open_passthrough(self._e, host, port, kind, local_port, timeout)

    async def transfer_mode(self) -> Optional[R.TransferMode]:
        """AT+CIPMODE? -> records.TransferMode."""
        return await self._get(R.TransferMode, "CIPMODE")

    async def set_transfer_mode(self, mode: int) -> None:
        """AT+CIPMODE=<mode>: passthrough (1) needs single-connection mode."""
        await self._cmd("CIPMODE", "set", mode=mode)

    async def save_translink(self, mode: int, remote: Optional[str] = None,
                             port: Optional[int] = None, type: Optional[str] = None,
                             **extra: Any) -> None:
        """AT+SAVETRANSLINK=<mode>,<remote>,<port>[,<type>,...]."""
        await self._cmd("SAVETRANSLINK", "set", mode=mode, remote=remote, port=port, type=type,
                        **extra)

    async def server_timeout(self) -> Optional[R.ServerTimeout]:
        return await self._get(R.ServerTimeout, "CIPSTO")

    async def set_server_timeout(self, seconds: int) -> None:
        await self._cmd("CIPSTO", "set", time=seconds)

    async def update(self, url: Optional[str] = None) -> Optional[R.UpdateProgress]:
        """AT+CIUPDATE[=<url>] -> records.UpdateProgress."""
        if url is None:
            return await self._get(R.UpdateProgress, "CIUPDATE", "execute")
        return await self._get(R.UpdateProgress, "CIUPDATE", "set", url=url)

    async def ping(self, host: str, timeout: Optional[float] = None) -> Optional[R.PingResult]:
        """AT+PING -> records.PingResult (``time_ms`` None on timeout)."""
        resp: Response = await self._e.command(req("PING", "set", host=host), timeout=timeout, check=False)
        if resp.result == "OK":
            record: Optional[R.PingResult] = resp.record
            return record
        spec = P.COMMANDS["PING"]
        rec: Optional[R.PingResult]
        try:
            rec = spec.parse_response("set", resp.events, expect=R.PingResult)
        except Exception:
            rec = None
        if rec is not None:
            return rec
        from ..errors import CommandError
        raise CommandError(f"ping {host!r} failed: {resp.result} ({'; '.join(resp.lines())})",
                           command="PING", result=resp.result, lines=resp.lines())

    async def dinfo(self) -> Optional[R.IpdInfo]:
        """AT+CIPDINFO? -> records.IpdInfo."""
        return await self._get(R.IpdInfo, "CIPDINFO")

    async def set_dinfo(self, enable: bool) -> None:
        """The engine needs 1 for UDP senders; 0 is allowed but loses receive_from addresses."""
        await self._cmd("CIPDINFO", "set", mode=int(bool(enable)))

    async def sntp_config(self) -> Optional[R.SntpConfig]:
        return await self._get(R.SntpConfig, "CIPSNTPCFG")

    async def set_sntp(self, enable: bool, timezone: Optional[int] = None, *servers: str) -> None:
        names = [n for n in P.COMMANDS["CIPSNTPCFG"].forms["set"].names
                 if n not in ("enable", "timezone")]
        kw: dict[str, Any] = dict(zip(names, servers))
        await self._cmd("CIPSNTPCFG", "set", enable=int(bool(enable)), timezone=timezone, **kw)

    async def sntp_time(self) -> Optional[R.SntpTime]:
        """AT+CIPSNTPTIME? -> records.SntpTime."""
        return await self._get(R.SntpTime, "CIPSNTPTIME")

    async def dns(self, default: bool = False) -> Optional[R.DnsServers]:
        """AT+CIPDNS_CUR? -> records.DnsServers."""
        return await self._get(R.DnsServers, _cd("CIPDNS", default))

    async def set_dns(self, enable: bool, *servers: str, default: bool = False) -> None:
        name = _cd("CIPDNS", default)
        names = [n for n in P.COMMANDS[name].forms["set"].names if n != "enable"]
        kw: dict[str, Any] = dict(zip(names, servers))
        await self._cmd(name, "set", enable=int(bool(enable)), **kw)

    # -- the send buffer (the engine drives these itself; exposed for completeness)
    async def buffer_status(self, link: Union[Link, int]) -> Optional[R.BufferStatus]:
        """AT+CIPBUFSTATUS=<id> -> records.BufferStatus."""
        lid = link.id if isinstance(link, Link) else int(link)
        return await self._get(R.BufferStatus, "CIPBUFSTATUS", "set", link=lid)

    async def check_segment(self, link: Union[Link, int], segment: int) -> Optional[R.SegmentCheck]:
        """AT+CIPCHECKSEQ=<id>,<segment> -> records.SegmentCheck."""
        lid = link.id if isinstance(link, Link) else int(link)
        return await self._get(R.SegmentCheck, "CIPCHECKSEQ", "set", link=lid, segment=segment)

    async def reset_segments(self, link: Union[Link, int]) -> None:
        """AT+CIPBUFRESET=<id>."""
        lid = link.id if isinstance(link, Link) else int(link)
        await self._cmd("CIPBUFRESET", "set", link=lid)


# ============================================================================ MQTT
@dataclass(frozen=True)
class MqttMessage:
    """One subscription message (``<topic> -> <data>``)."""
    topic: str
    payload: bytes


class Mqtt(_Group):
    """The module's own MQTT client (AT+MQTT*), with a receive path.

    ``async for msg in module.mqtt.messages(): ...`` or ``module.mqtt.on_message = fn``.
    Messages are queued (up to ``max_queue``, the oldest are kept and the
    overflow is counted in ``dropped`` and logged) until someone iterates.
    """

    max_queue = 1000

    def __init__(self, module: AsyncModule) -> None:
        super().__init__(module)
        self._e.attach_mqtt(self)
        self.on_message: Optional[Callable[[MqttMessage], Any]] = None
        self._subscribers: list[trio.MemorySendChannel[MqttMessage]] = []
        self._backlog: list[MqttMessage] = []
        self.dropped = 0
        self.connected = False
        self._link: Optional[Link] = None
        self.on_disconnect: Optional[Callable[[Optional[BaseException]], Any]] = None

    # -- engine hooks
    def message_received(self, ev: Any) -> None:
        """A subscription message from the module (the engine calls this)."""
        msg = MqttMessage(ev.topic, bytes(ev.data))
        if self.on_message is not None:
            try:
                self.on_message(msg)
            except Exception:
                log.exception("mqtt on_message callback failed")
        delivered = False
        for send in list(self._subscribers):
            try:
                send.send_nowait(msg)
                delivered = True
            except trio.WouldBlock:
                self.dropped += 1
                log.error("mqtt: subscriber queue full; message on %r dropped", msg.topic)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.remove(send)
        if not delivered and self.on_message is None:
            if len(self._backlog) < self.max_queue:
                self._backlog.append(msg)
            else:
                self.dropped += 1
                log.error("mqtt: %d messages waiting with no reader; dropping", len(self._backlog))

    def link_event_received(self, ev: Any) -> None:
        """A CLOSED of the MQTT connection ends the session (the engine calls this)."""
        if ev.state == "CLOSED" and self.connected:
            self._gone(None)

    def module_reset(self, err: Optional[BaseException]) -> None:
        """The module reset: a connected session is gone (the engine calls this)."""
        if self.connected:
            self._gone(err)

    def _gone(self, err: Optional[BaseException]) -> None:
        self.connected = False
        self._link = None
        if self.on_disconnect is not None:
            try:
                self.on_disconnect(err)
            except Exception:
                log.exception("mqtt on_disconnect callback failed")

    def shutdown(self) -> None:
        """The engine closes: every ``messages()`` iterator ends."""
        for send in self._subscribers:
            send.close()
        self._subscribers.clear()

    # -- commands
    async def configure(self, username: str = "", password: str = "", client_id: str = "",
                        alive_time: int = 60) -> None:
        """AT+MQTTSET (30-300 s keep-alive)."""
        await self._cmd("MQTTSET", "set", username=username, password=password,
                        client_id=client_id, alive_time=alive_time)

    async def settings(self) -> Optional[R.MqttSettings]:
        """AT+MQTTSET? -> records.MqttSettings."""
        return await self._get(R.MqttSettings, "MQTTSET")

    async def set_topics(self, publish: str, *subscribe: str) -> None:
        """AT+MQTTTOPIC=<publish>,<subscribe1>[,<2>][,<3>]."""
        if not 1 <= len(subscribe) <= 3:
            raise ValueError("one to three subscribe topics")
        names = [n for n in P.COMMANDS["MQTTTOPIC"].forms["set"].names if n != "publish"]
        kw: dict[str, Any] = dict(zip(names, subscribe))
        await self._cmd("MQTTTOPIC", "set", publish=publish, **kw)

    topics = set_topics

    async def get_topics(self) -> Optional[R.MqttTopics]:
        """AT+MQTTTOPIC? -> records.MqttTopics."""
        return await self._get(R.MqttTopics, "MQTTTOPIC")

    async def connect(self, host: str, port: int = 1883, auth: bool = False,
                      timeout: Optional[float] = None) -> None:
        """AT+MQTTCON=[<id>,]<auth>,<host>,<port> (takes one link id in mux mode)."""
        e = self._e
        lid: Optional[int] = None
        placeholder: Optional[Link] = None
        if e.mux:
            lid = e.alloc_id("MQTT")
            placeholder = Link(e, lid, e.new_generation(lid), "MQTT", remote=(host, port))
            e.add_link(placeholder)
        try:
            resp: Response = await e.command(req("MQTTCON", "set", link=lid, enable=int(bool(auth)),
                                       broker=host, port=port), timeout=timeout, check=False)
        except BaseException:
            if placeholder is not None:
                e.link_event(placeholder, "open_failed")
            raise
        if resp.result != "OK":
            if placeholder is not None:
                e.link_event(placeholder, "open_failed")
            raise E.ConnectError(f"MQTT connect to {host}:{port} failed: "
                                 f"{'; '.join(resp.lines()) or resp.result}", lines=resp.lines())
        if placeholder is not None:
            e.link_event(placeholder, "opened")
        self._link = placeholder
        self.connected = True

    def cloud_connected(self) -> None:
        """AT+AZCON / AT+AWSCON connected: the session is this client's (messages, disconnect)."""
        self.connected = True

    async def publish(self, message: Union[str, bytes, bytearray, memoryview]) -> None:
        """AT+MQTTPUB=<message> (to the publish topic of set_topics)."""
        if isinstance(message, (bytes, bytearray, memoryview)):
            try:
                message = bytes(message).decode("utf-8")
            except UnicodeDecodeError:
                # (the decode error would carry the whole message in its args)
                raise ValueError("parameter 'message': AT+MQTTPUB sends UTF-8 text; "
                                 "these bytes are not") from None
        await self._cmd("MQTTPUB", "set", message=message)

    async def disconnect(self) -> None:
        """AT+MQTTDIS."""
        e = self._e
        try:
            await e.command(req("MQTTDIS", "execute"), check=False)
        finally:
            if self._link is not None:
                e.link_event(self._link, "lost")
            self.connected = False
            self._link = None
            await self._m.aws.restore_mux()

    def messages(self, max_buffer: int = 1000) -> trio.MemoryReceiveChannel[MqttMessage]:
        """An async iterator of MqttMessage (use as ``async for``; close it to stop)."""
        send, recv = trio.open_memory_channel[MqttMessage](max_buffer)
        for msg in self._backlog:
            send.send_nowait(msg)
        self._backlog.clear()
        self._subscribers.append(send)
        return recv


class Azure(_Group):
    """Azure IoT Hub (spec 3.3.34-35); messages arrive through ``module.mqtt``."""

    async def configure(self, hub_id: str, device_id: str, key: str) -> None:
        """AT+AZSET=<hub>,<device>,<key>."""
        await self._cmd("AZSET", "set", hub_id=hub_id, device_id=device_id, key=key)

    async def connect(self, timeout: Optional[float] = None) -> None:
        """AT+AZCON."""
        resp: Response = await self._e.command(req("AZCON", "execute"), timeout=timeout, check=False)
        if resp.result != "OK":
            raise E.ConnectError(f"Azure connect failed: {'; '.join(resp.lines()) or resp.result}",
                                 lines=resp.lines())
        self._m.mqtt.cloud_connected()


class Aws(_Group):
    """AWS IoT Core (spec 3.3.36-38); messages arrive through ``module.mqtt``."""

    async def set_private_key(self, pem: Pem) -> None:
        """AT+AWSPKSEND=1 and the key (redacted in logs)."""
        await self._m.net.send_pem("AWSPKSEND", pem)

    async def delete_private_key(self) -> None:
        await self._cmd("AWSPKSEND", "set", mode=0)

    async def private_key(self) -> Optional[R.Pem]:
        try:
            return await self._get(R.Pem, "AWSPKSEND")
        except E.CommandError:
            return None

    async def set_client_cert(self, pem: Pem) -> None:
        """AT+CLICASEND=1 and the client certificate."""
        await self._m.net.send_pem("CLICASEND", pem)

    async def delete_client_cert(self) -> None:
        await self._cmd("CLICASEND", "set", mode=0)

    async def client_cert(self) -> Optional[R.Pem]:
        try:
            return await self._get(R.Pem, "CLICASEND")
        except E.CommandError:
            return None

    async def connect(self, timeout: Optional[float] = None) -> None:
        """AT+AWSCON.  The spec forbids it with CIPMUX=1: with no link open the engine
        switches to single-connection mode until ``mqtt.disconnect()``."""
        e = self._e
        if e.mux:
            if e.links:
                raise E.LinkLimitError("AT+AWSCON needs CIPMUX=0: close every link first")
            await self._cmd("CIPMUX", "set", mode=0)
            e.mux = False
            self._single = True
        resp: Response = await e.command(req("AWSCON", "execute"), timeout=timeout, check=False)
        if resp.result != "OK":
            await self.restore_mux()
            raise E.ConnectError(f"AWS connect failed: {'; '.join(resp.lines()) or resp.result}",
                                 lines=resp.lines())
        self._m.mqtt.cloud_connected()

    #: AWSCON switched the module to CIPMUX=0 (until mqtt.disconnect)
    _single = False

    async def restore_mux(self) -> None:
        """Back to CIPMUX=1 if :meth:`connect` switched to single-connection mode."""
        e = self._e
        if self._single:
            self._single = False
            await self._cmd("CIPMUX", "set", mode=1)
            e.mux = True


class AsyncModule:
    """What ``open_module`` yields: the engine plus the API groups."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        engine.api = self  # type: ignore[assignment]  # core.py declares it None (typed with core)
        self.system = System(self)
        self.wifi = Wifi(self)
        self.net = Net(self)
        self.mqtt = Mqtt(self)
        self.azure = Azure(self)
        self.aws = Aws(self)

    @property
    def aio(self) -> AsyncModule:
        return self

    @property
    def firmware(self) -> Optional[str]:
        return self.engine.firmware

    @property
    def version(self) -> Optional[R.VersionInfo]:
        """The module's AT+GMR record, read at start-up."""
        version: Optional[R.VersionInfo] = self.engine.version
        return version

    async def command(self, request: P.Request, **kw: Any) -> Response:
        """Run any codec Request (escape hatch); returns the engine's Response."""
        resp: Response = await self.engine.command(request, **kw)
        return resp

    def __repr__(self) -> str:
        return f"<wizsock module {self.engine.name} firmware={self.engine.firmware}>"
