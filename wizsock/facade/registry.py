"""The module registry: which engine module new facade sockets use.

Owns the default :class:`Handle` (set by :func:`wizsock.socket.set_module`, ``wizsock.patch``) and the
:class:`Handle` itself: how a blocking caller runs an engine coroutine on the module's
loop, or spawns a pump there.
"""
from __future__ import annotations

import errno
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Optional, TypeVar

import trio

from wizsock.facade import dns_cache
from wizsock.facade.seams import FacadeAsyncModule, FacadeModule

_T = TypeVar("_T")


class Handle:
    """How the facade drives one engine module (a blocking ``wizsock.Module``)."""

    def __init__(self, module: FacadeModule) -> None:
        # a wizsock.Module (or, under wizsock.trio's handle, an AsyncModule)
        self.module = module
        port = getattr(module, "port", None)
        if port is None:
            port = getattr(getattr(module, "engine", None), "port_url", "")
        # 127.0.0.0/8 through a real module is the module's own loopback, which serves
        # nothing: loopback stays on the host.  The emulator's network *is* the host's
        # loopback, so there it goes over the (emulated) module.
        self.loopback_on_module = str(port).startswith("wizemu:")

    @property
    def aio(self) -> FacadeAsyncModule:
        """The engine's AsyncModule (the module itself, or the blocking Module's ``aio``)."""
        return self.module.aio

    def call(self, async_fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        """Run async_fn on the engine loop and wait for it (from a user thread)."""
        if not trio.lowlevel.in_trio_task():
            result: _T = self.module.run(async_fn, *args)
            return result
        # a blocking socket call made inside some other trio loop (trio code using the
        # patched socket module): trio.from_thread refuses to be called from there, so
        # wait from a helper thread; the caller blocks, as the stdlib call would.
        box: dict[str, Any] = {}

        def helper() -> None:
            try:
                box["value"] = self.module.run(async_fn, *args)
            except BaseException as exc:  # handed to the caller below
                box["error"] = exc
        t = threading.Thread(target=helper, name="wizsock-call", daemon=True)
        t.start()
        t.join()
        if "error" in box:
            raise box.pop("error")
        value: _T = box["value"]
        return value

    def spawn(self, async_fn: Callable[..., Awaitable[object]], *args: Any) -> None:
        self.module.start_soon(async_fn, *args)


_state_lock = threading.Lock()
_default_handle: Optional[Handle] = None


def set_module(module: Optional[FacadeModule]) -> None:
    """Make ``module`` (a blocking ``wizsock.Module``, or None) the one new sockets use."""
    global _default_handle
    with _state_lock:
        _default_handle = None if module is None else Handle(module)
    dns_cache.clear_dns_cache()

def get_module() -> Optional[FacadeModule]:
    """The module new sockets use (set by :func:`set_module` / ``wizsock.patch``), or None."""
    h = _default_handle
    return None if h is None else h.module

def current_handle() -> Handle:
    h = _default_handle
    if h is None:
        raise OSError(errno.ENETDOWN, "no WizFi360 module: call wizsock.patch(port) "
                      "or wizsock.socket.set_module(module) first")
    return h


def default_handle() -> Optional[Handle]:
    """The default module's handle, or None (no module set)."""
    return _default_handle
