"""System and WiFi commands of the emulated module (spec §3.1, §3.2)."""
from __future__ import annotations

import ipaddress

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

import trio

from wizsock import protocol as P
from wizsock.emulator.firmware import FIRMWARE_INFO, derive_ap_mac
from wizsock.emulator.registry import CommandFailed, Context, ModuleState, handler
from wizsock.protocol import Request
from wizsock.protocol import records as R

if TYPE_CHECKING:
    from wizsock.emulator.core import Emulator

GPIO_PINS = {3: "GPIOPA_0", 6: "GPIOPB_6", 7: "GPIOPB_9", 9: "GPIOPB_15", 10: "GPIOPB_18",
             11: "GPIOPB_13", 12: "GPIOPB_14", 13: "GPIOPB_17", 14: "GPIOPB_16",
             16: "GPIOPB_10", 19: "GPIOPB_7", 20: "GPIOPB_8"}


# ------------------------------------------------------------------ helpers
# Handlers read the codec's validated, typed parameters (`req["name"]`, `req.get`): the
# core answers ERROR to any line `protocol.parse_request` refuses before a handler runs,
# so ranges, lengths, choices and formats are checked in one place, the command table,
# which the host's encoder uses too. A handler refuses only for the module's state
# (`CommandFailed`): no AP, a link that is not open, NOT GPIO MODE!, the CIPMUX mode.

async def reply(ctx: Context, req: Request, record: object, form: Optional[str] = None,
                **opts: Any) -> None:
    """Print a response record in the codec's format for this command and form."""
    for line in P.format_response(req.name, form or req.form, record, **opts):
        await ctx.send_line(line)


def fail(req: Request, record: object, result: str = "FAIL") -> CommandFailed:
    return CommandFailed(result, P.format_response(req.name, req.form, record))


def q(s: object) -> bytes:
    """A quoted string field (the codec's quoting: \\ " , escaped), as bytes."""
    return P.quote(str(s)).encode("utf-8", "surrogateescape")


def is_def(req: Request) -> bool:
    """Whether this request works on the flash: a _DEF command, or the set form of a
    deprecated bare ESP8266-AT-1.x command (AT+CWMODE=1 saves, AT+CWMODE? answers the
    current mode; sources beside `wizsock.protocol.commands.LEGACY`)."""
    return req.name.endswith("_DEF") or (req.name in P.LEGACY and req.form == "set")


def base(req: Request) -> str:
    return req.name.rsplit("_", 1)[0] if req.name.endswith(("_CUR", "_DEF")) else req.name


def put(ctx: Context, req: Request, key: str, value: Any) -> None:
    ctx.state.cur[key] = value
    if is_def(req):
        ctx.state.flash[key] = value


def get(ctx: Context, req: Request, key: str) -> Any:
    return (ctx.state.flash if is_def(req) else ctx.state.cur)[key]


def need_form(req: Request, *forms: str) -> None:
    """The forms this handler implements. Not a check of the line (the codec has read
    it): the emulated module answers ERROR to a form the table has but the handler does
    not, e.g. the test form `AT+X=?` the table gives every set/query command."""
    if req.form not in forms:
        raise CommandFailed("ERROR")


async def number_setting(ctx: Context, req: Request, key: str, record: Callable[[int], object],
                         persist: bool = False) -> Optional[str]:
    """A query/set command over one number (its range is the table's); a persisted one
    is answered from flash, since a set writes both and flash is what survives a restart."""
    need_form(req, "query", "set")
    st = ctx.state
    if req.form == "query":
        await reply(ctx, req, record((st.flash if persist else st.cur)[key]))
        return "OK"
    (st.cur[key],) = req.args
    if persist:
        st.flash[key] = st.cur[key]
    return "OK"


def need_mode(ctx: Context, *modes: int) -> None:
    if ctx.state.mode not in modes:
        raise CommandFailed("ERROR")


# ------------------------------------------------------------------- system
@handler("")
async def at(ctx: Context, req: Request) -> Optional[str]:
    return "OK"


