"""MQTT, Azure IoT Hub and AWS IoT Core commands of the emulated module (spec §3.3.29-3.3.38).

A real MQTT client (paho-mqtt 2.x) runs inside the emulator against a real
broker.  Messages on the subscribed topics reach the host as the URC
``<topic> -> <data>``.

- AT+MQTTSET=<user>,<password>,<client id>,<alive 30..300>; query/test print
  ``"user","password","client",alive``.
- AT+MQTTTOPIC=<publish>,<sub1>[,<sub2>[,<sub3>]]; query/test print them quoted.
- AT+MQTTCON=[<link>,]<auth 0/1>,<broker>,<port>: ``CONNECT`` ``OK`` or
  ``CONNECT FAIL`` ``ERROR``.  The connection holds a link id (link 0 in single
  mode), shows in AT+CIPSTATUS, and closes with AT+CIPCLOSE, AT+CWQAP or a reset.
  A broker that goes away gives ``CLOSED`` (``<id>,CLOSED`` in multi mode).
- AT+MQTTPUB=<message> (QoS 0 to the publish topic), AT+MQTTDIS -> ``CLOSE``.
- AT+AZSET=<hub>,<device>,<key>; AT+AZCON: MQTT over TLS to
  ``<hub>.azure-devices.net:8883``, client id <device>, user name
  ``<hub>.azure-devices.net/<device>/?api-version=2018-06-30``, password a SAS
  token (`sas_token`) valid for ``world["cloud"]["sas_ttl"]`` seconds (3600) or
  until ``world["cloud"]["sas_expiry"]`` (a fixed epoch, for tests).  The server
  certificate is checked per AT+CIPSSLCONF (0 none, 1 check but connect anyway,
  2 strict) against the AT+CASEND CA, or the host's trust store when none is set.
- AT+AWSPKSEND=<0|1>, AT+CLICASEND=<0|1>: ``>``, then the PEM up to its END
  line, stored in flash; the query prints it back (ERROR when none).
- AT+AWSCON (or AT+AWSCON="<endpoint>", the firmware's form): MQTT over TLS
  with the client certificate and key, verified against the AT+CASEND CA; needs
  AT+CIPSSLCONF=2 and AT+CIPMUX=0.  Port 8883.

The real endpoint of AZCON/AWSCON comes from the world file's ``endpoints`` map
(see `wizsock.emulator.services`): ``{"azure": "127.0.0.1:8883", "aws":
"127.0.0.1:8884"}`` or keyed by host name.  The TLS server name stays the
cloud's host name (``<hub>.azure-devices.net`` / the AWS endpoint), so a local
broker needs a certificate for that name; for AT+AWSCON with no endpoint
argument the name is the host part of ``endpoints["aws"]``.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import socket as _socket
import ssl
import tempfile
import threading
import time
import urllib.parse
import weakref
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, cast

import trio

from wizsock.emulator.commands import need_form, q
from wizsock.emulator.net import MAX_LINKS, Link, Net
from wizsock.emulator.registry import CommandFailed, Context, handler
from wizsock.protocol import Request
from wizsock.emulator.services import endpoint, format_lines, internal, target

from wizsock import _orig
from wizsock.protocol import records as _R

if TYPE_CHECKING:
    from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

    from wizsock.emulator.core import Emulator

    class EmuClientBase(Client):
        """What _client_class() returns (paho is imported only when a session opens)."""

        wiz_addr: Tuple[str, int]
        wiz_raw: Optional[_socket.socket]

log = logging.getLogger("wizsock.emulator.mqtt")

CONNECT_TIMEOUT = 10.0
AZURE_API = "2018-06-30"
AZURE_SUFFIX = ".azure-devices.net"
CLOUD_PORT = 8883
SAS_TTL = 3600


# ------------------------------------------------------------------ Azure SAS
def sas_token(resource_uri: str, key: str, expiry: int, policy: Optional[str] = None) -> str:
    """An Azure IoT Hub shared access signature, as the service expects.

    HMAC-SHA256 keyed with base64-decoded `key` over
    ``quote_plus(resource_uri) + "\\n" + str(expiry)``; the signature is base64
    and URL-encoded into ``SharedAccessSignature sr=...&sig=...&se=...[&skn=...]``.
    """
    sr = urllib.parse.quote_plus(resource_uri)
    to_sign = f"{sr}\n{int(expiry)}".encode()
    sig = base64.b64encode(hmac.new(base64.b64decode(key, validate=True), to_sign, hashlib.sha256).digest())
    token = f"SharedAccessSignature sr={sr}&sig={urllib.parse.quote_plus(sig.decode())}&se={int(expiry)}"
    if policy:
        token += f"&skn={policy}"
    return token


# ------------------------------------------------------------------ paho session
def _paho() -> None:
    """paho is importable, or the command fails as a module without a broker would."""
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:  # pragma: no cover - declared in the emulator extra
        log.error("paho-mqtt is not installed (pip install 'wizsock[emulator]')")
        raise CommandFailed("ERROR", [b"CONNECT FAIL"])


def _client_class() -> "type[EmuClientBase]":
    _paho()
    import paho.mqtt.client as mqtt

    class EmuClient(mqtt.Client):
        """paho's client, connecting to the endpoint's address while TLS checks the cloud's name."""

        wiz_addr: Tuple[str, int] = ("127.0.0.1", 1883)

        wiz_raw: Optional[_socket.socket] = None

        def _create_socket_connection(self) -> _socket.socket:
            create = _orig.create_connection if _orig is not None else _socket.create_connection
            self.wiz_raw = create(self.wiz_addr, timeout=self._connect_timeout)
            return self.wiz_raw

    return cast("type[EmuClientBase]", EmuClient)


