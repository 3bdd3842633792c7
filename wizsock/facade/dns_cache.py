"""The names the module resolved, kept for a few seconds, and one lookup per name at a time."""
from __future__ import annotations

import threading
import time
import weakref
from typing import Optional

_DNS_TTL = 30.0
_dns_cache: dict[str, tuple[str, float]] = {}   # name -> (address, expiry on the monotonic clock)
_dns_lock = threading.Lock()
# one lookup per name at a time: the name's lock, while a caller holds it (weak: a
# process that resolves many names keeps no lock per name it ever looked up)
_dns_inflight: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()


def clear_dns_cache() -> None:
    """Forget the names the module resolved (they are kept for a few seconds)."""
    with _dns_lock:
        _dns_cache.clear()


def cached(key: str) -> Optional[str]:
    """The address the module gave for ``key`` if it is still fresh."""
    with _dns_lock:
        hit = _dns_cache.get(key)
        return hit[0] if hit and hit[1] > time.monotonic() else None


def cached_names() -> list[str]:
    """The names the cache holds now, fresh or not yet replaced (for diagnostics)."""
    with _dns_lock:
        return list(_dns_cache)


def name_lock(key: str) -> threading.Lock:
    """The lock a caller holds while it asks the module for ``key``."""
    with _dns_lock:
        return _dns_inflight.setdefault(key, threading.Lock())


def store(key: str, ip: str, asked_at: float) -> None:
    """Keep the module's answer, fresh for a TTL from when it was asked."""
    with _dns_lock:
        # expired names go as new ones come: a gateway that resolves ever new names
        # (rotating CDN hosts) keeps only what one TTL resolved
        for old in [k for k, (_, expiry) in _dns_cache.items() if expiry <= asked_at]:
            del _dns_cache[old]
        _dns_cache[key] = (ip, asked_at + _DNS_TTL)
