"""The trio engine (docs/design.md section 3).

``open_module`` (trio) and ``Module`` (blocking, engine in a thread) give the
typed API over one WizFi360: ``system``, ``wifi``, ``net``, ``mqtt``, ``azure``,
``aws``; links (``net.open_tcp``/``open_udp``/``open_ssl``/``listen``) carry data.
"""
from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Optional, Union

import serial

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .api import AsyncModule, MqttMessage
    from .core import BAUD_RATES, Engine, Response
    from .links import Link, Server
    from .options import EngineOptions
    from .sync import Module

# loaded on first use: the sans-I/O session (engine.session) and its tests must not pull
# trio in through this package
_LAZY = {"AsyncModule": "api", "MqttMessage": "api", "BAUD_RATES": "core", "Engine": "core",
         "Response": "core", "Link": "links", "Server": "links", "Module": "sync",
         "EngineOptions": "options"}


def __getattr__(name: str) -> Any:
    sub = _LAZY.get(name)
    if sub is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f"{__name__}.{sub}"), name)


__all__ = ["open_module", "Module", "AsyncModule", "Engine", "Link", "Server", "MqttMessage",
           "Response", "BAUD_RATES", "EngineOptions"]


@asynccontextmanager
async def open_module(port: Union[str, serial.SerialBase], baudrate: int = 115200,
                      **options: Unpack[EngineOptions]) -> AsyncIterator[AsyncModule]:
    """Open a module on ``port`` (anything ``serial.serial_for_url`` opens).

    Options (keyword, typed by :class:`EngineOptions`): ``timeouts`` (command name -> seconds), ``hunt_baud``
    (search the spec's rates if the module does not answer; default True),
    ``flow_control`` (RTS/CTS, AT+UART_CUR ...,1), ``rx_limit`` (per-link
    receive limit, default 1 MiB), ``rx_high``/``rx_low`` (RTS water marks),
    ``use_sendbuf`` (AT+CIPSENDBUF for TCP, default True), ``probe_interval``
    (idle AT probe period), ``serial_kwargs``, ``trace`` (a path or an open text file: a
    timestamped record of the UART traffic, secrets masked; see ``wizsock.engine.trace`` and the ``wizsock trace`` command).

    Raises ``errors.PortError`` (``PortNotFound``, ``PortAccessDenied``, ``PortBusy``;
    all ``OSError``) when the port cannot be opened, ``errors.ModuleUnresponsive`` when
    nothing answers at any baud rate tried (``.rates``); never an exception group.
    """
    import trio

    from .api import AsyncModule
    from .core import Engine
    from .groups import collapse
    engine = Engine(port, baudrate, **options)
    module = AsyncModule(engine)
    body_error: Optional[BaseException] = None
    error: Optional[BaseException] = None
    try:
        try:
            async with trio.open_nursery() as nursery:
                try:
                    await engine.start(nursery)
                    try:
                        yield module
                    except BaseException as exc:
                        body_error = exc
                        raise
                finally:
                    await engine.aclose()
                    with trio.CancelScope(shield=True):
                        with trio.move_on_after(2):
                            await engine.wait_reader_done()
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # never a group out of here: the caller's own exception comes back as
            # itself (as from trio's open_* managers), so `except CommandError:` around
            # the block works, and a failed start as the typed error it is (groups.py)
            error = collapse(group, own=body_error)
        if error is not None:
            raise error     # (outside the except: its __context__ stays its own)
    finally:
        # in a worker thread: closing may block (an in-process emulator joins its
        # thread, and trio's from_thread refuses to run on a trio thread)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(engine.close_port)