@handler("E0", "E1")
async def ate(ctx: Context, req: Request) -> Optional[str]:
    ctx.emulator.set_echo(req.name == "E1")
    return "OK"


@handler("RST")
async def rst(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "execute")
    await ctx.write(b"\r\nOK\r\n")
    await ctx.emulator.wait_output_drained()
    ctx.emulator.reset()
    await trio.sleep_forever()


@handler("GMR")
async def gmr(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "execute")
    await reply(ctx, req, R.VersionInfo(*FIRMWARE_INFO))
    return "OK"


@handler("GSLP")
async def gslp(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "set")
    ms = req["time"]
    await ctx.write(b"\r\nOK\r\n")
    await ctx.emulator.wait_output_drained()
    emu = ctx.emulator
    emu.stop_listening()
    await emu.net.drop_all(silent=True)
    await trio.sleep(ms / 1000.0)
    emu.reset(noise=True)
    await trio.sleep_forever()


@handler("RESTORE")
async def restore(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "execute", "set")
    kind = 0  # spec: type 0 (default) restores only the Station MAC; 1 restores everything
    if req.form == "set":
        kind = req["type"]
    await ctx.write(b"\r\nOK\r\n")
    await ctx.emulator.wait_output_drained()
    ctx.emulator.restore_factory(everything=bool(kind))
    ctx.emulator.reset()
    await trio.sleep_forever()


@handler("UART_CUR", "UART_DEF", "UART")
async def uart(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "set")
    if req.form == "query":
        await reply(ctx, req, R.UartConfig(*get(ctx, req, "uart")))
        return "OK"
    v = list(req.args)   # baudrate, databits, stopbits, parity, flow_control
    b = v[0]
    put(ctx, req, "uart", v)
    await ctx.write(b"\r\nOK\r\n")
    emu = ctx.emulator
    await emu.wait_output_drained()  # the OK leaves at the old rate, then the UART switches
    emu.set_uart(b, bool(v[4]))
    return None


@handler("SLEEP")
async def sleep_cmd(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "set")
    if req.form == "query":
        await reply(ctx, req, R.SleepMode(ctx.state.cur["sleep"]))
        return "OK"
    need_mode(ctx, 1)
    ctx.state.cur["sleep"] = req["mode"]
    return "OK"


def _pin(ctx: Context, req: Request) -> Tuple[Dict[str, int], int]:
    """The IO pin's state (the table allows only the pins of spec 3.1.10)."""
    pin = req["pin"]
    io = ctx.state.cur["sysio"]
    return io.setdefault(str(pin), {"mode": 0, "pull": 0, "dir": 0, "level": 0}), pin


def _need_gpio(p: Dict[str, int]) -> None:
    if p["mode"] != 1:
        raise CommandFailed("ERROR", [b"NOT GPIO MODE!"])


@handler("SYSIOSETCFG")
async def sysiosetcfg(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "set")
    p, _ = _pin(ctx, req)
    p.update(mode=req["mode"], pull=req["pull_up"])
    return "OK"


@handler("SYSIOGETCFG")
async def sysiogetcfg(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "set")
    p, pin = _pin(ctx, req)
    await reply(ctx, req, R.IoConfig(pin, p["mode"], p["pull"]))
    return "OK"


@handler("SYSGPIODIR")
async def sysgpiodir(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "set")
    p, _ = _pin(ctx, req)
    d = req["dir"]
    _need_gpio(p)
    p["dir"] = d
    if d == 0:
        p["pull"] = 1  # input: pull-up set automatically
    return "OK"


@handler("SYSGPIOWRITE")
async def sysgpiowrite(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "set")
    p, _ = _pin(ctx, req)
    level = req["level"]
    _need_gpio(p)
    if p["dir"] != 1:
        raise CommandFailed("ERROR", [b"NOT OUTPUT MODE!"])
    p["level"] = level
    return "OK"