class MqttLink(Link):
    """The link an MQTT session holds (so CIPSTATUS, CIPCLOSE and resets see it)."""

    def __init__(self, net: Net, lid: int, kind: str, remote: Tuple[str, int], local_port: int,
                 session: Session) -> None:
        super().__init__(net, lid, kind, remote, local_port)
        self.session = session

    async def send(self, data: bytes, remote: Optional[Tuple[str, int]] = None) -> None:
        raise trio.ClosedResourceError("an MQTT link carries AT+MQTTPUB only")


class Session:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.generation = emu.generation
        self.client: Optional[EmuClientBase] = None
        self.link: Optional[MqttLink] = None
        self.connack = threading.Event()
        self.suback = threading.Event()
        self.reason: Optional[ReasonCode] = None
        self.closing = False
        self.died = trio.Event()

    # paho's thread -------------------------------------------------------
    def _on_connect(self, client: Client, userdata: Any, flags: ConnectFlags,
                    reason_code: ReasonCode, properties: Optional[Properties] = None) -> None:
        self.reason = reason_code
        self.connack.set()

    def _on_subscribe(self, client: Client, userdata: Any, mid: int,
                      reason_codes: List[ReasonCode], properties: Optional[Properties] = None) -> None:
        self.suback.set()

    def _on_message(self, client: Client, userdata: Any, msg: MQTTMessage) -> None:
        if self.closing or self.emu.generation != self.generation:
            return
        self.emu.urc(msg.topic.encode("utf-8", "surrogateescape") + b" -> " + bytes(msg.payload))

    def _on_disconnect(self, client: Client, userdata: Any, flags: DisconnectFlags,
                       reason_code: ReasonCode, properties: Optional[Properties] = None) -> None:
        self.connack.set()
        if not self.closing:
            try:
                self.emu.call_soon(self.died.set)
            except Exception:  # the emulator is gone
                pass

    # emulator thread ----------------------------------------------------
    async def connect(self, host: str, addr: Tuple[str, int], client_id: str, keepalive: int,
                      username: Optional[str] = None, password: Optional[str] = None,
                      tls: Optional[ssl.SSLContext] = None, subscribe: Sequence[str] = ()) -> bool:
        internal()
        _paho()
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        c = _client_class()(CallbackAPIVersion.VERSION2, client_id=client_id or "",
                            protocol=mqtt.MQTTv311, clean_session=True, reconnect_on_failure=False)
        c.wiz_addr = addr
        c.connect_timeout = CONNECT_TIMEOUT
        c.on_connect, c.on_subscribe = self._on_connect, self._on_subscribe
        c.on_message, c.on_disconnect = self._on_message, self._on_disconnect
        if username is not None:
            c.username_pw_set(username, password)
        if tls is not None:
            c.tls_set_context(tls)
        self.client = c
        try:
            await trio.to_thread.run_sync(lambda: c.connect(host, addr[1], keepalive),
                                          abandon_on_cancel=True)
        except (OSError, ssl.SSLError, ssl.CertificateError, ValueError) as e:
            log.info("MQTT connect to %s (%s:%d) failed: %s", host, addr[0], addr[1], type(e).__name__)
            self.client = None
            if c.wiz_raw is not None:       # a failed TLS handshake leaves paho's TCP socket open
                c.wiz_raw.close()
            return False
        c.loop_start()
        ok = await trio.to_thread.run_sync(self.connack.wait, CONNECT_TIMEOUT, abandon_on_cancel=True)
        if not ok or self.reason is None or self.reason.is_failure:
            log.info("MQTT broker refused the connection: %s", self.reason)
            await self.close(graceful=False)
            return False
        topics = [(t, 0) for t in subscribe if t]
        if topics:
            self.suback.clear()
            rc, _ = c.subscribe(topics)
            if rc != mqtt.MQTT_ERR_SUCCESS or not await trio.to_thread.run_sync(
                    self.suback.wait, CONNECT_TIMEOUT, abandon_on_cancel=True):
                await self.close(graceful=False)
                return False
        return True

    async def publish(self, topic: str, payload: bytes) -> bool:
        c = self.client
        if c is None or not c.is_connected():
            return False
        info = c.publish(topic, payload, qos=0)
        if info.rc != 0:
            return False
        with trio.move_on_after(CONNECT_TIMEOUT):
            while not info.is_published():
                await trio.sleep(0.002)
            return True
        return False

    async def close(self, graceful: bool = True) -> None:
        """Stop paho (sending DISCONNECT when `graceful`); safe to call twice."""
        self.closing = True
        c, self.client = self.client, None
        if c is None:
            return

        def stop() -> None:
            if graceful:
                c.disconnect()              # DISCONNECT, then paho's loop ends by itself
            else:
                sock = cast(Optional[_socket.socket], c.socket())   # drop the connection: the loop sees it lost
                if sock is not None:
                    try:
                        sock.shutdown(_socket.SHUT_RDWR)
                    except OSError:
                        pass
            c.loop_stop()

        with trio.CancelScope(shield=True):
            with trio.move_on_after(5):
                await trio.to_thread.run_sync(stop, abandon_on_cancel=True)

    async def guard(self, net: Net) -> None:
        """Runs in the module's life: ends the session when its link closes or the broker goes."""
        link = self.link
        assert link is not None     # set by _open before the guard starts
        try:
            with link.scope:
                await self.died.wait()
        finally:
            await self.close(graceful=False)
            if _sessions_get(self.emu) is self:
                _sessions_set(self.emu, None)
        if not link.closed:
            await net.close_link(link, notify=True)   # the broker went away: CLOSED


