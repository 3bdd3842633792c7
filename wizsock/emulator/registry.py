"""The seam between the emulator core and its command plug-ins (design.md §5a).

A plug-in registers coroutine handlers by AT command name::

    from wizsock.emulator.registry import handler, CommandFailed

    @handler("MQTTSET", "MQTTTOPIC")
    async def mqtt_settings(ctx, req):
        await ctx.send_line(b"+MQTTSET:...")
        return "OK"

`req` is the `wizsock.protocol` Request of the command line (`.name`, `.form`,
`.params`).  The handler returns the final result line (`"OK"`, `"SEND OK"`,
or `None` when it already printed everything it wants), or raises
`CommandFailed` to print optional lines and then a final error result.

`ctx` is a `Context` (below); the core implements it, plug-ins only use the
methods listed on the class.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, Iterable, List, Optional

if TYPE_CHECKING:
    from wizsock.emulator.core import Emulator
    from wizsock.emulator.net import Link
    from wizsock.protocol import Request

Handler = Callable[["Context", "Request"], Awaitable[Optional[str]]]

#: command name (as in Request.name, e.g. "CWJAP_CUR", "" for plain AT) -> handler
HANDLERS: Dict[str, Handler] = {}
_LOCK = threading.Lock()


def handler(*names: str) -> Callable[[Handler], Handler]:
    """Register the decorated coroutine function as the handler of `names`.

    A later registration of the same name replaces the earlier one (plug-ins
    are imported after the core, so they may override a core default).
    """
    if not names:
        raise TypeError("handler() needs at least one command name")

    def register(fn: Handler) -> Handler:
        with _LOCK:
            for name in names:
                HANDLERS[name.upper()] = fn
        return fn

    return register


def lookup(name: str) -> Optional[Handler]:
    return HANDLERS.get(name.upper())


class CommandFailed(Exception):
    """Raised by a handler: print `lines` (bytes, no CR LF), then `result`.

    `result` is the final line, e.g. "ERROR", "FAIL", "SEND FAIL",
    "DNS Fail" is a line and "ERROR" the result:
    ``raise CommandFailed("ERROR", lines=[b"DNS Fail"])``.
    """

    def __init__(self, result: str = "ERROR", lines: Iterable[bytes] = ()):
        super().__init__(result)
        self.result = result
        self.lines: List[bytes] = [bytes(x) for x in lines]


class Settings(Dict[str, Any]):
    """A dict of settings; `ModuleState.flash` also writes itself to the flash file."""

    def __init__(self, *a: Any, on_change: Optional[Callable[[], None]] = None, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._on_change = on_change

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        if self._on_change is not None:
            self._on_change()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        if self._on_change is not None:
            self._on_change()

    def update(self, *a: Any, **kw: Any) -> None:
        super().update(*a, **kw)
        if self._on_change is not None:
            self._on_change()


@dataclass
class ModuleState:
    """What a handler may read and change.

    - `cur`: the settings in effect now (lost at RST; rebuilt from `flash`).
    - `flash`: the saved (_DEF) settings; assignment persists to the flash file.
    - `mux`: CIPMUX (0/1); `mode`: CWMODE 1/2/3; `station`: the joined AP
      (a dict from the world file) or None; `links`: link id -> link object
      (`.kind`, `.remote`, `.close()`); `world`: the parsed world file dict.
    Plug-ins may keep their own keys in `cur`/`flash` (prefix them, e.g. "mqtt.").
    """

    cur: Settings = field(default_factory=Settings)
    flash: Settings = field(default_factory=Settings)
    mux: int = 0
    mode: int = 2
    station: Optional[Dict[str, Any]] = None
    links: Dict[int, Link] = field(default_factory=dict)
    world: Dict[str, Any] = field(default_factory=dict)
    station_ip: Optional[str] = None
    transparent: bool = False


class Context:
    """What the core gives a handler.  Implemented by `wizsock.emulator.core`."""

    state: ModuleState
    emulator: Emulator  # (rtt, faults, rng, ...)

    async def send_line(self, line: bytes) -> None:
        """Print one response line (CR LF added), paced like all output."""
        raise NotImplementedError

    async def write(self, data: bytes) -> None:
        """Print raw bytes (no CR LF added), as one unit no URC can split."""
        raise NotImplementedError

    async def prompt(self) -> None:
        """Print the `>` prompt of commands that then read data."""
        raise NotImplementedError

    async def read_data(self, n: Optional[int] = None, until: Optional[bytes] = None,
                        timeout: Optional[float] = None) -> bytes:
        """Raw host bytes after the prompt: exactly `n` bytes, or up to and
        including `until` (whichever comes first when both are given)."""
        raise NotImplementedError

    def urc(self, line: bytes) -> None:
        """Queue an unsolicited line for the next legal line boundary.
        Thread-safe: may be called from any thread (e.g. paho's)."""
        raise NotImplementedError

    def resolve(self, name: str) -> str:
        """The module's DNS: world-file names first, then the host resolver.
        Raises CommandFailed("ERROR", [b"DNS Fail"]) when the name is unknown."""
        raise NotImplementedError

    async def sleep(self, seconds: float) -> None:
        """Sleep on the emulator's loop (use instead of time.sleep)."""
        raise NotImplementedError