@handler("SYSGPIOREAD")
async def sysgpioread(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "set")
    p, pin = _pin(ctx, req)
    _need_gpio(p)
    if p["dir"] == 1:
        level = p["level"]
    else:
        inputs = ctx.state.world.get("gpio", {})
        level = int(inputs.get(str(pin), 1 if p["pull"] else 0))
    await reply(ctx, req, R.GpioState(pin, p["dir"], level))
    return "OK"


# --------------------------------------------------------------------- WiFi
@handler("CWMODE_CUR", "CWMODE_DEF", "CWMODE")
async def cwmode(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "set", "test")
    if req.form == "test":
        return "OK"
    if req.form == "query":
        v = ctx.state.mode if not is_def(req) else ctx.state.flash["cwmode"]
        await reply(ctx, req, R.WifiMode(v))
        return "OK"
    m = req["mode"]
    put(ctx, req, "cwmode", m)
    old = ctx.state.mode
    ctx.state.mode = m
    if old in (1, 3) and m == 2 and ctx.state.station is not None:
        await leave_ap(ctx.emulator, urc=False, ctx=ctx)
    return "OK"


def find_aps(world: Dict[str, Any], ssid: Optional[str] = None, bssid: Optional[str] = None,
             channel: Optional[int] = None) -> List[Dict[str, Any]]:
    out = []
    for ap in world.get("aps", []):
        if ssid is not None and ssid != "" and ap.get("ssid") != ssid:
            continue
        if bssid and ap.get("mac", "").lower() != bssid.lower():
            continue
        if channel is not None and int(ap.get("channel", 1)) != channel:
            continue
        out.append(ap)
    return out


async def leave_ap(emu: Emulator, urc: bool = True, ctx: Optional[Context] = None) -> None:
    st = emu.state
    if st.station is None:
        return
    st.station = None
    st.station_ip = None
    await emu.net.drop_all(silent=False)
    if urc or ctx is None:
        emu.urc(b"WIFI DISCONNECT")
    else:
        await ctx.send_line(b"WIFI DISCONNECT")


async def join_ap(emu: Emulator, ssid: str, pwd: str, bssid: Optional[str] = None, urcs: bool = False,
                  ctx: Optional[Context] = None) -> Optional[int]:
    """Join an AP of the world; returns None or the CWJAP error code (1-4)."""
    st = emu.state

    async def say(line: bytes) -> None:
        if urcs or ctx is None:
            emu.urc(line)
        else:
            await ctx.send_line(line)

    if st.station is not None:
        await leave_ap(emu, urc=urcs, ctx=ctx)
    cands = find_aps(st.world, ssid, bssid)
    if not cands:
        await trio.sleep(min(0.2, st.world.get("scan_time", 0.05)))
        return 3
    ap = max(cands, key=lambda a: int(a.get("rssi", -70)))
    await trio.sleep(float(ap.get("join_time", 0.05)))
    fail = ap.get("fail")
    if fail in (1, 4):
        return int(fail)
    if int(ap.get("ecn", 3)) != 0 and ap.get("password", "") != pwd:
        return 2
    await say(b"WIFI CONNECTED")
    await trio.sleep(float(ap.get("dhcp_time", 0.01)))
    st.station = ap
    if st.cur["dhcp"] & 2:
        st.station_ip = ap.get("ip", "192.168.10.%d" % (100 + emu.rng.randrange(100)))
    else:
        st.station_ip = st.cur["sta_ip"][0]
    await say(b"WIFI GOT IP")
    return None


@handler("CWJAP_CUR", "CWJAP_DEF", "CWJAP")
async def cwjap(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "set")
    st = ctx.state
    if req.form == "query":
        ap = st.station
        await reply(ctx, req, None if ap is None else R.JoinedAp(
            ap["ssid"], ap.get("mac", "").lower(), int(ap.get("channel", 1)), int(ap.get("rssi", -70))))
        return "OK"
    ssid, pwd = req["ssid"], req["pwd"]
    bssid = req["bssid"] and req["bssid"].lower()
    need_mode(ctx, 1, 3)
    jap = [ssid, pwd, bssid]
    st.cur["jap"] = jap
    if is_def(req):
        st.flash["jap"] = jap
    code = await join_ap(ctx.emulator, ssid, pwd, bssid, ctx=ctx)
    if code is not None:
        raise fail(req, R.JoinFailure(code))
    return "OK"


