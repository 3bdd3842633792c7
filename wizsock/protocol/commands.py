"""The command table: every command of the WizFi360 AT instruction set v1.1.1.7.

Each entry lists its forms, their parameters (types, ranges, lengths, optional
tails, all-or-none groups, multi-connection `link=` variants) and the shape of
the response each form prints before its final result. The builders, the
request parser, the response formatter and the response parser all read this
one table.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Type, TypedDict, TypeVar, overload

from . import records as R
from .grammar import (Bool, CommandSpec, Form, Host, Int, Ip, Mac, Param, RequestError, Rest, Sig,
                      Str)
from .shapes import Alt, ApList, Fields, Fixed, Flag, Group, Keyed, Lines, MaskedFields, Ping, Repeat


ParamT = TypeVar("ParamT", bound=Param)
RecT = TypeVar("RecT")
T = TypeVar("T")


class CommandTable(Dict[str, CommandSpec]):
    """name -> CommandSpec; also answers to the spellings in ALIASES (iteration: canonical names only)."""

    def __init__(self) -> None:
        super().__init__()
        self.aliases: Dict[str, str] = {}

    def __missing__(self, key: str) -> CommandSpec:
        canon = self.aliases.get(key)
        if canon is None:
            raise KeyError(key)
        return dict.__getitem__(self, canon)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self.aliases

    @overload
    def get(self, key: str, default: None = None) -> Optional[CommandSpec]: ...
    @overload
    def get(self, key: str, default: T) -> CommandSpec | T: ...

    def get(self, key: str, default: object = None) -> object:
        try:
            return self[key]
        except KeyError:
            return default


COMMANDS = CommandTable()

#: Spellings the spec uses for a command in its examples/titles that a module is
#: asked to accept as the same command on the wire.
ALIASES = {
    "CWDHPCS_CUR": "CWDHCPS_CUR",   # 3.2.13 Example2 "AT+CWDHPCS_CUR=0"
    "CWDHPCS_DEF": "CWDHCPS_DEF",   # 3.2.14 title, commands and Example1
    "CIPSENDERBUF": "CIPSENDBUF",   # 3.3.9 title and examples; the command list says CIPSENDBUF
}

#: Misspellings in the spec's command list / command history that name a command
#: of this table (documentation only; not accepted on the wire).
DOC_TYPOS = {
    "CWHOOSTNAME": "CWHOSTNAME",    # contents 3.2.27 and the command list
    "SSLCCONF": "CIPSSLCONF",       # command list "AT+SSLCCONF"
    "CIPSSLCCONF": "CIPSSLCONF",    # 4 Command History, 1.0.5.1
    "CIPSNTPIME": "CIPSNTPTIME",    # command list
    "MQTTOPIC": "MQTTTOPIC",        # 3.3.30 title
}


# ----------------------------------------------------------------------------
# helpers

def S(*params: Param, when: Optional[Dict[str, Tuple[Any, ...]]] = None,
      together: Sequence[Tuple[str, ...]] = ()) -> Sig:
    return Sig(tuple(params), dict(when or {}), tuple(together))


def mux(sig: Sig, link: Param) -> Tuple[Sig, Sig]:
    """The single-connection signature and its multi-connection twin with `link` first."""
    return sig, Sig((link,) + sig.params, sig.when, sig.together)


def Link(hi: int = 4) -> Int:
    return Int("link", 0, hi, doc="ID of network connection (AT+CIPMUX=1)")


def opt(p: ParamT) -> ParamT:
    """An optional copy of a parameter."""
    q = copy.copy(p)
    q.optional = True
    return q


def add(name: str, section: str, doc: str, *, test: bool = True, twin: Optional[str] = None,
        bare: bool = False, **forms: Form) -> CommandSpec:
    return add_forms(name, section, doc, forms, test=test, twin=twin, bare=bare)


def add_forms(name: str, section: str, doc: str, forms: Mapping[str, Form], *, test: bool = True,
              twin: Optional[str] = None, bare: bool = False, legacy: bool = False) -> CommandSpec:
    """`add` with the forms as one mapping (a checker cannot tell `**forms` from `test=`)."""
    forms = dict(forms)
    if test and ("set" in forms or "query" in forms) and "test" not in forms:
        forms["test"] = Form()
    spec = CommandSpec(name, forms, section=section, doc=doc, twin=twin, bare=bare, legacy=legacy,
                       aliases=[a for a, c in ALIASES.items() if c == name])
    dict.__setitem__(COMMANDS, name, spec)
    return spec


def twins(base: str, sections: Tuple[str, str], doc: str, **forms: Form) -> None:
    """The _CUR (not saved) and _DEF (saved in flash) pair sharing one description."""
    cur, dflt = base + "_CUR", base + "_DEF"
    add_forms(cur, sections[0], doc + "; not saved in the flash", forms, twin=dflt)
    add_forms(dflt, sections[1], doc + "; saved in the flash", forms, twin=cur)


def single(record: Type[RecT], *params: Param, **kw: Any) -> Fields[RecT]:
    return Fields(params, record, **kw)


class Setting(TypedDict):
    query: Form
    set: Form


def setting(record: Type[Any], p: Param) -> Setting:
    """Query `+NAME:<value>` and set `AT+NAME=<value>`: the common one-value command."""
    return {"query": Form(response=Fields((p,), record)), "set": Form((S(p),))}


def require(cond: Callable[[Dict[str, Any]], bool], name: str, msg: str) -> Callable[[Dict[str, Any]], None]:
    def check(values: Dict[str, Any]) -> None:
        if not cond(values):
            raise RequestError(f"parameter {name!r}: {msg}")
    return check


BAUDRATES = (2000000, 1500000, 1000000, 921600, 460800, 230400, 115200, 57600, 38400, 19200,
             14400, 9600, 4800, 2400, 1800, 1200, 600)
IO_PINS = (3, 6, 7, 9, 10, 11, 12, 13, 14, 16, 19, 20)   # spec 3.1.10 pin table
U32 = 2 ** 32 - 1


# ----------------------------------------------------------------------------
# 3.1 System control

add("", "3.1.1", "Tests AT startup", test=False, bare=True, execute=Form())
add("RST", "3.1.2", "Restarts the module", execute=Form())
add("GMR", "3.1.3", "Checks version information", execute=Form(response=Keyed(
    (("AT version", Rest("at_version")), ("SDK version", Rest("sdk_version")),
     ("compile time", Rest("compile_time"))), R.VersionInfo, sep=":", head=None)))
add("GSLP", "3.1.4", "Enters deep-sleep mode", set=Form((S(Int("time", 1000, 65535)),)))
add("E0", "3.1.5", "Switches echo off", test=False, bare=True, execute=Form())
add("E1", "3.1.5", "Switches echo on", test=False, bare=True, execute=Form())
add("RESTORE", "3.1.6", "Restores the factory default settings",
    execute=Form(), set=Form((S(Int("type", 0, 1)),), empty="execute"))

_UART = (Int("baudrate", choices=BAUDRATES), Int("databits", 5, 8), Int("stopbits", 1, 2),
         Int("parity", 0, 2), Int("flow_control", 0, 1))
twins("UART", ("3.1.7", "3.1.8"), "UART configuration",
      query=Form(response=Fields(_UART, R.UartConfig)), set=Form((S(*_UART),)))
add("SLEEP", "3.1.9", "Configures the sleep modes", **setting(R.SleepMode, Int("mode", 0, 2)))

_PIN = Int("pin", choices=IO_PINS)
add("SYSIOSETCFG", "3.1.10", "Configures IO working mode",
    set=Form((S(_PIN, Int("mode", 0, 1), Int("pull_up", 0, 1)),)))
add("SYSIOGETCFG", "3.1.11", "Checks IO working mode", set=Form((S(_PIN),), response=Fields(
    (Int("pin"), Int("mode", 0, 1), Int("pull_up", 0, 1)), R.IoConfig)))
add("SYSGPIODIR", "3.1.12", "Configures the direction of a GPIO", set=Form((S(_PIN, Int("dir", 0, 1)),)))
add("SYSGPIOWRITE", "3.1.13", "Configures the GPIO output level", set=Form((S(_PIN, Int("level", 0, 1)),)))
add("SYSGPIOREAD", "3.1.14", "Reads the GPIO input level", set=Form((S(_PIN),), response=Fields(
    (Int("pin"), Int("dir", 0, 1), Int("level", 0, 1)), R.GpioState)))

# ----------------------------------------------------------------------------
# 3.2 WiFi

twins("CWMODE", ("3.2.1", "3.2.2"), "WiFi mode", **setting(R.WifiMode, Int("mode", 1, 3)))

_SSID = Str("ssid", 32, 1)
twins("CWJAP", ("3.2.3", "3.2.4"), "Connects to an AP",
      query=Form(response=Fields((Str("ssid"), Mac("bssid"), Int("channel"), Int("rssi")), R.JoinedAp,
                                 optional=True)),
      set=Form((S(_SSID, Str("pwd", 64, secret=True), opt(Mac("bssid"))),),
               response=Fields((Int("code"),), R.JoinFailure, optional=True)))

add("CWLAPOPT", "3.2.5", "Sets the configuration for AT+CWLAP",
    set=Form((S(Int("sort_enable", 0, 1), Int("mask", 0, 0x7FF)),)))
_APS = ApList(MaskedFields((Int("ecn", 0, 4), Str("ssid"), Int("rssi"), Mac("mac"), Int("channel"), Int("wps", 0, 1)),
                           R.AccessPoint, paren=True, bits=R.CWLAP_MASK_BITS, default_mask=R.CWLAP_MASK_ALL))
add("CWLAP", "3.2.6", "Lists available APs", execute=Form(response=_APS),
    set=Form((S(_SSID, opt(Mac("mac", blank='""')), opt(Int("channel", 1, 14))),), response=_APS))
add("CWQAP", "3.2.7", "Disconnects from the AP", execute=Form())

_SAP = (Str("ssid", 32, 1), Str("pwd", 64, secret=True), Int("channel", 0, 13), Int("ecn", choices=(0, 2, 3)),
        opt(Int("max_conn", 1, 4)), opt(Int("ssid_hidden", 0, 1)))
twins("CWSAP", ("3.2.8", "3.2.9"), "Configures the SoftAP",
      query=Form(response=Fields(_SAP, R.SoftApConfig)),
      # "length of password: 8 ~ 64 bytes ASCII" (spec 3.2.8); an OPEN AP has none to check
      set=Form((S(*_SAP),), check=require(lambda v: v["ecn"] == 0 or (len(v["pwd"]) >= 8 and v["pwd"].isascii()),
                                         "pwd", "8 to 64 ASCII characters unless ecn is 0 (OPEN)")))
add("CWLIF", "3.2.10", "IP of stations connected to the SoftAP",
    execute=Form(response=Repeat(Fields((Ip("ip"), Mac("mac")), R.Station, head=None))))
twins("CWDHCP", ("3.2.11", "3.2.12"), "Enables/disables DHCP",
      query=Form(response=Fields((Int("value", 0, 3),), R.DhcpStatus)),
      set=Form((S(Int("mode", 0, 2), Int("en", 0, 1)),)))

_DHCPS = (Int("lease_time", 1, 2880), Ip("start_ip"), Ip("end_ip"))


def _ip_value(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return a << 24 | b << 16 | c << 8 | d


def _dhcps_range(v: Dict[str, Any]) -> None:
    if v["enable"] == 0:
        return
    if None in (v["lease_time"], v["start_ip"], v["end_ip"]):
        raise RequestError("parameter 'lease_time': enable=1 needs lease_time, start_ip and end_ip")
    if _ip_value(v["start_ip"]) > _ip_value(v["end_ip"]):
        raise RequestError("parameter 'end_ip': the range ends before its start_ip")


twins("CWDHCPS", ("3.2.13", "3.2.14"), "IP range of the SoftAP DHCP server",
      query=Form(response=Fields(_DHCPS, R.DhcpRange)),
      # "<enable> 1: ... the Parameter below have to be set"; with 0 the module ignores
      # them, which the spec's own Example1 "AT+CWDHCPS_CUR=0,1" relies on.
      # a range has both ends or none
      set=Form((S(Int("enable", 0, 1), *map(opt, _DHCPS), together=[("start_ip", "end_ip")]),), check=_dhcps_range))
add("CWAUTOCONN", "3.2.15", "Auto-connects to the AP or not", **setting(R.AutoConnect, Int("enable", 0, 1)))
twins("CIPSTAMAC", ("3.2.16", "3.2.17"), "MAC address of the station",
      **setting(R.MacAddress, Mac("mac", unicast=True)))
twins("CIPAPMAC", ("3.2.18", "3.2.19"), "MAC address of the SoftAP",
      **setting(R.MacAddress, Mac("mac", unicast=True)))

_IPCFG = Form(response=Keyed((("ip", Ip("ip")), ("gateway", Ip("gateway")), ("netmask", Ip("netmask"))),
                             R.IpConfig, sep=":"))
_IPSET = Form((S(Ip("ip"), opt(Ip("gateway")), opt(Ip("netmask")), together=[("gateway", "netmask")]),))
twins("CIPSTA", ("3.2.20", "3.2.21"), "IP address of the station", query=_IPCFG, set=_IPSET)
# "Currently, WizFi360 only supports class C IP addresses" (spec 3.2.22/3.2.23 notes)
twins("CIPAP", ("3.2.22", "3.2.23"), "IP address of the SoftAP", query=_IPCFG,
      set=Form(_IPSET.sigs, check=require(lambda v: 192 <= int(v["ip"].split(".")[0]) <= 223, "ip",
                                          "the SoftAP takes only class C addresses (192-223.x.x.x)")))

add("CWSTARTSMART", "3.2.24", "Starts SmartConfig", execute=Form(),
    # v1.1.x.x: =<try count>; v1.0.x.x: =<type>,<try count>
    # the spec gives no bound for <try count>; 255 is the one the emulator has always answered by
    set=Form((S(Int("try_count", 1, 255)), S(Int("type", 1, 3), Int("try_count", 1, 255))),
             empty="execute"))
add("CWSTOPSMART", "3.2.25", "Stops SmartConfig", execute=Form())
add("WPS", "3.2.26", "Enables the WPS function",
    set=Form((S(Int("enable", 0, 1)),), response=Flag("wps started", R.WpsState, "started")))
add("CWHOSTNAME", "3.2.27", "Host name of the station",
    query=Form(response=Fields((Rest("hostname"),), R.Hostname, build=lambda v: R.Hostname(
        None if v["hostname"] == "<NULL>" else v["hostname"]),
        split=lambda r: {"hostname": "<NULL>" if r.hostname is None else r.hostname})),
    set=Form((S(Str("hostname", 32, 1, pattern=r"[A-Za-z0-9_.\-]+", what="host name")),)))
_COUNTRY = (Int("policy", 0, 1), Str("country_code", 3, 1, pattern=r"[\x20-\x7e]+"), Int("channel_option", 0, 7))
twins("CWCOUNTRY", ("3.2.28", "3.2.29"), "WiFi country code",
      query=Form(response=Fields(_COUNTRY, R.CountryCode)), set=Form((S(*_COUNTRY),)))
add("WIZ_NETCONFIG", "3.2.30", "WebServer for setting SSID/PWD", execute=Form())

# ----------------------------------------------------------------------------
# 3.3 TCP/IP

add("CIPSTATUS", "3.3.1", "Gets the connection status", execute=Form(response=Group(
    R.ConnectionStatus,
    status=Fields((Int("status"),), head="STATUS"),
    links=Repeat(Fields((Int("link"), Str("type"), Str("remote_ip"), Int("remote_port"), Int("local_port"),
                         Int("tcp_type", 0, 1)), R.LinkStatus)))))
add("CIPDOMAIN", "3.3.2", "DNS function", set=Form((S(Host("domain", 63)),),
                                                 response=Fields((Ip("ip"),), R.DomainAddress)))

_TYPE = Str("type", choices=("TCP", "UDP", "SSL"))
_KEEPALIVE = opt(Int("keepalive", 0, 7200))
_TCP = S(_TYPE, Host("remote"), Int("port", 1, 65535), _KEEPALIVE, when={"type": ("TCP", "SSL")})
_UDP = S(_TYPE, Host("remote"), Int("port", 0, 65535), opt(Int("local_port", 1, 65535)), opt(Int("mode", 0, 2)),
         when={"type": ("UDP",)})
add("CIPSTART", "3.3.3", "Establishes a TCP connection, UDP transmission or SSL connection",
    set=Form(mux(_TCP, Link()) + mux(_UDP, Link())))
add("CIPSSLSIZE", "3.3.4", "Sets the size of the SSL buffer", **setting(R.SslBufferSize, Int("size", 2048, 4096)))
add("CIPSSLCONF", "3.3.5", "SSL client certificate option", **setting(R.SslConfig, Int("mode", 0, 2)))


def pem_command(name: str, section: str, doc: str) -> None:
    add(name, section, doc, query=Form(response=Lines(R.Pem)), set=Form((S(Int("mode", 0, 1)),)))


pem_command("CASEND", "3.3.6", "Sets the SSL CA certificate")

#: the longest payload of one AT+CIPSEND / CIPSENDEX / CIPSENDBUF (spec 3.3.7-3.3.9)
MAX_SEND = 2048
# a datagram's destination port: 0 is no port to send to
_SEND = S(Int("length", 1, MAX_SEND), opt(Host("remote")), opt(Int("port", 1, 65535)), together=[("remote", "port")])
add("CIPSEND", "3.3.7", "Sends data", execute=Form(), set=Form(mux(_SEND, Link())))
add("CIPSENDEX", "3.3.8", "Sends data (ends at <length> or \\0)", set=Form(mux(_SEND, Link())))
add("CIPSENDBUF", "3.3.9", "Writes data into the TCP-send-buffer",
    set=Form(mux(S(Int("length", 1, MAX_SEND)), Link()),
             response=Fields((Int("current", 0, U32), opt(Int("sent", 0, U32))), R.BufferSegment, head=None)))
add("CIPBUFRESET", "3.3.10", "Resets the segment ID count",
    execute=Form(), set=Form((S(Link()),), empty="execute"))
_BUFSTATUS = Fields((Int("next_segment"), Int("sent_segment"), Int("acked_segment"), Int("remaining"),
                     Int("queue")), R.BufferStatus, head=None)
add("CIPBUFSTATUS", "3.3.11", "Checks the status of the TCP-send-buffer",
    execute=Form(response=_BUFSTATUS), set=Form((S(Link()),), response=_BUFSTATUS, empty="execute"))
_SEGMENT = Int("segment", 0, U32)
add("CIPCHECKSEQ", "3.3.12", "Checks if a segment was sent successfully",
    set=Form(mux(S(_SEGMENT), Link()), response=Alt(
        Fields((Int("link"), Int("segment"), Bool("ok")), R.SegmentCheck, head=None),
        Fields((Int("segment"), Bool("ok")), R.SegmentCheck, head=None, fixed={"link": None}))))
add("CIPCLOSE", "3.3.13", "Closes the TCP/UDP/SSL connection (link 5: all)",
    execute=Form(), set=Form((S(Link(5)),), empty="execute"))
add("CIFSR", "3.3.14", "Gets the local IP address", execute=Form(response=Keyed(
    (("APIP", Ip("ap_ip")), ("APMAC", Mac("ap_mac")), ("STAIP", Ip("sta_ip")), ("STAMAC", Mac("sta_mac"))),
    R.LocalAddresses, sep=",")))
add("CIPMUX", "3.3.15", "Enables/disables multiple connections", **setting(R.MuxMode, Int("mode", 0, 1)))
add("CIPSERVER", "3.3.16", "Deletes/creates a TCP server",
    set=Form((S(Int("mode", 0, 1), opt(Int("port", 1, 65535))),)))
add("CIPSERVERMAXCONN", "3.3.17", "Maximum connections of the server",
    **setting(R.ServerMaxConn, Int("num", 1, 4)))
add("CIPMODE", "3.3.18", "Sets the transmission mode", **setting(R.TransferMode, Int("mode", 0, 1)))
add("SAVETRANSLINK", "3.3.19", "Saves the transparent transmission link in flash", set=Form((
    S(Int("mode", 0, 1), Host("remote"), Int("port", 1, 65535), opt(Str("type", choices=("TCP", "UDP"))),
      opt(Int("keepalive", 0, 7200)), when={"type": (None, "TCP")}),
    S(Int("mode", 0, 1), Host("remote"), Int("port", 1, 65535), Str("type", choices=("TCP", "UDP")),
      opt(Int("local_port", 1, 65535)), when={"type": ("UDP",)}),
)))
add("CIPSTO", "3.3.20", "Sets the TCP server timeout", **setting(R.ServerTimeout, Int("time", 0, 7200)))
_UPDATE = Repeat(Fields((Int("stage", 1, 4),)), R.UpdateProgress, "stages")
add("CIUPDATE", "3.3.21", "Updates the firmware through WiFi", execute=Form(response=_UPDATE),
    set=Form((S(Str("url", 256, 1, pattern=r"[\x21-\x7e]+", what="URL")),), response=_UPDATE, empty="execute"))
add("PING", "3.3.22", "Ping packets", set=Form((S(Host("host")),), response=Ping(R.PingResult)))
add("CIPDINFO", "3.3.23", "Shows the remote IP and port with +IPD",
    query=Form(response=Fields((Bool("enabled"),), R.IpdInfo)), set=Form((S(Int("mode", 0, 1)),)))

_SNTP = (Int("enable", 0, 1), opt(Int("timezone", -11, 13)), opt(Host("server0")), opt(Host("server1")),
         opt(Host("server2")))
add("CIPSNTPCFG", "3.3.25", "Configuration of SNTP",
    query=Form(response=Fields(_SNTP, R.SntpConfig, build=lambda v: R.SntpConfig(
        v["enable"], v["timezone"], tuple(v[k] for k in ("server0", "server1", "server2") if v[k] is not None)),
        split=lambda r: {"enable": r.enable, "timezone": r.timezone,
                         **dict(zip(("server0", "server1", "server2"), r.servers))})),
    set=Form((S(*_SNTP),), check=require(lambda v: v["enable"] == 0 or v["timezone"] is not None,
                                         "timezone", "must be set when SNTP is enabled")))
add("CIPSNTPTIME", "3.3.26", "Checks the SNTP time", query=Form(response=Fields((Rest("time"),), R.SntpTime)))
twins("CIPDNS", ("3.3.27", "3.3.28"), "User-defined DNS servers",
      query=Form(response=Repeat(Fields((Ip("server", quoted=False),)), R.DnsServers, "servers")),
      set=Form((S(Int("enable", 0, 1), opt(Ip("dns0")), opt(Ip("dns1"))),),
               check=require(lambda v: v["dns0"] is None or v["dns0"] != v["dns1"], "dns1",
                             "must differ from dns0")))

# MQTT / Azure / AWS
MQTT_STR = 50        # spec 3.3.29: user name, password, client ID "Max: 50byte"
MQTT_TOPIC = 128     # not bounded by the spec; a module buffer-sized bound of ours
MQTT_MESSAGE = 2048  # not bounded by the spec; the module's UART packet size

_MQTTSET = (Str("username", MQTT_STR, secret=True), Str("password", MQTT_STR, secret=True), Str("client_id", MQTT_STR),
            Int("alive_time", 30, 300))
add("MQTTSET", "3.3.29", "Configuration of the MQTT connection",
    query=Form(response=Fields(_MQTTSET, R.MqttSettings, head=None)), set=Form((S(*_MQTTSET),)))
_TOPICS = (Str("publish", MQTT_TOPIC, 1), Str("subscribe1", MQTT_TOPIC, 1), opt(Str("subscribe2", MQTT_TOPIC, 1)),
           opt(Str("subscribe3", MQTT_TOPIC, 1)))
add("MQTTTOPIC", "3.3.30", "Topics of publish and subscribe",
    query=Form(response=Fields(_TOPICS, R.MqttTopics, head=None, build=lambda v: R.MqttTopics(
        v["publish"], tuple(v[k] for k in ("subscribe1", "subscribe2", "subscribe3") if v[k] is not None)),
        split=lambda r: {"publish": r.publish, **dict(zip(("subscribe1", "subscribe2", "subscribe3"), r.subscribe))})),
    set=Form((S(*_TOPICS),)))
add("MQTTCON", "3.3.31", "Connects to a broker",
    set=Form(mux(S(Int("enable", 0, 1), Host("broker"), Int("port", 1, 65535)), Link()), response=Fixed("CONNECT")))
add("MQTTPUB", "3.3.32", "Publishes a message", set=Form((S(Str("message", MQTT_MESSAGE)),)))
add("MQTTDIS", "3.3.33", "Disconnects from a broker", execute=Form())
add("AZSET", "3.3.34", "Configuration of the Azure IoT Hub connection",
    set=Form((S(Str("hub_id", 128, 1), Str("device_id", 128, 1), Str("key", 256, 1, secret=True)),)))
add("AZCON", "3.3.35", "Connects to an Azure IoT Hub", execute=Form(response=Fixed("CONNECT")))
pem_command("AWSPKSEND", "3.3.36", "Sets the private key")
pem_command("CLICASEND", "3.3.37", "Sets the client certificate")
add("AWSCON", "3.3.38", "Connects to AWS IoT Core", execute=Form(response=Fixed("CONNECT")))


# ----------------------------------------------------------------------------
# Legacy un-suffixed forms (ESP8266 AT 1.x)
#
# The WizFi360 spec (§4 Command History) lists only the _CUR/_DEF commands, but the
# firmware descends from Espressif's ESP8266 AT and WIZnet's own drivers send the
# older bare forms, so real modules answer them:
#   - WIZnet WizFi360 Arduino library, src/utility/WizFi360Drv.cpp: reset() sends
#     "AT+CWMODE=1" and "AT+CWDHCP=1,1"; getCurrentSSID() parses "+CWJAP:\"" from
#     "AT+CWJAP?"; getNetmask()/getGateway() "+CIPSTA:netmask:\"" from "AT+CIPSTA?";
#     getIpAddressAP() "+CIPAP:ip:\"" from "AT+CIPAP?".
#   - WIZnet adafruit_wizfiatcontrol.py (Wiznet/WizFi360-EVB-Pico-CircuitPython at
#     6dbc9e402f92f29ef1e45b3ada8515b44384960b, libraries/adafruit_wizfiatcontrol/;
#     the -MicroPython twin likewise): "AT+CWMODE?" (parses "+CWMODE:"), "AT+CWMODE=%d",
#     "AT+CWJAP?" (parses "+CWJAP:"), 'AT+CWJAP="ssid","pwd"'. Its upstream, Adafruit's
#     ESP-AT driver (PyPI adafruit-circuitpython-esp-atcontrol, run by tests/vendor),
#     sends the same forms.
#   - Espressif "ESP8266 AT Instruction Set" v2.x (2017): each of these is
#     "[@deprecated] ... Please use AT+X_CUR or AT+X_DEF instead", its set form
#     "saved in the flash", its response headed by the bare name ("+CWSAP:...",
#     "+CIPAP:<ip>,...", "+CIPAPMAC:<mac>"): AT+UART §3.2.5, AT+CWMODE §4.2.1,
#     AT+CWJAP §4.2.4, AT+CWSAP §4.2.10, AT+CWDHCP §4.2.15, AT+CIPSTAMAC §4.2.20,
#     AT+CIPAPMAC §4.2.23, AT+CIPSTA §4.2.26, AT+CIPAP §4.2.29.
# Not known to exist, hence absent: bare CWDHCPS, CWCOUNTRY, CIPDNS (ESP8266 AT
# introduced them with _CUR/_DEF only).
# Our choices where the sources are silent: parameters and responses are those of
# the _DEF twin (the WizFi360 ranges); a set saves in the flash like _DEF; a query
# answers the current value like _CUR (ESP8266 AT 1.x queries report the state in
# use, and the drivers above read AT+CWJAP?/AT+CIPSTA? for the live connection).

#: bare name -> where the evidence for it is (see the comment above)
LEGACY = {
    "UART": "ESP8266 AT v2.x §3.2.5",
    "CWMODE": "ESP8266 AT v2.x §4.2.1; WizFi360Drv.cpp reset(); adafruit_wizfiatcontrol.py mode",
    "CWJAP": "ESP8266 AT v2.x §4.2.4; WizFi360Drv.cpp getCurrentSSID(); adafruit_wizfiatcontrol.py join_AP",
    "CWSAP": "ESP8266 AT v2.x §4.2.10",
    "CWDHCP": "ESP8266 AT v2.x §4.2.15; WizFi360Drv.cpp reset()",
    "CIPSTAMAC": "ESP8266 AT v2.x §4.2.20",
    "CIPAPMAC": "ESP8266 AT v2.x §4.2.23",
    "CIPSTA": "ESP8266 AT v2.x §4.2.26; WizFi360Drv.cpp getNetmask()/getGateway()",
    "CIPAP": "ESP8266 AT v2.x §4.2.29; WizFi360Drv.cpp getIpAddressAP()",
}


def legacy(name: str, source: str) -> None:
    """The deprecated bare form: the _DEF command's forms under the bare name."""
    dflt = COMMANDS[name + "_DEF"]
    add_forms(name, "legacy", dflt.doc.replace("; saved in the flash", "") +
              " (deprecated ESP8266-AT-1.x form: set saves in the flash, query answers the current value; "
              + source + ")", dflt.forms, twin=dflt.name, legacy=True)


for _name, _source in LEGACY.items():
    legacy(_name, _source)

COMMANDS.aliases.update(ALIASES)

#: spec 4 "Command History": the firmware version from which a command exists
#: (every command not listed here: 1.0.1.0)
SINCE = {
    (1, 0, 2, 4): ("MQTTSET", "MQTTTOPIC", "MQTTCON", "MQTTPUB", "MQTTDIS"),
    (1, 0, 4, 1): ("AZSET", "AZCON"),
    (1, 0, 5, 1): ("CIPSSLCONF", "CASEND"),
    (1, 0, 7, 2): ("WIZ_NETCONFIG",),
    (1, 1, 1, 2): ("AWSCON", "AWSPKSEND", "CLICASEND"),
}
for _version, _names in SINCE.items():
    for _name in _names:
        COMMANDS[_name].since = _version
