"""Host names and address literals, as the stdlib's resolver reads them, with no traffic.

Shared by the blocking resolver (:mod:`wizsock.facade.resolver`) and wizsock.trio's.
"""
from __future__ import annotations

import ipaddress
import re
import socket as _stdsocket
from typing import Optional

from wizsock import _orig

LOCAL_NAMES = {"localhost": "127.0.0.1", "localhost.localdomain": "127.0.0.1"}


def ipv4_literal(host: str) -> Optional[str]:
    """The dotted quad for an IPv4 literal (any inet_aton form), else None; no traffic."""
    try:
        return str(_orig.getaddrinfo(host, None, _stdsocket.AF_INET, _stdsocket.SOCK_STREAM, 0,    # AF_INET: (str, int)
                                     _stdsocket.AI_NUMERICHOST)[0][4][0])
    except (_stdsocket.gaierror, UnicodeError, ValueError):
        return None

def is_ipv6_literal(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host.split("%", 1)[0])
        return True
    except ValueError:
        return False

def host_str(host: object) -> str:
    if isinstance(host, (bytes, bytearray)):
        try:
            return bytes(host).decode("ascii")
        except UnicodeDecodeError:
            raise _stdsocket.gaierror(_stdsocket.EAI_NONAME, "Name or service not known") from None
    if isinstance(host, str):
        return host
    raise TypeError(f"getaddrinfo() argument 1 must be string or None, not {type(host).__name__}")

_NAME = re.compile(r"[A-Za-z0-9_-]{1,63}(?:\.[A-Za-z0-9_-]{1,63})*\.?")

def module_name(name: str) -> str:
    """The ASCII (IDNA) form of a host name the module can look up, else gaierror.

    Whatever cannot be a DNS name (CR, LF, NUL, quotes, commas, spaces, empty or
    overlong labels, names the idna codec refuses) fails here as the stdlib's
    resolver fails, without AT traffic; AT+CIPDOMAIN takes at most 63 bytes.
    """
    try:
        ascii_name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        ascii_name = ""
    if not _NAME.fullmatch(ascii_name) or len(ascii_name) > 63:
        raise _stdsocket.gaierror(_stdsocket.EAI_NONAME, "Name or service not known")
    return ascii_name
