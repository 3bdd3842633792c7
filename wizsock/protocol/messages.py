"""What the module prints on its own (+IPD, SmartConfig messages), the request
line parser, and `redact` for logs."""
from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Optional, Tuple, Type, Union

from . import records as R
from .commands import COMMANDS
from .grammar import CommandSpec, Field, Ip, Mac, RequestError, Request, UnknownCommand, _CONTROL, tokenize
from .shapes import Fields, encode_lines, lines_of

BytesLike = Union[bytes, bytearray, memoryview]

_REQUEST = re.compile(r"AT\+([A-Z][A-Z0-9_]*)(=\?|\?|=(.*))?", re.S)


def parse_request(line: Union[BytesLike, str], mux: Optional[bool] = None) -> Request:
    """One command line from the host (with or without its CR LF) -> Request.

    mux: the module's AT+CIPMUX state if known; then a multi-connection command
    is read only as its `link=` form (mux=True) or only without it (mux=False).

    Raises UnknownCommand (a RequestError) for a name not in the table and
    RequestError (a ValueError) for anything malformed: what the module answers
    with ERROR.
    """
    text = bytes(line).decode("utf-8", "surrogateescape") if not isinstance(line, str) else line
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n") or text.endswith("\r"):
        text = text[:-1]
    m = _CONTROL.search(text)
    if m:
        raise RequestError(f"control character {m.group()!r} in command line {text!r}")
    if text == "AT":
        return COMMANDS[""].execute()
    if text in ("ATE0", "ATE1"):
        return COMMANDS[text[2:]].execute()
    mm = _REQUEST.fullmatch(text)
    if not mm:
        raise RequestError(f"not an AT command: {text!r}")
    name, tail, args = mm.group(1), mm.group(2), mm.group(3)
    spec = COMMANDS.get(name)
    if spec is None or spec.bare:
        raise UnknownCommand(f"unknown command AT+{name}")
    form = "execute" if tail is None else "test" if tail == "=?" else "query" if tail == "?" else "set"
    return spec.parse_args(form, args or "", mux)