@handler("CWLAPOPT")
async def cwlapopt(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "set")
    ctx.state.cur["lapopt"] = [req["sort_enable"], req["mask"]]
    return "OK"


@handler("CWLAP")
async def cwlap(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "execute", "set")
    need_mode(ctx, 1, 3)
    ssid = bssid = channel = None
    if req.form == "set":
        ssid, bssid, channel = req["ssid"], req["mac"], req["channel"]
    await trio.sleep(float(ctx.state.world.get("scan_time", 0.05)))
    aps = [ap for ap in find_aps(ctx.state.world, ssid, bssid, channel) if not ap.get("hidden")]
    sort, mask = ctx.state.cur["lapopt"]
    if sort:
        aps.sort(key=lambda ap: -int(ap.get("rssi", -70)))
    recs = [R.AccessPoint(int(ap.get("ecn", 3)), ap["ssid"], int(ap.get("rssi", -70)),
                          ap.get("mac", "").lower(), int(ap.get("channel", 1)), int(ap.get("wps", 0)))
            for ap in aps]
    await reply(ctx, req, recs, mask=mask, sort=bool(sort))
    return "OK"


@handler("CWQAP")
async def cwqap(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "execute")
    await leave_ap(ctx.emulator, urc=False, ctx=ctx)
    ctx.state.cur["jap"] = None  # no auto-rejoin of this session
    return "OK"


@handler("CWSAP_CUR", "CWSAP_DEF", "CWSAP")
async def cwsap(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "set")
    if req.form == "query":
        await reply(ctx, req, R.SoftApConfig(*get(ctx, req, "sap")))
        return "OK"
    ssid, pwd, chl, ecn = req["ssid"], req["pwd"], req["channel"], req["ecn"]
    maxconn, hidden = req.get("max_conn", 4), req.get("ssid_hidden", 0)
    need_mode(ctx, 2, 3)
    put(ctx, req, "sap", [ssid, "" if ecn == 0 else pwd, chl, ecn, maxconn, hidden])
    return "OK"


def station_ip(st: ModuleState, i: int, sta: Dict[str, Any]) -> str:
    return sta.get("ip") or str(ipaddress.IPv4Address(st.cur["dhcps"][1]) + i)


def _stations(st: ModuleState) -> List[Tuple[str, str]]:
    """SoftAP clients now associated: world stations without `join_after`, and those
    whose join the emulator has announced (and that have not left)."""
    joined = st.cur.get("sta_joined", set())
    out = []
    for i, sta in enumerate(st.world.get("stations", [])):
        mac = sta["mac"].lower()
        if ("join_after" not in sta or mac in joined) and mac not in st.cur.get("sta_left", set()):
            out.append((station_ip(st, i, sta), mac))
    return out[: st.cur["sap"][4]]


async def softap_stations(emu: Emulator) -> None:
    """World stations with `join_after`/`leave_after` (seconds after boot) come and go,
    announced as the module does: +STA_CONNECTED, +DIST_STA_IP, +STA_DISCONNECTED."""
    st = emu.state
    events = []
    for i, sta in enumerate(st.world.get("stations", [])):
        if "join_after" in sta:
            events.append((float(sta["join_after"]), "join", i, sta))
        if "leave_after" in sta:
            events.append((float(sta["leave_after"]), "leave", i, sta))
    t0 = trio.current_time()
    st.cur["sta_joined"], st.cur["sta_left"] = set(), set()
    for when, what, i, sta in sorted(events, key=lambda e: e[0]):
        await trio.sleep_until(t0 + when)
        if st.mode not in (2, 3):
            continue
        mac = sta["mac"].lower()
        if what == "join":
            st.cur["sta_joined"].add(mac)
            st.cur["sta_left"].discard(mac)
            emu.urc(b"+STA_CONNECTED:" + q(mac))
            emu.urc(b"+DIST_STA_IP:" + q(mac) + b"," + q(station_ip(st, i, sta)))
        else:
            st.cur["sta_left"].add(mac)
            emu.urc(b"+STA_DISCONNECTED:" + q(mac))


