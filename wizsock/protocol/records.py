"""Typed records of the module's responses (frozen dataclasses).

Field names equal the parameter names of the command table, so one
description both formats (emulator) and parses (host) a response line.
Optional fields the module did not print are None.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Tuple

if TYPE_CHECKING:
    import datetime as _dt

# --- meaning tables (shared by engine errors and emulator behaviour) ---------

#: AT+CWJAP_CUR/_DEF set failure: `+CWJAP_CUR:<error code>` then FAIL (spec 3.2.3)
CWJAP_ERRORS = {
    1: "connection timeout",
    2: "wrong password",
    3: "cannot find the target AP",
    4: "connection failed",
}

#: <ecn> of AT+CWLAP / AT+CWSAP (spec 3.2.6)
ECN = {0: "OPEN", 1: "WEP", 2: "WPA_PSK", 3: "WPA2_PSK", 4: "WPA_WPA2_PSK"}

#: <stat> of AT+CIPSTATUS (spec 3.3.1)
CIPSTATUS_STATES = {
    2: "connected to an AP, IP obtained",
    3: "TCP or UDP transmission created",
    4: "TCP or UDP transmission disconnected",
    5: "not connected to an AP",
}

#: <n> of AT+CIUPDATE (spec 3.3.21)
CIUPDATE_STAGES = {1: "find the server", 2: "connect to server", 3: "get the software version", 4: "start updating"}

#: AT+CWLAPOPT <mask> bits -> AccessPoint field (spec 3.2.5)
CWLAP_MASK_BITS = {"ecn": 0, "ssid": 1, "rssi": 2, "mac": 3, "channel": 4, "wps": 10}
CWLAP_MASK_ALL = 0b10000011111  # 1055


# --- system ------------------------------------------------------------------

@dataclass(frozen=True)
class VersionInfo:
    """AT+GMR."""
    at_version: str
    sdk_version: str
    compile_time: str

    @property
    def version(self) -> Optional[Tuple[int, ...]]:
        """The AT firmware version as numbers, e.g. (1, 0, 1, 0) for "1.0.1.0(Jun 6 2019 ...)"."""
        import re
        m = re.match(r"\s*v?(\d+(?:\.\d+)*)", self.at_version)
        return tuple(int(x) for x in m.group(1).split(".")) if m else None


@dataclass(frozen=True)
class UartConfig:
    """AT+UART_CUR? / AT+UART_DEF?"""
    baudrate: int
    databits: int = 8
    stopbits: int = 1
    parity: int = 0
    flow_control: int = 0


@dataclass(frozen=True)
class SleepMode:
    """AT+SLEEP?  0 disabled, 1 light sleep, 2 modem sleep."""
    mode: int


@dataclass(frozen=True)
class IoConfig:
    """AT+SYSIOGETCFG=<pin>."""
    pin: int
    mode: int
    pull_up: int


@dataclass(frozen=True)
class GpioState:
    """AT+SYSGPIOREAD=<pin>."""
    pin: int
    dir: int
    level: int


# --- WiFi --------------------------------------------------------------------

@dataclass(frozen=True)
class WifiMode:
    """AT+CWMODE_CUR? / _DEF?  1 station, 2 SoftAP, 3 both."""
    mode: int


@dataclass(frozen=True)
class JoinedAp:
    """AT+CWJAP_CUR? / _DEF?"""
    ssid: str
    bssid: Optional[str] = None
    channel: Optional[int] = None
    rssi: Optional[int] = None


@dataclass(frozen=True)
class JoinFailure:
    """`+CWJAP_CUR:<error code>` printed before FAIL."""
    code: int

    @property
    def meaning(self) -> str:
        return CWJAP_ERRORS.get(self.code, f"unknown error {self.code}")


@dataclass(frozen=True)
class AccessPoint:
    """One `+CWLAP:(...)` line; fields hidden by AT+CWLAPOPT's mask are None."""
    ecn: Optional[int] = None
    ssid: Optional[str] = None
    rssi: Optional[int] = None
    mac: Optional[str] = None
    channel: Optional[int] = None
    wps: Optional[int] = None


@dataclass(frozen=True)
class SoftApConfig:
    """AT+CWSAP_CUR? / _DEF?"""
    ssid: str
    pwd: str = field(repr=False)    # secrets stay out of reprs (logs, tracebacks)
    channel: int
    ecn: int
    max_conn: Optional[int] = None
    ssid_hidden: Optional[int] = None


@dataclass(frozen=True)
class Station:
    """One line of AT+CWLIF."""
    ip: str
    mac: str


@dataclass(frozen=True)
class DhcpStatus:
    """AT+CWDHCP_CUR? / _DEF?  bit 0: SoftAP DHCP, bit 1: station DHCP."""
    value: int

    @property
    def softap(self) -> bool:
        return bool(self.value & 1)

    @property
    def station(self) -> bool:
        return bool(self.value & 2)


@dataclass(frozen=True)
class DhcpRange:
    """AT+CWDHCPS_CUR? / _DEF?"""
    lease_time: int
    start_ip: str
    end_ip: str


@dataclass(frozen=True)
class AutoConnect:
    """AT+CWAUTOCONN?"""
    enable: int


@dataclass(frozen=True)
class MacAddress:
    """AT+CIPSTAMAC_*? / AT+CIPAPMAC_*?"""
    mac: str


@dataclass(frozen=True)
class IpConfig:
    """AT+CIPSTA_*? / AT+CIPAP_*?"""
    ip: str
    gateway: Optional[str] = None
    netmask: Optional[str] = None


