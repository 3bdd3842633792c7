"""``getaddrinfo``: the answers built here (glibc's order and errors), names resolved by the module."""
from __future__ import annotations

import socket as _stdsocket
from collections.abc import Callable
from typing import Literal, Optional, Union

from wizsock import _orig
from wizsock.facade.names import host_str, ipv4_literal, is_ipv6_literal, module_name
from wizsock.facade.resolver import resolve_name

AF_INET = _stdsocket.AF_INET
AF_INET6 = _stdsocket.AF_INET6
SOCK_STREAM = _stdsocket.SOCK_STREAM
SOCK_DGRAM = _stdsocket.SOCK_DGRAM

#: one answer of :func:`getaddrinfo`, as typeshed types ``socket.getaddrinfo``'s
AddrInfo = Union[
    tuple[Literal[_stdsocket.AddressFamily.AF_INET], _stdsocket.SocketKind, int, str, tuple[str, int]],
    tuple[Literal[_stdsocket.AddressFamily.AF_INET6], _stdsocket.SocketKind, int, str,
          Union[tuple[str, int, int, int], tuple[int, bytes]]],
]


def getaddrinfo(host: Union[bytes, str, None], port: Union[bytes, str, int, None], family: int = 0,
                type: int = 0, proto: int = 0, flags: int = 0) -> list[AddrInfo]:
    """``socket.getaddrinfo`` with names resolved by the module; IPv4 only, like a host
    without IPv6 (IPv6 literals still parse, creating an AF_INET6 socket then fails)."""
    if _orig.is_internal():
        return _orig.getaddrinfo(host, port, family, type, proto, flags)
    return getaddrinfo_with(host, port, family, type, proto, flags, resolve_name)

_SOCKTYPES: tuple[tuple[int, int, Optional[str]], ...] = ((SOCK_STREAM, _stdsocket.IPPROTO_TCP, "tcp"),
              (SOCK_DGRAM, _stdsocket.IPPROTO_UDP, "udp"),
              (_stdsocket.SOCK_RAW, 0, None))

def _service_answers(port: object, type: int, proto: int, flags: int) -> list[tuple[int, int, int]]:
    """The (socktype, proto, port) triples getaddrinfo gives for ``port`` (glibc's
    order and errors), built here: asking the host's getaddrinfo would apply its
    AI_ADDRCONFIG rule, which fails on a host whose only network is the module."""
    number, service = _service(port, flags)
    out: list[tuple[int, int, int]] = []
    for st, pr, pname in _SOCKTYPES:
        if not _socktype_wanted(st, pr, type, proto, service):
            continue
        p = pr if pr else proto
        if service is None:
            out.append((st, p, number))
        elif pname is not None:
            try:
                out.append((st, p, _stdsocket.getservbyname(service, pname)))
            except OSError:
                pass
    if not out:
        raise _no_answer(type, service)
    return out


def _service(port: object, flags: int) -> tuple[int, Optional[str]]:
    """``port`` as (number, None), or (0, a service name to look up)."""
    if isinstance(port, (bytes, bytearray)):
        port = bytes(port).decode("ascii")
    if port is None:
        return 0, None
    if isinstance(port, int):
        number = port
    elif isinstance(port, str):
        if not (port.isdigit() or (port[:1] in "+-" and port[1:].isdigit())):
            if flags & _stdsocket.AI_NUMERICSERV:
                raise _stdsocket.gaierror(_stdsocket.EAI_NONAME, "Name or service not known")
            return 0, port
        number = int(port)
    else:
        raise OSError("Int or String expected")
    return number & 0xFFFF, None    # out of range: wrapped, as glibc does with a numeric service


def _socktype_wanted(st: int, pr: int, type: int, proto: int, service: Optional[str]) -> bool:
    """Whether the answer for socket type ``st`` (protocol ``pr``) matches the hints."""
    if type and type != st:
        return False
    if proto and pr and proto != pr:
        return False
    if not type and st == _stdsocket.SOCK_RAW and (service is not None or proto):
        return False
    return not (not type and proto and not pr)


def _no_answer(type: int, service: Optional[str]) -> _stdsocket.gaierror:
    """glibc's error when no socket type matched."""
    if type and type not in (SOCK_STREAM, SOCK_DGRAM, _stdsocket.SOCK_RAW):
        return _stdsocket.gaierror(_stdsocket.EAI_SOCKTYPE, "ai_socktype not supported")
    if service is not None:
        return _stdsocket.gaierror(_stdsocket.EAI_SERVICE, "Servname not supported for ai_socktype")
    return _stdsocket.gaierror(_stdsocket.EAI_SOCKTYPE, "ai_socktype not supported")


def _ipv4_answers(ip: str, port: object, type: int, proto: int, flags: int,
                  canonname: str = "") -> list[AddrInfo]:
    canon = canonname if flags & _stdsocket.AI_CANONNAME else ""
    return [(_stdsocket.AddressFamily.AF_INET, _stdsocket.SocketKind(st), pr, canon if i == 0 else "", (ip, number))
            for i, (st, pr, number) in enumerate(_service_answers(port, type, proto, flags))]

def getaddrinfo_with(host: Union[bytes, str, None], port: Union[bytes, str, int, None], family: int,
                 type: int, proto: int, flags: int, resolve: Callable[[str], str]) -> list[AddrInfo]:
    """getaddrinfo with ``resolve(name) -> ip`` for names (literals never reach it).

    The answers are built here, never by the host's getaddrinfo with the caller's
    flags: AI_ADDRCONFIG (aiohttp always passes it) makes glibc refuse IPv4 answers on
    a host with no non-loopback IPv4 address, which is exactly a host whose only
    network is the module."""
    if host is None or host == "" or host == b"":
        if family not in (0, AF_INET, AF_INET6):
            raise _stdsocket.gaierror(_stdsocket.EAI_FAMILY, "ai_family not supported")
        if family == AF_INET6:
            return _orig.getaddrinfo(host, port, family, type, proto, flags & ~_stdsocket.AI_ADDRCONFIG)
        if host == "" or host == b"":
            raise _stdsocket.gaierror(_stdsocket.EAI_NONAME, "Name or service not known")
        wildcard = "0.0.0.0" if flags & _stdsocket.AI_PASSIVE else "127.0.0.1"
        return _ipv4_answers(wildcard, port, type, proto, flags & ~_stdsocket.AI_CANONNAME)
    if family not in (0, AF_INET, AF_INET6):
        raise _stdsocket.gaierror(_stdsocket.EAI_FAMILY, "ai_family not supported")
    name = host_str(host)
    if is_ipv6_literal(name):
        return _orig.getaddrinfo(name, port, family, type, proto,
                                 (flags & ~_stdsocket.AI_ADDRCONFIG) | _stdsocket.AI_NUMERICHOST)
    ip = ipv4_literal(name)
    if ip is None:
        if flags & _stdsocket.AI_NUMERICHOST:
            raise _stdsocket.gaierror(_stdsocket.EAI_NONAME, "Name or service not known")
        name = module_name(name)  # gaierror for what cannot be a name (no AT traffic)
        if family == AF_INET6:
            raise _stdsocket.gaierror(_stdsocket.EAI_NODATA, "No address associated with hostname")
        # the service part first, so a bad port fails without AT traffic
        _service_answers(port, type, proto, flags)
        ip = resolve(name)
    elif family == AF_INET6:
        raise _stdsocket.gaierror(_stdsocket.EAI_ADDRFAMILY, "Address family for hostname not supported")
    return _ipv4_answers(ip, port, type, proto, flags, name)