@handler("CWLIF")
async def cwlif(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "execute")
    st = ctx.state
    if st.mode in (2, 3) and st.cur["dhcp"] & 1:
        await reply(ctx, req, [R.Station(ip, mac) for ip, mac in _stations(st)])
    return "OK"


@handler("CWDHCP_CUR", "CWDHCP_DEF", "CWDHCP")
async def cwdhcp(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "set")
    if req.form == "query":
        await reply(ctx, req, R.DhcpStatus(get(ctx, req, "dhcp")))
        return "OK"
    mode, en = req["mode"], req["en"]
    _dhcp_bits(ctx, req, {0: 1, 1: 2, 2: 3}[mode], bool(en))
    st = ctx.state
    if st.station is not None and mode in (1, 2):
        st.station_ip = st.station.get("ip", st.station_ip) if en else st.cur["sta_ip"][0]
    return "OK"


@handler("CWDHCPS_CUR", "CWDHCPS_DEF", "CWDHPCS_CUR", "CWDHPCS_DEF")
async def cwdhcps(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "set")
    if req.form == "query":
        await reply(ctx, req, R.DhcpRange(*get(ctx, req, "dhcps")))
        return "OK"
    need_mode(ctx, 2, 3)
    if req["enable"] == 0:   # the default range; the module ignores any range given with 0
        ap = ipaddress.IPv4Address(ctx.state.cur["ap_ip"][0])
        net = int(ap) & 0xFFFFFF00
        v: List[Any] = [120, str(ipaddress.IPv4Address(net + 2)), str(ipaddress.IPv4Address(net + 101))]
    else:
        v = [req["lease_time"], req["start_ip"], req["end_ip"]]
        ap = ctx.state.cur["ap_ip"][0]
        if any(x.rsplit(".", 1)[0] != ap.rsplit(".", 1)[0] for x in v[1:]):
            raise CommandFailed("ERROR")   # outside the SoftAP's own /24: depends on AT+CIPAP
    put(ctx, req, "dhcps", v)
    return "OK"


@handler("CWAUTOCONN")
async def cwautoconn(ctx: Context, req: Request) -> Optional[str]:
    return await number_setting(ctx, req, "autoconn", R.AutoConnect, persist=True)


@handler("CIPSTAMAC_CUR", "CIPSTAMAC_DEF", "CIPSTAMAC")
async def cipstamac(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "set")
    if req.form == "query":
        await reply(ctx, req, R.MacAddress(get(ctx, req, "stamac")))
        return "OK"
    put(ctx, req, "stamac", req["mac"].lower())
    return "OK"


@handler("CIPAPMAC_CUR", "CIPAPMAC_DEF", "CIPAPMAC")
async def cipapmac(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "set")
    if req.form == "query":
        mac = ctx.state.cur["apmac"] if not is_def(req) else derive_ap_mac(ctx.state.flash["stamac"])
        await reply(ctx, req, R.MacAddress(mac))
        return "OK"
    return "OK"  # accepted but not applied: the SoftAP MAC follows the Station MAC at boot


def _ipconf(ctx: Context, req: Request, key: str, dhcp_bit: int) -> None:
    ip = req["ip"]
    gw = req.get("gateway", ip.rsplit(".", 1)[0] + ".1")
    mask = req.get("netmask", "255.255.255.0")
    put(ctx, req, key, [ip, gw, mask])
    _dhcp_bits(ctx, req, dhcp_bit, False)  # static IP turns that DHCP off


def _dhcp_bits(ctx: Context, req: Request, bits: int, on: bool) -> None:
    for store in ((ctx.state.cur, ctx.state.flash) if is_def(req) else (ctx.state.cur,)):
        store["dhcp"] = (store["dhcp"] | bits) if on else (store["dhcp"] & ~bits)