#: each emulator's MQTT session: this plug-in's own state, not set on the emulator (the core's)
_SESSIONS: "weakref.WeakKeyDictionary[Emulator, Session]" = weakref.WeakKeyDictionary()


def _sessions_get(emu: Emulator) -> Optional[Session]:
    s = _SESSIONS.get(emu)
    if s is not None and s.generation != emu.generation:
        return None
    return s


def _sessions_set(emu: Emulator, s: Optional[Session]) -> None:
    if s is None:
        _SESSIONS.pop(emu, None)
    else:
        _SESSIONS[emu] = s


# ------------------------------------------------------------------ helpers
def _cfg(ctx: Context) -> List[Any]:
    return ctx.state.cur.get("mqtt.set") or ["", "", "", 60]


def _topics(ctx: Context) -> Optional[List[Any]]:
    return ctx.state.cur.get("mqtt.topic")


def _need_network(ctx: Context) -> None:
    st = ctx.state
    if st.station is None and st.mode == 1:
        raise CommandFailed("ERROR")


def _free_link(ctx: Context, lid: Optional[int]) -> int:
    st = ctx.state
    if _sessions_get(ctx.emulator) is not None:
        raise CommandFailed("ERROR", [b"ALREADY CONNECTED"])
    if lid is None:
        if not st.mux:
            lid = 0
        else:
            free = [i for i in range(MAX_LINKS) if i not in st.links]
            if not free:
                raise CommandFailed("ERROR")
            lid = free[0]
    if lid in st.links:
        raise CommandFailed("ERROR", [b"ALREADY CONNECTED"])
    return lid


