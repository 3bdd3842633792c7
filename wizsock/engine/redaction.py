"""What of the module's output may be logged: an event redacted for the logs and traces.

Owns the rule that a secret (a password, an MQTT/Azure/AWS credential, a certificate
upload's answer) never reaches a log line: the codec's ``protocol.redact`` does the
command lines; this module adds the answers whose secret only the command names.
"""
from __future__ import annotations

import re
from typing import Optional

from .. import protocol as P
from ..framer import Data, Echo, Event, Garbage, Info, Subscription, Text


#: responses that carry a secret in lines the codec's redact cannot recognise alone
SECRET_ANSWERS = frozenset({"MQTTSET", "AZSET", "CWSAP_CUR", "CWSAP_DEF", "AWSPKSEND",
                             "CLICASEND", "CASEND"})
PASSWORD_TEXT = re.compile(r"(?i)(password\s*[:=]\s*).*")


def redact_event(ev: Event, command: Optional[str] = None) -> str:
    if isinstance(ev, (Info, Text)):
        try:
            line = (f"+{ev.name}:{ev.value}" if isinstance(ev, Info) else ev.text)
            if command in SECRET_ANSWERS:
                return f"<{len(line)}-character {command} answer line, redacted>"
            if command is None and isinstance(ev, Text) and line.startswith('"'):
                # a bare answer whose command is unknown (late, after a timeout): it may
                # be AT+MQTTSET?'s, which carries the password
                return f"<{len(line)}-character answer line, redacted>"
            line = PASSWORD_TEXT.sub(r"\1***", line)
            return P.redact(line.encode("utf-8", "surrogateescape"), command).decode("utf-8", "replace")
        except Exception:
            return "<line>"
    if isinstance(ev, Subscription):
        return f"Subscription(topic={ev.topic!r}, {len(ev.data)} bytes)"
    if isinstance(ev, Echo):
        # the command line itself (ATE1): its password goes through redact like ours
        text = PASSWORD_TEXT.sub(r"\1***", ev.text)
        return "Echo " + repr(P.redact(text.encode("utf-8", "surrogateescape")))
    if isinstance(ev, Garbage):
        # may be a garbled echo, which no pattern recognises: the size, not the bytes
        return f"Garbage({ev.reason}, {len(ev.data)} bytes)"
    if isinstance(ev, Data):
        return f"Data(link={ev.link}, {len(ev.payload)} bytes)"
    return repr(ev)