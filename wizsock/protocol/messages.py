"""What the module prints on its own (+IPD, SmartConfig messages), the request
line parser, and `redact` for logs."""
from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Dict, Iterable, List, Optional, Tuple, Type, Union

from . import records as R
from .commands import COMMANDS
from .grammar import CommandSpec, Field, Ip, Mac, RequestError, Request, UnknownCommand, _CONTROL, tokenize
from .lines import encode_lines, lines_of
from .shapes import Fields

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


def format_ipd(link: Optional[int], payload: BytesLike, remote: Optional[Tuple[str, int]] = None, mux: bool = True) -> bytes:
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

class PemError(ValueError):
    """A PEM text that cannot be uploaded as it is.

    The message names the line number and what is wrong, never the content (a
    private key must not end up in a log or a traceback).
    """


#: what each upload command stores: the module reads after the `>` of AT+CASEND=1,
#: AT+CLICASEND=1 and AT+AWSPKSEND=1 (spec 3.3.6, 3.3.37, 3.3.36) up to and including
#: the END line of this label, and keeps one such block per slot (the query prints
#: exactly one back)
PEM_LABELS = {"CASEND": "CERTIFICATE", "CLICASEND": "CERTIFICATE", "AWSPKSEND": "RSA PRIVATE KEY"}
PEM_MARKERS = {name: (f"-----BEGIN {label}-----", f"-----END {label}-----")
               for name, label in PEM_LABELS.items()}
#: a sanity bound on an upload (a 4096-bit RSA key is ~3.3 KB of PEM); the spec gives none
PEM_MAX = 16384
_PEM_WHAT = {"CASEND": "CA certificate", "CLICASEND": "client certificate",
             "AWSPKSEND": "private key"}
_PEM_LABEL = re.compile(r"-----(BEGIN|END) ([A-Z0-9][A-Z0-9 ]{0,62})-----")
_PEM_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


