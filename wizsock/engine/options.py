"""The engine's keyword options, typed once for every way in.

``open_module(port, baudrate, **options)``, ``Module(port, baudrate, **options)`` and
``Engine(port, baudrate, **options)`` take the same options; this TypedDict names them and
their types so that a checker sees them through ``open_module``'s and ``Module``'s
``**options`` (PEP 692) rather than ``Any``.  tests/house/test_public_surface.py keeps it
equal to ``Engine.__init__``'s keyword parameters.
"""
from __future__ import annotations

import os
from typing import IO, Any, Dict, Optional, TypedDict, Union

#: where a UART trace goes: a path (created 0600) or an open text file (docs/design.md 3d)
TraceTarget = Union[str, "os.PathLike[str]", IO[str]]


class EngineOptions(TypedDict, total=False):
    """The engine's keyword options (all optional; the defaults are ``Engine``'s)."""

    #: command name -> seconds, over the spec's defaults
    timeouts: Optional[Dict[str, float]]
    #: search the spec's rates if the module does not answer (default True)
    hunt_baud: bool
    #: RTS/CTS (AT+UART_CUR ...,1)
    flow_control: bool
    #: per-link receive limit (default 1 MiB)
    rx_limit: int
    #: RTS water marks (bytes buffered)
    rx_high: Optional[int]
    rx_low: Optional[int]
    #: AT+CIPSENDBUF for TCP (default True)
    use_sendbuf: bool
    #: the port's read timeout (seconds)
    read_timeout: float
    #: extra keyword arguments for ``serial.serial_for_url``
    serial_kwargs: Optional[Dict[str, Any]]
    #: idle AT probe period (seconds)
    probe_interval: Optional[float]
    #: the module's name in logs (default: the port)
    name: Optional[str]
    #: a timestamped record of the UART traffic, secrets masked (wizsock.engine.trace)
    trace: Optional[TraceTarget]