def _tls_context(ctx: Context, *, ca_required: bool, client_cert: Optional[Tuple[str, str]] = None,
                 verify: Optional[bool] = None) -> ssl.SSLContext:
    """A client context per AT+CIPSSLCONF and the AT+CASEND CA (optionally with a client cert)."""
    mode = ctx.state.flash.get("sslconf", 0)
    if verify is None:
        verify = mode != 0
    ca = ctx.state.flash.get("ca")
    if verify:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)       # verifies certificate and host name
        if ca:
            try:
                tls.load_verify_locations(cadata=ca)
            except ssl.SSLError:
                pass
        elif not ca_required:
            tls.load_default_certs()
    else:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_cert is not None:
        cert_pem, key_pem = client_cert
        with tempfile.TemporaryDirectory(prefix="wizemu-tls-") as d:
            cp, kp = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
            for path, text in ((cp, cert_pem), (kp, key_pem)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(text)
            tls.load_cert_chain(cp, kp)
    return tls


async def _open(ctx: Context, lid: int, kind: str, host: str, addr: Tuple[str, int], client_id: str,
                keepalive: int, username: Optional[str] = None, password: Optional[str] = None,
                tls: Optional[ssl.SSLContext] = None,
                verify_fallback: Optional[Callable[[], ssl.SSLContext]] = None) -> Optional[str]:
    """Connect a session on link `lid`; prints CONNECT or raises CONNECT FAIL / ERROR."""
    emu = ctx.emulator
    st = ctx.state
    try:
        ip, real = target(ctx, addr[0], addr[1])
    except CommandFailed:
        raise CommandFailed("ERROR", [b"CONNECT FAIL"])
    sub = list((_topics(ctx) or [None])[1:])
    sess = Session(emu)
    ok = await sess.connect(host, real, client_id, keepalive, username, password, tls, sub)
    if not ok and verify_fallback is not None:      # CIPSSLCONF=1: verification failed, connect anyway
        sess = Session(emu)
        ok = await sess.connect(host, real, client_id, keepalive, username, password,
                                verify_fallback(), sub)
    if not ok:
        raise CommandFailed("ERROR", [b"CONNECT FAIL"])
    sock: Any = sess.client.socket() if sess.client is not None else None   # None: AttributeError below
    try:
        local_port = sock.getsockname()[1]
    except (OSError, AttributeError):
        local_port = 0
    net = emu.net
    link = MqttLink(net, lid, kind, (ip, addr[1]), local_port, sess)
    sess.link = link
    st.links[lid] = link
    _sessions_set(emu, sess)
    emu.life.start_soon(sess.guard, net)
    await ctx.send_line(b"CONNECT")
    return "OK"


# ------------------------------------------------------------------ MQTT commands
@handler("MQTTSET")
async def mqttset(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "test", "set")
    if req.form in ("query", "test"):
        user, pwd, cid, alive = _cfg(ctx)
        rec = _R.MqttSettings(user, pwd, cid, alive) if _R else None
        for line in format_lines("MQTTSET", "query", rec,
                                 lambda: [b"%s,%s,%s,%d" % (q(user), q(pwd), q(cid), alive)]):
            await ctx.send_line(line)
        return "OK"
    ctx.state.cur["mqtt.set"] = list(req.args)   # username, password, client_id, alive_time
    return "OK"


@handler("MQTTTOPIC")
async def mqtttopic(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "query", "test", "set")
    if req.form in ("query", "test"):
        topics = _topics(ctx)
        if not topics:
            raise CommandFailed("ERROR")
        rec = _R.MqttTopics(topics[0], tuple(topics[1:])) if _R else None
        for line in format_lines("MQTTTOPIC", "query", rec, lambda: [b",".join(q(t) for t in topics)]):
            await ctx.send_line(line)
        return "OK"
    ctx.state.cur["mqtt.topic"] = list(req.args)   # publish, subscribe1[, subscribe2[, subscribe3]]
    return "OK"


@handler("MQTTCON")
async def mqttcon(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "set")
    if ctx.state.mux and req.link is None:
        raise CommandFailed("ERROR")   # multi-connection mode names the link
    # single mode reads past a link id and uses link 0 (the spec's example gives one)
    lid = req.link if ctx.state.mux else None
    auth, broker, port = req["enable"], req["broker"], req["port"]
    _need_network(ctx)
    lid = _free_link(ctx, lid)
    user, pwd, cid, alive = _cfg(ctx)
    return await _open(ctx, lid, "TCP", broker, (broker, port), cid, alive,
                       *((user, pwd) if auth else (None, None)))


@handler("MQTTPUB")
async def mqttpub(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "set")
    msg = req["message"]
    sess = _sessions_get(ctx.emulator)
    topics = _topics(ctx)
    if sess is None or not topics:
        raise CommandFailed("ERROR")
    if not await sess.publish(topics[0], msg.encode("utf-8", "surrogateescape")):
        raise CommandFailed("ERROR")
    return "OK"


@handler("MQTTDIS")
async def mqttdis(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "execute")
    emu = ctx.emulator
    sess = _sessions_get(emu)
    if sess is None:
        raise CommandFailed("ERROR")
    await sess.close(graceful=True)
    _sessions_set(emu, None)
    if sess.link is not None:
        await emu.net.close_link(sess.link, notify=False)
    return "CLOSE"


# ------------------------------------------------------------------ Azure
@handler("AZSET")
async def azset(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "set")
    ctx.state.cur["az.set"] = list(req.args)   # hub_id, device_id, key
    return "OK"


def _cloud(ctx: Context) -> Dict[str, Any]:
    return (ctx.state.world or {}).get("cloud") or {}


@handler("AZCON")
async def azcon(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "execute")
    st = ctx.state
    az = st.cur.get("az.set")
    if not az or not _topics(ctx):
        raise CommandFailed("ERROR")
    hub, dev, key = (x.strip() for x in az)
    _need_network(ctx)
    lid = _free_link(ctx, None)
    host = hub + AZURE_SUFFIX
    cloud = _cloud(ctx)
    expiry = int(cloud.get("sas_expiry") or time.time() + int(cloud.get("sas_ttl", SAS_TTL)))
    try:
        password = sas_token(f"{host}/devices/{dev}", key, expiry)
    except (ValueError, TypeError):        # the key is not base64: the hub would refuse it
        raise CommandFailed("ERROR", [b"CONNECT FAIL"])
    username = f"{host}/{dev}/?api-version={AZURE_API}"
    mode = st.flash.get("sslconf", 0)
    tls = _tls_context(ctx, ca_required=False)
    fallback = (lambda: _tls_context(ctx, ca_required=False, verify=False)) if mode == 1 else None
    _, keepalive = _cfg(ctx)[2:]
    return await _open(ctx, lid, "SSL", host, endpoint(st.world, host, CLOUD_PORT, "azure"), dev,
                       keepalive, username, password, tls, fallback)


# ------------------------------------------------------------------ AWS
async def _pem_command(ctx: Context, req: Request, key: str, what: str) -> Optional[str]:
    need_form(req, "query", "set")
    st = ctx.state
    if req.form == "query":
        pem = st.flash.get(key)
        if not pem:
            raise CommandFailed("ERROR")
        lines = [ln.encode() for ln in pem.strip().splitlines()]
        rec = _R.Pem(pem) if _R and hasattr(_R, "Pem") else None
        for line in format_lines(req.name, "query", rec, lambda: lines):
            await ctx.send_line(line)
        return "OK"
    if req["mode"] == 0:
        st.flash[key] = None
        return "OK"
    await ctx.prompt()
    data = await ctx.read_data(until=b"-----END ", timeout=60)
    data += await ctx.read_data(until=b"-----", timeout=10)
    text = data.decode("ascii", "replace").replace("\r\n", "\n")
    begin = text.find("-----BEGIN ")
    if begin < 0 or what not in text[begin:text.index("\n", begin) if "\n" in text[begin:] else None]:
        raise CommandFailed("ERROR")
    st.flash[key] = text[begin:] + "\n"
    return "OK"


@handler("AWSPKSEND")
async def awspksend(ctx: Context, req: Request) -> Optional[str]:
    return await _pem_command(ctx, req, "aws.key", "PRIVATE KEY")


@handler("CLICASEND")
async def clicasend(ctx: Context, req: Request) -> Optional[str]:
    return await _pem_command(ctx, req, "aws.cert", "CERTIFICATE")


@handler("AWSCON")
async def awscon(ctx: Context, req: Request) -> Optional[str]:
    need_form(req, "execute")   # the table has no set form: the endpoint comes from the world file
    st = ctx.state
    eps = (st.world or {}).get("endpoints") or {}
    if "aws" not in eps:
        raise CommandFailed("ERROR")
    addr = endpoint(st.world, "aws", CLOUD_PORT)
    host = addr[0]
    cfg = st.cur.get("mqtt.set")
    if st.mux or st.flash.get("sslconf", 0) != 2 or not cfg or not _topics(ctx):
        raise CommandFailed("ERROR")
    cert, key = st.flash.get("aws.cert"), st.flash.get("aws.key")
    if not cert or not key:
        raise CommandFailed("ERROR")
    _need_network(ctx)
    lid = _free_link(ctx, None)
    try:
        tls = _tls_context(ctx, ca_required=True, client_cert=(cert, key), verify=True)
    except (ssl.SSLError, OSError, ValueError):
        raise CommandFailed("ERROR", [b"CONNECT FAIL"])
    return await _open(ctx, lid, "SSL", host, addr, cfg[2], cfg[3], None, None, tls)