def format_ipd(link: int, payload: BytesLike, remote: Optional[Tuple[str, int]] = None, mux: bool = True) -> bytes:
    """The bytes the module prints for received data (spec 3.3.24).

    mux: multiple connections (`+IPD,<link>,<len>`); remote: (ip, port) when AT+CIPDINFO=1.
    """
    data = bytes(payload)
    head = "+IPD,"
    if mux:
        if isinstance(link, bool) or not isinstance(link, int) or not 0 <= link <= 4:
            raise ValueError(f"parameter 'link': {link!r} is not a link ID 0-4")
        head += f"{link},"
    head += str(len(data))
    if remote is not None:
        ip, port = remote
        if not isinstance(ip, str) or _CONTROL.search(ip) or '"' in ip or "," in ip or ":" in ip:
            raise ValueError(f"parameter 'remote': bad address {ip!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"parameter 'remote': bad port {port!r}")
        head += f',"{ip}",{port}'
    return head.encode("ascii") + b":" + data


def format_subscription(topic: str, data: BytesLike) -> bytes:
    """The message printed for a received MQTT/Azure/AWS publication: `<topic> -> <data>`."""
    if not isinstance(topic, str) or _CONTROL.search(topic) or " -> " in topic:
        raise ValueError(f"parameter 'topic': {topic!r} cannot be printed")
    return topic.encode("utf-8", "surrogateescape") + b" -> " + bytes(data)


#: what the host types to leave UART-WiFi passthrough (spec 2.4, 3.3.7): alone in a
#: packet, with at least 1 s of silence after it
TRANSPARENT_ESCAPE = b"+++"

#: the markers of the PEM text the host writes after the `>` of AT+CASEND=1,
#: AT+CLICASEND=1 and AT+AWSPKSEND=1 (spec 3.3.6, 3.3.37, 3.3.36); the module reads
#: up to and including the end marker
PEM_MARKERS = {
    "CASEND": ("-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"),
    "CLICASEND": ("-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"),
    "AWSPKSEND": ("-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----"),
}


def pem_upload(name: str, pem: Union[str, BytesLike]) -> bytes:
    """The bytes to write after the prompt of AT+<name>=1: the PEM's lines, CR LF ended.

    Raises ValueError unless the text is exactly one block between the command's
    markers (a second end marker would end the upload early; anything after the
    first would be read as commands).
    """
    begin, end = PEM_MARKERS[name]
    text = pem if isinstance(pem, str) else bytes(pem).decode("ascii", "strict")
    lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
    if not lines or lines[0] != begin or lines[-1] != end:
        raise ValueError(f"parameter 'pem': AT+{name} takes one {begin} ... {end} block")
    body = lines[1:-1]
    for l in body:
        if l.startswith("-----") or _CONTROL.search(l) or not l.isascii():
            raise ValueError(f"parameter 'pem': unexpected line {l!r} inside the block")
    return "".join(l + "\r\n" for l in lines).encode("ascii")


# ----------------------------------------------------------------------------
# unsolicited messages about SoftAP stations (spec 2.3)

#: the records of the unsolicited SoftAP station messages
StationMessage = Union[R.StationConnected, R.StationIp, R.StationDisconnected]

MESSAGES: Dict[str, Fields[StationMessage]] = {
    "STA_CONNECTED": Fields((Mac("mac"),), R.StationConnected),
    "DIST_STA_IP": Fields((Mac("mac"), Ip("ip")), R.StationIp),
    "STA_DISCONNECTED": Fields((Mac("mac"),), R.StationDisconnected),
}
_MESSAGE_OF: Dict[Optional[Type[StationMessage]], str] = {shape.record: name for name, shape in MESSAGES.items()}


def format_message(record: StationMessage) -> bytes:
    """A station message record -> its line (no CR LF), e.g. `+STA_CONNECTED:"aa:bb:..."`."""
    name = _MESSAGE_OF[type(record)]
    return encode_lines([MESSAGES[name].format_line(record, {"name": name, "names": (name,)})])[0]


def parse_message(event: object) -> Optional[StationMessage]:
    """A framer Info event (or line) of a station message -> its record; None if it is not one.

    Tolerates the spec's spaces (`+DIST_STA_IP: <mac>, <ip addr>`) and unquoted values.
    """
    for line in lines_of([event]):
        for name, shape in MESSAGES.items():
            try:
                return shape.parse_line(line, {"name": name, "names": (name,)})
            except ValueError:
                continue
    return None


# ----------------------------------------------------------------------------
# SmartConfig / WIZ_NETCONFIG messages (spec 3.2.24, 3.2.30)

def format_smartconfig(info: R.SmartConfigInfo) -> List[bytes]:
    """The lines printed after AT+CWSTARTSMART / AT+WIZ_NETCONFIG found an AP."""
    out = []
    if info.type is not None:
        out.append(f"smartconfig type:{info.type}")
    if info.ssid is not None:
        out += ["Smart get wifi info", f"ssid:{info.ssid}", f"password:{info.password or ''}"]
    if info.connected:
        out.append("smartconfig connected wifi")
    for line in out:
        if _CONTROL.search(line):
            raise ValueError(f"SmartConfig line {line!r} contains a control character")
    return [l.encode("utf-8", "surrogateescape") for l in out]


def parse_smartconfig(events: Iterable[object]) -> R.SmartConfigInfo:
    """The SmartConfig messages (framer Text events or lines) -> SmartConfigInfo.

    Case-insensitive: the spec prints "Smartconfig type:", "smart get WiFi info" and
    "Smart get wifi info" in different places.
    """
    kind = ssid = password = None
    connected = False
    for line in lines_of(events):
        low = line.lower()
        if low.startswith("smartconfig type:"):
            kind = line.split(":", 1)[1].strip()
        elif low.startswith("ssid:"):
            ssid = line[5:]
        elif low.startswith("password:"):
            password = line[9:]
        elif low.startswith("smartconfig connected"):
            connected = True
    return R.SmartConfigInfo(kind, ssid, password, connected)


# ----------------------------------------------------------------------------
# redaction for logs

MASK = "***"
_PEM_BODY = re.compile(r"[A-Za-z0-9+/=]{16,}")
_RESPONSE = re.compile(r"(\+ ?)([A-Z][A-Z0-9_]*)( ?[:=])(.*)", re.S)
_SET = re.compile(r"(AT\+)([A-Z][A-Z0-9_]*)(=)(.*)", re.S)


def _secret_positions(spec: CommandSpec, args: str, response: bool, head: Optional[str] = "+") -> List[int]:
    """Indices of secret fields, taken from the table (request signatures or response shape)."""
    if response:
        query = spec.forms.get("query")
        shape = query.response if query else None
        if isinstance(shape, Fields) and shape.head == head:
            return [i for i, p in enumerate(shape.sig.params) if p.secret]
        return []
    form = spec.forms.get("set")
    if form is None:
        return []
    try:
        sig = spec.parse_args("set", args).sig
        sigs = [sig] if sig is not None else list(form.sigs)
    except RequestError:
        sigs = list(form.sigs)
    return sorted({i for s in sigs for i, p in enumerate(s.params) if p.secret})


def redact(line: BytesLike, command: Optional[str] = None) -> bytes:
    """The same line with secrets masked, for logging.

    Masks the secret parameters of the table (CWJAP/CWSAP passwords, MQTTSET
    password, AZSET key) in command lines and `+NAME:` response lines, the
    password of SmartConfig messages, and PEM body lines (keys, certificates).
    `command`: the name of the command whose response this line may be; then
    its bare response lines are masked too (AT+MQTTSET? prints no `+MQTTSET:`).
    """
    raw = bytes(line)
    eol = raw[len(raw.rstrip(b"\r\n")):]
    text = raw[: len(raw) - len(eol)].decode("utf-8", "surrogateescape")
    out = _redact_text(text, command)
    return out.encode("utf-8", "surrogateescape") + eol


def _mask_fields(args: str, fields: List[Field], positions: List[int]) -> str:
    pieces: List[str] = []
    last = 0
    for i in positions:
        if i < len(fields):
            f = fields[i]
            pieces.append(args[last:f.start])
            pieces.append('"' + MASK + '"')
            last = f.end
    pieces.append(args[last:])
    return "".join(pieces)


def _redact_text(text: str, command: Optional[str] = None) -> str:
    if text.lower().startswith("password:"):
        return text[:9] + MASK
    if _PEM_BODY.fullmatch(text):
        return MASK
    for pattern, response in ((_SET, False), (_RESPONSE, True)):
        m = pattern.fullmatch(text)
        if not m:
            continue
        spec = COMMANDS.get(m.group(2))
        if spec is None:
            return text
        args = m.group(4)
        positions = _secret_positions(spec, args, response)
        if not positions:
            return text
        try:
            fields = tokenize(args)
        except RequestError:
            # unparseable: the secret cannot be located, so mask all the arguments
            return m.group(1) + m.group(2) + m.group(3) + MASK
        return m.group(1) + m.group(2) + m.group(3) + _mask_fields(args, fields, positions)
    spec = COMMANDS.get(command) if command is not None else None
    if spec is not None:
        positions = _secret_positions(spec, text, True, head=None)
        if positions:
            try:
                return _mask_fields(text, tokenize(text), positions)
            except RequestError:
                return MASK
    return text
