"""Name resolution with the stdlib's semantics, the names resolved by the module (AT+CIPDOMAIN).

Owns nothing but the route of a lookup: names are checked here
(:mod:`wizsock.facade.names`), answered from :mod:`wizsock.facade.dns_cache` or asked of
the module.
"""
from __future__ import annotations

import socket as _stdsocket
import time
from typing import Optional

from wizsock import _orig
from wizsock.facade import dns_cache
from wizsock.facade.names import LOCAL_NAMES, host_str, ipv4_literal, is_ipv6_literal, module_name
from wizsock.facade.registry import Handle, current_handle


def resolve_name(name: str, handle: Optional[Handle] = None) -> str:
    """An IPv4 address for a host name, through the module (cached briefly)."""
    name = module_name(name)
    key = name.lower().rstrip(".")
    if key in LOCAL_NAMES:
        return LOCAL_NAMES[key]
    hit = dns_cache.cached(key)
    if hit is not None:
        return hit
    # one query per name at a time: concurrent callers wait for the first one
    with dns_cache.name_lock(key):
        hit = dns_cache.cached(key)
        if hit is not None:
            return hit
        return _query_name(name, key, handle)


def _query_name(name: str, key: str, handle: Optional[Handle]) -> str:
    now = time.monotonic()
    h = handle or current_handle()
    aio = h.aio

    async def lookup() -> object:
        return await aio.net.resolve(name)

    try:
        ip = h.call(lookup)
    except _stdsocket.gaierror:
        raise
    except TimeoutError as e:
        raise _stdsocket.gaierror(_stdsocket.EAI_AGAIN, "Temporary failure in name resolution") from e
    except ValueError:
        # the codec refused the name (it checks what module_name may let through)
        raise _stdsocket.gaierror(_stdsocket.EAI_NONAME, "Name or service not known") from None
    except OSError as e:
        raise _stdsocket.gaierror(_stdsocket.EAI_FAIL, f"Non-recoverable failure in name resolution ({e})") from e
    ip = str(ip)
    dns_cache.store(key, ip, now)
    return ip


def gethostbyname(hostname: str) -> str:
    """``socket.gethostbyname``, the name resolved by the module."""
    if _orig.is_internal():
        return _orig.gethostbyname(hostname)
    name = host_str(hostname)
    if name == "":
        return _orig.gethostbyname(name)
    ip = ipv4_literal(name)
    if ip is not None:
        return ip
    if is_ipv6_literal(name):
        raise _stdsocket.gaierror(_stdsocket.EAI_ADDRFAMILY, "Address family for hostname not supported")
    return resolve_name(name)

def gethostbyname_ex(hostname: str) -> tuple[str, list[str], list[str]]:
    """``socket.gethostbyname_ex``, the name resolved by the module (no aliases)."""
    if _orig.is_internal():
        return _orig.gethostbyname_ex(hostname)
    ip = gethostbyname(hostname)
    return (host_str(hostname), [], [ip])
