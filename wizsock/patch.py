"""Install the facade process-wide: ``wizsock.patch(port_or_module)``.

Replaces ``socket.socket``, ``socket.SocketType``, ``socket.getaddrinfo``,
``socket.gethostbyname`` and ``socket.create_connection`` with
:mod:`wizsock.socket`'s, and sets ``ssl.SSLContext.sslsocket_class`` (the one
hook in ``ssl``; SSLContext itself is never replaced).  Libraries that look
these up at call time (urllib3/requests, http.client, smtplib, paho-mqtt,
httpcore/httpx, websocket-client, asyncio, trio) then run over the module.
Libraries imported before the patch that copied one of these names into their
own namespace (``from socket import create_connection``) are fixed up too, and
undone by :func:`unpatch`; a reference that cannot be reached is reported with
a ``RuntimeWarning``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket as _stdsocket
import sys
import threading
import types
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Iterable, List, Optional, Union

from wizsock import _orig
from wizsock import errors as E
from wizsock import socket as _wsocket
from wizsock import ssl as _wssl

if TYPE_CHECKING:
    from wizsock.engine import Module

log = logging.getLogger("wizsock.patch")

__all__ = ["patch", "unpatch", "patched", "is_patched", "open_default_module"]

DEFAULT_PORT = "wizemu://"

_REPLACED = ("socket", "SocketType", "getaddrinfo", "gethostbyname", "create_connection")
# libraries whose module namespaces are checked for copies taken before the patch
_LIBRARIES = ("urllib3", "requests", "paho", "httpcore", "httpx", "websocket", "h11",
              "anyio", "aiohttp", "smtplib", "http.client", "urllib.request", "ftplib",
              "poplib", "imaplib", "telnetlib", "socketserver", "http.server", "xmlrpc")

_lock = threading.RLock()
_active: Optional[dict[str, Any]] = None   # module, owned, fixups


# the AP of the emulator's default world (wizsock/emulator/default_world.json)
EMULATOR_AP = ("wizsock-lab", "wizsock123")
EMULATOR_BAUD = 921600


def open_default_module(port: Optional[str] = None, *, ssid: Optional[str] = None, password: str = "",
                        baudrate: Optional[int] = None,
                        world: Union[str, os.PathLike[str], None] = None,
                        scan_if_join_fails: bool = False, **options: Any) -> Module:
    """Open a blocking ``wizsock.Module`` ready to carry sockets.

    ``port`` None: the in-process emulator (``wizemu://``) at ``EMULATOR_BAUD``, joined
    to its access point (``world``: a world file for it, else the default world).  With
    ``ssid`` the module joins that network (station mode) before it is returned.
    Raises ``errors.PortError``/``ModuleUnresponsive`` (no module) or ``JoinError``;
    with ``scan_if_join_fails`` a join that failed for another reason than a wrong
    password is followed by a scan, whose SSIDs the JoinError carries (``.networks``,
    for a hint such as ``wizsock run``'s).
    """
    from urllib.parse import quote

    from wizsock.engine import Module

    if port is None:
        baudrate = baudrate or EMULATOR_BAUD
        port = f"wizemu://?baud={baudrate}"
        if world is not None:
            port += "&world=" + quote(os.path.abspath(world), safe="/")
        if ssid is None:
            ssid, password = EMULATOR_AP
    baudrate = baudrate or 115200
    with _orig.internal():
        module = Module(port, baudrate=baudrate, **options)
        try:
            if ssid is not None:
                module.wifi.set_mode(1)
                try:
                    module.wifi.join(ssid, password or "")
                except E.JoinError as exc:
                    if scan_if_join_fails:
                        note_networks_in_range(exc, module)
                    raise
        except BaseException:
            module.close()
            raise
    return module


def networks_in_range(module: Any, timeout: float = 20.0) -> Optional[List[str]]:
    """The SSIDs a blocking Module sees (strongest first), or None if it cannot scan.

    For a join that failed: the hint lists them, so a typo in the name shows."""
    try:
        if module.wifi.mode().mode == 2:
            module.wifi.set_mode(3)
        aps = module.wifi.scan(timeout=timeout)
    except (E.WizError, RuntimeError):
        return None
    aps = sorted(aps, key=lambda ap: -(ap.rssi if ap.rssi is not None else -999))
    return _unique(ap.ssid for ap in aps if ap.ssid)


def note_networks_in_range(exc: E.JoinError, module: Any) -> None:
    """A join that failed for another reason than a wrong password (code 2): the
    networks in range go with the error, so its hint can show a mistyped name."""
    if exc.networks is None and exc.code != 2:
        exc.saw_networks(networks_in_range(module))


def _unique(names: Iterable[str]) -> List[str]:
    seen: List[str] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return seen


def _close_module(module: Module) -> None:
    with _orig.internal():
        module.close()


def _originals() -> dict[str, object]:
    return {
        "socket": _orig.socket, "SocketType": _orig.SocketType,
        "getaddrinfo": _orig.getaddrinfo, "gethostbyname": _orig.gethostbyname,
        "create_connection": _orig._std_create_connection,
    }


def _replacements() -> dict[str, object]:
    return {
        "socket": _wsocket.socket, "SocketType": _wsocket.SocketType,
        "getaddrinfo": _wsocket.getaddrinfo, "gethostbyname": _wsocket.gethostbyname,
        "create_connection": _wsocket.create_connection,
    }


def _fix_early_imports(originals: dict[str, object],
                       replacements: dict[str, object]) -> list[tuple[types.ModuleType, str, object]]:
    """Replace copies of the originals in already-imported library modules."""
    by_id = {id(v): k for k, v in originals.items()}
    fixups: list[tuple[types.ModuleType, str, object]] = []
    for modname, mod in list(sys.modules.items()):
        if mod is None or not modname.startswith(_LIBRARIES):
            continue
        if not any(modname == p or modname.startswith(p + ".") for p in _LIBRARIES):
            continue
        try:
            items = list(vars(mod).items())
        except TypeError:
            continue
        for attr, value in items:
            key = by_id.get(id(value))
            if key is None:
                continue
            if attr == "SocketType" or (key == "SocketType" and attr != "SocketType"):
                continue  # _socket.socket is also the C base type; leave aliases of it
            setattr(mod, attr, replacements[key])
            fixups.append((mod, attr, value))
            log.info("patched %s.%s (imported before wizsock.patch)", modname, attr)
        for attr, value in items:
            if isinstance(value, type) and issubclass(value, _orig.socket) \
                    and not issubclass(value, _wsocket.socket) and value.__module__ == modname:
                warnings.warn(
                    f"{modname}.{attr} subclasses socket.socket and was defined before "
                    f"wizsock.patch(): its instances stay on the host's network. Patch "
                    f"before importing {modname.split('.')[0]} (wizsock run does this).",
                    RuntimeWarning, stacklevel=3)
    return fixups


def patch(port_or_module: Union[str, Module, None] = None, *,
          route: Optional[_wsocket.RoutePolicy] = None, **module_options: Any) -> Module:
    """Run this process's networking over the module.

    ``port_or_module``: a blocking ``wizsock.Module`` (kept open on unpatch), or a
    port URL / None (a module is opened here by :func:`open_default_module` with
    ``module_options`` such as ``ssid=``/``password=``/``baudrate=``, and closed by
    :func:`unpatch`; None means the in-process emulator).  ``route(ip, port, type)
    -> bool`` keeps destinations for which it returns False on the host's kernel.
    Returns the module.
    """
    global _active
    with _lock:
        if _active is not None:
            raise RuntimeError("wizsock is already patched; call wizsock.unpatch() first")
        owned = port_or_module is None or isinstance(port_or_module, str)
        if port_or_module is None or isinstance(port_or_module, str):
            module = open_default_module(port_or_module, **module_options)
        else:
            module = port_or_module
        if not owned and module_options:
            raise TypeError("module options are for a port; this module is already open")
        if not owned and not (hasattr(module, "run") and hasattr(module, "start_soon")):
            raise TypeError("wizsock.patch() needs a blocking wizsock.Module (the engine in its "
                            "own thread); for trio code on open_module()'s loop use "
                            "wizsock.trio.install(module)")
        _wsocket.set_module(module)
        _wsocket.set_routing_policy(route)
        originals = _originals()
        replacements = _replacements()
        for name in _REPLACED:
            setattr(_stdsocket, name, replacements[name])
        _wssl.install_hook()
        fixups = _fix_early_imports(originals, replacements)
        _active = {"module": module, "owned": owned, "fixups": fixups}
        log.debug("patched: socket functions now go over %r", module)
        return module


def unpatch() -> None:
    """Undo :func:`patch` (closing the module if patch opened it)."""
    global _active
    with _lock:
        if _active is None:
            return
        active, _active = _active, None
        originals = _originals()
        for name in _REPLACED:
            setattr(_stdsocket, name, originals[name])
        _wssl.remove_hook()
        for mod, attr, value in active["fixups"]:
            setattr(mod, attr, value)
        _wsocket.set_module(None)
        _wsocket.set_routing_policy(None)
        if active["owned"]:
            _close_module(active["module"])


def is_patched() -> bool:
    """True between :func:`patch` and :func:`unpatch`."""
    return _active is not None


@contextlib.contextmanager
def patched(port_or_module: Union[str, Module, None] = None, *,
            route: Optional[_wsocket.RoutePolicy] = None, **module_options: Any) -> Iterator[Module]:
    """``with wizsock.patched(port) as module:`` -- patch for the block only."""
    module = patch(port_or_module, route=route, **module_options)
    try:
        yield module
    finally:
        unpatch()


class PatchModule(types.ModuleType):
    """``wizsock.patch`` is this module (the package attribute of a submodule), and
    calling it patches: ``wizsock.patch(port)`` is ``wizsock.patch.patch(port)``."""

    def __call__(self, port_or_module: Union[str, Module, None] = None, *,
                 route: Optional[_wsocket.RoutePolicy] = None, **module_options: Any) -> Module:
        return patch(port_or_module, route=route, **module_options)


sys.modules[__name__].__class__ = PatchModule
