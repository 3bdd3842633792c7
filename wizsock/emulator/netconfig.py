"""AT+WIZ_NETCONFIG (spec §3.2.30): a real configuration web page on loopback.

AT+WIZ_NETCONFIG (SoftAP or SoftAP+Station mode only, else ERROR) answers OK,
prints ``smartconfig type:Web`` and serves a small page where a browser enters
an SSID and a password (``GET /`` is the form, ``POST /`` with
``application/x-www-form-urlencoded`` fields ``ssid`` and ``password`` submits
it).  The module then prints::

    Smart get wifi info
    ssid:<ssid>
    password:<password>

switches to Station mode, joins that AP of the world file (``WIFI CONNECTED``,
``WIFI GOT IP``), saves it like AT+CWJAP_DEF, prints ``smartconfig connected wifi``
and stops the page.  A failed join leaves the page up for another try.
AT+CWSTOPSMART (and a reset) stops the page.

Where the page listens: ``world["netconfig"] = {"host": "127.0.0.1", "port": 0}``
(defaults: the emulator's bind host, a free port).  The address is logged
(logger ``wizsock.emulator.netconfig``) and exposed as
``netconfig.address_of(emulator)`` -> ``(host, port)`` (None when not serving).
"""
from __future__ import annotations

import html
import http.server
import logging
import threading
import urllib.parse
import weakref
from typing import TYPE_CHECKING, Any, Callable, Optional, Tuple, cast

import trio

from wizsock.emulator import commands as _core
from wizsock.emulator.commands import need_form
from wizsock.emulator.registry import CommandFailed, Context, handler
from wizsock.protocol import Request
from wizsock.emulator.services import internal

if TYPE_CHECKING:
    from wizsock.emulator.core import Emulator

log = logging.getLogger("wizsock.emulator.netconfig")

MAX_FIELD = 64

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>WizFi360 network setup</title></head>
<body><h1>WizFi360 network setup</h1>{msg}
<form method="post" action="/">
<label>SSID <input name="ssid" maxlength="32"></label><br>
<label>Password <input name="password" type="password" maxlength="64"></label><br>
<button type="submit">Connect</button>
</form></body></html>
"""


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "WizFi360-WebServer"
    protocol_version = "HTTP/1.0"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:   # never log form contents (passwords)
        pass

    def _page(self, status: int, msg: str = "") -> None:
        body = PAGE.format(msg=msg).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] not in ("/", "/index.html"):
            return self._page(404, "<p>Not found</p>")
        self._page(200)

    def do_POST(self) -> None:
        try:
            n = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            n = 0
        if not 0 < n <= 1024:
            return self._page(400, "<p>Bad request</p>")
        fields = urllib.parse.parse_qs(self.rfile.read(n).decode("utf-8", "replace"), keep_blank_values=True)
        ssid = (fields.get("ssid") or [""])[0]
        pwd = (fields.get("password") or [""])[0]
        if not ssid or len(ssid.encode()) > 32 or len(pwd.encode()) > MAX_FIELD:
            return self._page(400, "<p>Enter an SSID (at most 32 bytes) and a password.</p>")
        self.server.submit(ssid, pwd)
        self._page(200, f"<p>Connecting to {html.escape(ssid)} ...</p>")


class _Server(http.server.HTTPServer):
    allow_reuse_address = True

    def __init__(self, addr: Tuple[str, int], on_submit: Callable[[str, str], None]) -> None:
        self.submit = on_submit
        super().__init__(addr, _Handler)


class NetConfig:
    """One running configuration page (per emulator)."""

    def __init__(self, emu: Emulator, host: str, port: int) -> None:
        self.emu = emu
        self.generation = emu.generation
        self.scope = trio.CancelScope()
        self.requests = None  # trio memory channel (send side used from the HTTP thread)
        self.httpd: Optional[_Server] = _Server((host, port), self._submit)
        self.address = cast(Tuple[str, int], self.httpd.server_address[:2])   # AF_INET: (str, int)
        self.thread: Optional[threading.Thread] = None

    def _submit(self, ssid: str, pwd: str) -> None:       # HTTP thread
        try:
            self.emu.call_soon(self._send.send_nowait, (ssid, pwd))
        except Exception:   # the module went away
            pass

    def _serve(self) -> None:
        internal()
        assert self.httpd is not None     # started by run() before stop() can clear it
        self.httpd.serve_forever(poll_interval=0.05)

    async def run(self) -> None:
        emu = self.emu
        st = emu.state
        self._send, receive = trio.open_memory_channel[Tuple[str, str]](16)
        self.thread = threading.Thread(target=self._serve, name="wizemu-netconfig", daemon=True)
        self.thread.start()
        try:
            with self.scope:
                async for ssid, pwd in receive:
                    emu.urc(b"Smart get wifi info")
                    emu.urc(b"ssid:" + ssid.encode("utf-8", "surrogateescape"))
                    emu.urc(b"password:" + pwd.encode("utf-8", "surrogateescape"))
                    joined = False
                    st.mode = 1
                    st.cur["cwmode"] = 1
                    try:
                        joined = await _core.join_ap(emu, ssid, pwd, urcs=True) is None
                    finally:
                        if not joined:      # SoftAP+Station: the page stays reachable for another try
                            st.mode = 3
                            st.cur["cwmode"] = 3
                    if joined:
                        st.cur["jap"] = [ssid, pwd, None]
                        st.flash["jap"] = [ssid, pwd, None]
                        emu.urc(b"smartconfig connected wifi")
                        break
        finally:
            self.stop()
            if _PAGES.get(emu) is self:
                del _PAGES[emu]

    def stop(self) -> None:
        self.scope.cancel()
        httpd, self.httpd = self.httpd, None
        if httpd is not None:
            if self.thread is not None:
                httpd.shutdown()
                self.thread.join(5)
            httpd.server_close()


#: the page each emulator serves: this plug-in's own state, kept here rather than set on
#: the emulator object (which the core owns)
_PAGES: "weakref.WeakKeyDictionary[Emulator, NetConfig]" = weakref.WeakKeyDictionary()


def address_of(emu: Emulator) -> Optional[Tuple[str, int]]:
    """``(host, port)`` of the page ``emu`` serves, None when it serves none."""
    nc = _PAGES.get(emu)
    return None if nc is None else nc.address


def _running(emu: Emulator) -> Optional[NetConfig]:
    nc = _PAGES.get(emu)
    if nc is not None and (nc.generation != emu.generation or nc.httpd is None):
        return None
    return nc


@handler("WIZ_NETCONFIG")
async def wiz_netconfig(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "execute")
    emu = ctx.emulator
    st = ctx.state
    if st.mode not in (2, 3) or _running(emu) is not None:
        raise CommandFailed("ERROR")
    internal()
    cfg = (st.world or {}).get("netconfig") or {}
    host: str = cfg.get("host") or emu.bind_host
    try:
        nc = NetConfig(emu, host, int(cfg.get("port", 0)))
    except OSError as e:
        log.warning("netconfig page could not listen on %s:%s: %s", host, cfg.get("port", 0), e)
        raise CommandFailed("ERROR")
    _PAGES[emu] = nc
    log.info("netconfig page at http://%s:%d/", *nc.address)
    emu.life.start_soon(nc.run)
    emu.urc(b"smartconfig type:Web")
    return "OK"


@handler("CWSTOPSMART")
async def cwstopsmart(ctx: Context, req: Request) -> Optional[str]:
    """Stops the netconfig page, then does what the core's CWSTOPSMART does."""
    nc = _running(ctx.emulator)
    if nc is not None:
        nc.stop()
    return await _core.cwstopsmart(ctx, req)