@handler("CIPSTA_CUR", "CIPSTA_DEF", "CIPSTA")
async def cipsta(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "set")
    st = ctx.state
    if req.form == "query":
        if is_def(req):
            v = st.flash["sta_ip"]
        elif not st.cur["dhcp"] & 2:
            v = st.cur["sta_ip"]
        elif st.station is None:
            v = ["0.0.0.0", "0.0.0.0", "0.0.0.0"]
        else:
            assert st.station_ip is not None      # joined: the station has its address
            v = [st.station_ip, st.station.get("gateway", st.station_ip.rsplit(".", 1)[0] + ".1"),
                 st.station.get("netmask", "255.255.255.0")]
        await reply(ctx, req, R.IpConfig(*v))
        return "OK"
    _ipconf(ctx, req, "sta_ip", 2)
    if st.station is not None:
        st.station_ip = st.cur["sta_ip"][0]
    return "OK"


@handler("CIPAP_CUR", "CIPAP_DEF", "CIPAP")
async def cipap(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "set")
    if req.form == "query":
        await reply(ctx, req, R.IpConfig(*get(ctx, req, "ap_ip")))
        return "OK"
    _ipconf(ctx, req, "ap_ip", 1)
    return "OK"


@handler("CWHOSTNAME")
async def cwhostname(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "set")
    st = ctx.state
    if req.form == "query":
        await reply(ctx, req, R.Hostname(None if st.mode == 2 else st.cur["hostname"]))
        return "OK"
    need_mode(ctx, 1, 3)
    st.cur["hostname"] = req["hostname"]
    return "OK"


@handler("CWCOUNTRY_CUR", "CWCOUNTRY_DEF")
async def cwcountry(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "set")
    if req.form == "query":
        p, code, ch = get(ctx, req, "country")
        await reply(ctx, req, R.CountryCode(p, code[:2], ch))
        return "OK"
    put(ctx, req, "country", list(req.args))   # policy, country_code, channel_option
    return "OK"


@handler("CWSTARTSMART")
async def cwstartsmart(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "execute", "set")
    need_mode(ctx, 1)
    st = ctx.state
    st.cur["smart"] = True
    emu = ctx.emulator
    gen = emu.generation

    async def run() -> None:
        sc = st.world.get("smartconfig")
        await trio.sleep(float((sc or {}).get("delay", 0.1)))
        if not sc or not st.cur.get("smart") or emu.generation != gen:
            return
        info = R.SmartConfigInfo("AIRKISS", sc["ssid"], sc.get("password", ""))
        for line in P.format_smartconfig(info):
            emu.urc(line)
        code = await join_ap(emu, sc["ssid"], sc.get("password", ""), urcs=True)
        if code is None:
            st.cur["jap"] = st.flash["jap"] = [sc["ssid"], sc.get("password", ""), None]
            for line in P.format_smartconfig(R.SmartConfigInfo(connected=True)):
                emu.urc(line)

    emu.life.start_soon(run)
    return "OK"


@handler("CWSTOPSMART")
async def cwstopsmart(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "execute")
    ctx.state.cur["smart"] = False
    return "OK"


@handler("WPS")
async def wps(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "set")
    need_mode(ctx, 1, 3)
    st = ctx.state
    if not req["enable"]:
        st.cur["wps"] = False
        return "OK"
    st.cur["wps"] = True
    await reply(ctx, req, R.WpsState(True))
    emu = ctx.emulator
    gen = emu.generation

    async def run() -> None:
        await trio.sleep(float(st.world.get("wps_time", 0.1)))
        if not st.cur.get("wps") or emu.generation != gen:
            return
        st.cur["wps"] = False
        aps = [ap for ap in st.world.get("aps", []) if ap.get("wps") and int(ap.get("ecn", 3)) != 1]
        if not aps:
            emu.urc(b"wps fail")
            return
        ap = aps[0]
        emu.urc(b"wps success,connecting ap ...")
        code = await join_ap(emu, ap["ssid"], ap.get("password", ""), urcs=True)
        if code is None:
            st.cur["jap"] = st.flash["jap"] = [ap["ssid"], ap.get("password", ""), None]

    emu.life.start_soon(run)
    return "OK"