@dataclass(frozen=True)
class Hostname:
    """AT+CWHOSTNAME?  None when the module prints `<NULL>` (station disabled)."""
    hostname: Optional[str]


@dataclass(frozen=True)
class CountryCode:
    """AT+CWCOUNTRY_CUR? / _DEF?"""
    policy: int
    country_code: str
    channel_option: int


@dataclass(frozen=True)
class WpsState:
    """AT+WPS=<enable>: True when the module printed `wps started`."""
    started: bool


@dataclass(frozen=True)
class SmartConfigInfo:
    """The messages after AT+CWSTARTSMART / AT+WIZ_NETCONFIG (spec 3.2.24, 3.2.30)."""
    type: Optional[str] = None       # AIRKISS, ESPTOUCH, Web
    ssid: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    connected: bool = False


# --- TCP/IP ------------------------------------------------------------------

@dataclass(frozen=True)
class LinkStatus:
    """One `+CIPSTATUS:` line."""
    link: int
    type: str
    remote_ip: str
    remote_port: int
    local_port: int
    tcp_type: int


@dataclass(frozen=True)
class ConnectionStatus:
    """AT+CIPSTATUS: `STATUS:<stat>` and one LinkStatus per open link."""
    status: int
    links: Tuple[LinkStatus, ...] = ()


@dataclass(frozen=True)
class DomainAddress:
    """AT+CIPDOMAIN=<name>."""
    ip: str


@dataclass(frozen=True)
class SslBufferSize:
    """AT+CIPSSLSIZE?"""
    size: int


@dataclass(frozen=True)
class SslConfig:
    """AT+CIPSSLCONF?"""
    mode: int


@dataclass(frozen=True)
class Pem:
    """AT+CASEND? / AT+AWSPKSEND? / AT+CLICASEND?: the stored PEM text (lines joined by \\n)."""
    text: str = field(repr=False)   # may be a private key


@dataclass(frozen=True)
class BufferSegment:
    """AT+CIPSENDBUF: `<current segment ID>[,<segment ID sent successfully>]` before OK."""
    current: int
    sent: Optional[int] = None


@dataclass(frozen=True)
class BufferStatus:
    """AT+CIPBUFSTATUS."""
    next_segment: int
    sent_segment: int
    acked_segment: int
    remaining: int
    queue: int


@dataclass(frozen=True)
class SegmentCheck:
    """AT+CIPCHECKSEQ: link is None in single-connection mode."""
    link: Optional[int]
    segment: int
    ok: bool


@dataclass(frozen=True)
class LocalAddresses:
    """AT+CIFSR: the lines the current WiFi mode prints; the others None."""
    ap_ip: Optional[str] = None
    ap_mac: Optional[str] = None
    sta_ip: Optional[str] = None
    sta_mac: Optional[str] = None


@dataclass(frozen=True)
class MuxMode:
    """AT+CIPMUX?"""
    mode: int


@dataclass(frozen=True)
class ServerMaxConn:
    """AT+CIPSERVERMAXCONN?"""
    num: int


@dataclass(frozen=True)
class TransferMode:
    """AT+CIPMODE?  0 normal, 1 UART-WiFi passthrough."""
    mode: int


@dataclass(frozen=True)
class ServerTimeout:
    """AT+CIPSTO?"""
    time: int


@dataclass(frozen=True)
class UpdateProgress:
    """AT+CIUPDATE: the stages reported (CIUPDATE_STAGES)."""
    stages: Tuple[int, ...]


@dataclass(frozen=True)
class PingResult:
    """AT+PING: `+<time>` (ms) or `+timeout` (time_ms None)."""
    time_ms: Optional[int]

    @property
    def timeout(self) -> bool:
        return self.time_ms is None


@dataclass(frozen=True)
class IpdInfo:
    """AT+CIPDINFO?"""
    enabled: bool


@dataclass(frozen=True)
class SntpConfig:
    """AT+CIPSNTPCFG?"""
    enable: int
    timezone: Optional[int] = None
    servers: Tuple[str, ...] = ()


@dataclass(frozen=True)
class SntpTime:
    """AT+CIPSNTPTIME?  e.g. 'Wed Jul 24 11:38:25 2019'."""
    time: str

    def datetime(self) -> _dt.datetime:
        import datetime as _dt
        return _dt.datetime.strptime(" ".join(self.time.split()), "%a %b %d %H:%M:%S %Y")


@dataclass(frozen=True)
class DnsServers:
    """AT+CIPDNS_CUR? / _DEF?"""
    servers: Tuple[str, ...]


@dataclass(frozen=True)
class MqttSettings:
    """AT+MQTTSET?"""
    username: str = field(repr=False)     # a credential too (the broker's account)
    password: str = field(repr=False)
    client_id: str
    alive_time: int


@dataclass(frozen=True)
class MqttTopics:
    """AT+MQTTTOPIC?"""
    publish: str
    subscribe: Tuple[str, ...]


# --- unsolicited messages (spec 2.3) -----------------------------------------

@dataclass(frozen=True)
class StationConnected:
    """`+STA_CONNECTED:<mac>`: a station joined the SoftAP."""
    mac: str


@dataclass(frozen=True)
class StationIp:
    """`+DIST_STA_IP:<mac>,<ip>`: the SoftAP gave a station an address."""
    mac: str
    ip: str


@dataclass(frozen=True)
class StationDisconnected:
    """`+STA_DISCONNECTED:<mac>`: a station left the SoftAP."""
    mac: str
