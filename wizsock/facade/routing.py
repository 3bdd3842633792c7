"""The routing policy: which AF_INET connections go over the module, which stay on the host.

Owns the user's policy (:func:`wizsock.socket.set_routing_policy`) and the loopback ports a kernel
socket of this process listens on (paho-mqtt's wake-up pair must stay on the host).
"""
from __future__ import annotations

import socket as _stdsocket
import threading
import weakref
from collections.abc import Callable
from typing import Optional

from wizsock.facade.registry import Handle

#: ``policy(ip, port, type) -> bool`` of :func:`set_routing_policy`
RoutePolicy = Callable[[str, int, int], bool]

_route_policy: Optional[RoutePolicy] = None


def set_routing_policy(policy: Optional[RoutePolicy]) -> None:
    """``policy(ip, port, type) -> bool``: True sends the connection over the module,
    False keeps it on the host's kernel.  None restores the default: everything goes
    to the module except 127.0.0.0/8 with a real module (with the emulator,
    ``wizemu://``, loopback is its network) and ports a kernel socket of this process
    listens on."""
    global _route_policy
    _route_policy = policy


# Loopback ports a kernel socket of this process (created through this class) listens on.
_kernel_listeners: dict[int, weakref.ref[_stdsocket.socket]] = {}   # port -> the listening socket
_kl_lock = threading.Lock()


def note_kernel_listener(sock: _stdsocket.socket) -> None:
    try:
        port = sock.getsockname()[1]
    except (OSError, TypeError, IndexError):
        return
    with _kl_lock:
        _kernel_listeners[port] = weakref.ref(sock)

def kernel_listening(port: int) -> bool:
    with _kl_lock:
        ref = _kernel_listeners.get(port)
        sock = ref() if ref is not None else None
        if sock is None or sock.fileno() < 0:
            _kernel_listeners.pop(port, None)
            return False
        return True

def is_loopback(ip: str) -> bool:
    return ip.startswith("127.")

def route_to_module(ip: str, port: int, type_: int, handle: Handle) -> bool:
    if is_loopback(ip) and kernel_listening(port):
        return False
    if _route_policy is not None:
        return bool(_route_policy(ip, port, type_))
    if is_loopback(ip):
        return handle.loopback_on_module
    return True