def pem_blocks(pem: Union[str, BytesLike]) -> List[Tuple[str, List[str]]]:
    """Every `-----BEGIN <label>-----` ... `-----END <label>-----` block of a PEM text,
    as (label, lines including both markers).

    Strict, because the lines go to the module verbatim: ASCII only, no control
    characters, nothing between a block's markers but base64 (no headers such as
    Proc-Type: an encrypted key cannot be used by the module), and no text after
    the last END line (explanatory text before the first BEGIN, RFC 7468, is
    allowed and never sent).  Raises PemError.
    """
    if isinstance(pem, str):
        text = pem
        if not text.isascii():
            pos = next(i for i, c in enumerate(text) if ord(c) > 127)
            raise PemError(f"PEM text is ASCII; character {pos} is not") from None
    else:
        try:
            text = bytes(pem).decode("ascii")
        except UnicodeDecodeError as exc:
            raise PemError(f"PEM text is ASCII; byte {exc.start} is not (binary or DER data?)") from None
    if len(text) > PEM_MAX:
        raise PemError(f"PEM text of {len(text)} characters is longer than {PEM_MAX}")
    blocks: List[Tuple[str, List[str]]] = []
    current: Optional[List[str]] = None
    label = ""
    for no, raw in enumerate(text.split("\n"), 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        line = line.strip(" \t")
        if _CONTROL.search(line):
            raise PemError(f"line {no}: control character in PEM text")
        m = _PEM_LABEL.fullmatch(line)
        if current is None:
            if m and m.group(1) == "BEGIN":
                label, current = m.group(2), [line]
            elif line.startswith("-----"):
                raise PemError(f"line {no}: a marker line outside a BEGIN ... END block")
            elif line and blocks:
                raise PemError(f"line {no}: text after -----END {blocks[-1][0]}----- "
                               f"(nothing may follow a block: the module would read it as commands)")
            continue
        if m:
            if m.group(1) != "END" or m.group(2) != label:
                raise PemError(f"line {no}: -----{m.group(1)} {m.group(2)}----- inside the "
                               f"{label} block")
            current.append(line)
            body = "".join(current[1:-1])
            if not body:
                raise PemError(f"line {no}: the {label} block is empty")
            try:
                der = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                der = b""
            if not _one_der(der):
                raise PemError(f"the {label} block ending on line {no} is not one DER "
                               f"structure (corrupt or edited base64)") from None
            blocks.append((label, current))
            current = None
        elif line.startswith("-----"):
            raise PemError(f"line {no}: malformed marker line inside the {label} block")
        elif not line:
            continue
        elif ":" in line:
            raise PemError(f"line {no}: PEM headers (an encrypted key?) cannot be uploaded; "
                           f"give the module an unencrypted {label}")
        elif not _PEM_B64.fullmatch(line):
            raise PemError(f"line {no}: not base64 inside the {label} block")
        else:
            current.append(line)
    if current is not None:
        raise PemError(f"no -----END {label}----- line")
    return blocks


def _one_der(der: bytes) -> bool:
    """True if the bytes are exactly one DER SEQUENCE (what every PEM block here holds):
    a line added to or dropped from the base64 cannot keep the outer length right."""
    if len(der) < 2 or der[0] != 0x30:
        return False
    if der[1] < 0x80:
        return 2 + der[1] == len(der)
    n = der[1] & 0x7F
    if not 1 <= n <= 4 or len(der) < 2 + n:
        return False
    return 2 + n + int.from_bytes(der[2:2 + n], "big") == len(der)


def pem_upload(name: str, pem: Union[str, BytesLike]) -> bytes:
    """The bytes to write after the prompt of AT+<name>=1: the PEM's lines, CR LF ended.

    The one checked path for every upload: exactly one block, of the label the
    command stores (`PEM_LABELS`); a bundle, a key where a certificate goes (or
    the reverse), another key format, binary or non-ASCII data, anything after
    the END line raise PemError (a ValueError) whose message names the problem,
    never the content.
    """
    label = PEM_LABELS[name]
    what = _PEM_WHAT[name]
    blocks = pem_blocks(pem)
    if not blocks:
        raise PemError(f"AT+{name} takes a {what}: one -----BEGIN {label}----- block; none found")
    if len(blocks) > 1:
        labels = [b[0] for b in blocks]
        raise PemError(f"AT+{name}: the module stores one {what} (one {label} block per "
                       f"slot); this text holds {len(blocks)} blocks ({', '.join(labels)}): "
                       f"pass only the one it needs")
    got, lines = blocks[0]
    if got != label:
        if "PRIVATE KEY" in got and "PRIVATE KEY" not in label:
            raise PemError(f"AT+{name} takes a {what}; this is a private key ({got}): refused, "
                           f"a key must never go to a certificate slot")
        if "PRIVATE KEY" in label and "PRIVATE KEY" in got:
            raise PemError(f"AT+{name} takes an RSA key in PKCS#1 form (-----BEGIN {label}-----), "
                           f"not {got}; convert it with `openssl rsa -in key.pem -traditional`")
        raise PemError(f"AT+{name} takes a {what} (-----BEGIN {label}-----), not {got}")
    return "".join(l + "\r\n" for l in lines).encode("ascii")


#: the commands whose data after `>` is counted by their <length> parameter
_COUNTED = ("CIPSEND", "CIPSENDBUF", "CIPSENDEX")


def payload_for(request: Request, payload: Union[str, BytesLike]) -> bytes:
    """The bytes that may follow the `>` of this request, checked: the one gate for
    every upload after a prompt (the engine calls it for every `payload`).

    PEM commands get `pem_upload`; CIPSEND/CIPSENDBUF exactly <length> bytes (the
    module reads that many, anything more would run as commands); CIPSENDEX at most
    <length>, ending early only with the two characters `\\0` as its last bytes;
    any other command takes no data.  Raises ValueError (PemError for PEM).
    """
    name = request.name
    if name in PEM_LABELS and request.form == "set" and request.params.get("mode") == 1:
        return pem_upload(name, payload)
    if name in _COUNTED and request.form == "set" and isinstance(payload, (bytes, bytearray,
                                                                         memoryview)):
        data = bytes(payload)
        n = request.params["length"]
        if name != "CIPSENDEX":
            if len(data) != n:
                raise ValueError(f"parameter 'payload': {len(data)} bytes after AT+{name} of "
                                 f"length {n}: the module reads exactly {n}, the rest would "
                                 f"run as commands")
            return data
        end = data.find(b"\\0")
        if len(data) > n or (end >= 0 and end != len(data) - 2) or (len(data) < n and end < 0):
            raise ValueError(f"parameter 'payload': AT+CIPSENDEX of length {n} takes at most "
                             f"{n} bytes, ending early only with \\0 as the last two")
        return data
    raise ValueError(f"AT+{name} ({request.form}) takes no data after a prompt")


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
    for pattern, response in ((_SET, False), (_RESPONSE, True)):
        m = pattern.fullmatch(text)
        if not m:
            continue
        spec = COMMANDS.get(m.group(2))
        if spec is None:
            return MASK if _PEM_BODY.fullmatch(text) else text
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
    # a known command line is judged by its table above, not by its alphabet: the body
    # test alone took "AT+CIPSSLSIZE=4096" for a line of base64
    if _PEM_BODY.fullmatch(text):
        return MASK
    spec = COMMANDS.get(command) if command is not None else None
    if spec is not None:
        positions = _secret_positions(spec, text, True, head=None)
        if positions:
            try:
                return _mask_fields(text, tokenize(text), positions)
            except RequestError:
                return MASK
    return text


_PEM_MARKER = re.compile(rb"-----(BEGIN|END) [A-Z0-9 ]+-----")
_COMMAND_NAME = re.compile(rb"AT\+([A-Z][A-Z0-9_]*)")


class Redactor:
    """`redact` for a conversation: one instance per traffic log, fed every line of
    both directions in order.

    Adds what a single line cannot tell: the command a bare answer line belongs
    to (AT+MQTTSET? prints the password without a `+MQTTSET:` head), and PEM
    blocks (uploads after `>`, AT+CASEND?/AWSPKSEND? answers), whose every body
    line is masked, however short.
    """

    def __init__(self) -> None:
        self._command: Optional[str] = None
        self._in_pem = {True: False, False: False}

    def line(self, line: BytesLike, from_host: bool) -> bytes:
        raw = bytes(line)
        bare = raw.strip(b"\r\n \t")
        m = _PEM_MARKER.fullmatch(bare)
        if m:
            self._in_pem[from_host] = m.group(1) == b"BEGIN"
            return raw
        if self._in_pem[from_host]:
            return MASK.encode()
        if from_host:
            c = _COMMAND_NAME.match(bare)
            self._command = c.group(1).decode() if c else None
            return redact(raw)
        return redact(raw, self._command)
