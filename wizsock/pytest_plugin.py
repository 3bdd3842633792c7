"""pytest plugin: test your own networking code against an emulated WizFi360.

Installed with wizsock (entry point ``pytest11``, name ``wizsock``), so pytest
loads it by itself; ``-p no:wizsock`` switches it off.

Fixtures (function scope):

``wizfi360_url``
    The URL (``wizemu://<name>``) of a private in-process emulated module, started
    for the test and stopped after it.  Open it with pyserial
    (``serial.serial_for_url``), :class:`wizsock.engine.Module` or
    :func:`wizsock.engine.open_module`, at the marker's ``baud``.
``wizfi360_emulator``
    The :class:`wizsock.emulator.Emulator` behind that URL (its ``world``,
    ``transcript`` with ``log=True``, ...).
``wizfi360``
    An open blocking :class:`wizsock.engine.Module` on that emulator, in station mode and
    joined to the emulator's default access point (unless ``join=False``); closed
    after the test.
``wizsock_patched``
    The same module with :func:`wizsock.patch` installed for the test: the test's
    sockets, name lookups and TLS go over the emulated module (requests, paho-mqtt,
    asyncio, trio, ...).  Unpatched after the test.  The value is the module.

The marker ``@pytest.mark.wizfi360(...)`` (on a test, class or module) configures
them; every argument is optional:

``baud``
    UART rate of the module and of the host side (default 921600, so tests run
    fast; the real module's factory rate is 115200).
``rtt``
    Round-trip time of the emulated network, in **seconds** (default 0).
``faults``
    Fault spec such as ``"chunk,urc:0.3,busy:0.1"`` (see
    ``wizsock.emulator.faults``); the engine must cope with them.
``seed``
    Seed for faults and the module's MAC address, for reproducible runs.
``world``
    A dict or the path of a JSON world file (access points, ``dns``, ``nat``, ...).
    Its top-level keys replace those of the default world, so
    ``world={"dns": {"api.example.test": "127.0.0.1"}}`` adds names the module
    resolves while keeping the default access points.
``join``
    False leaves the ``wizfi360`` module unjoined (default True).
``log``
    True records the UART traffic in ``wizfi360_emulator.transcript`` (its latest
    4 MiB: ``wizsock.emulator.core.TRANSCRIPT_BYTES``).

Servers the test talks to are ordinary sockets on 127.0.0.1 (the emulated
module makes real connections on the host); create them before
``wizsock_patched`` (list their fixtures first).

Example::

    import pytest, requests

    @pytest.mark.wizfi360(rtt=0.02, world={"dns": {"api.example.test": "127.0.0.1"}})
    def test_my_client(wizsock_patched, my_https_server):
        r = requests.get(f"https://api.example.test:{my_https_server.port}/",
                         verify=my_https_server.ca_path)
        assert r.status_code == 200
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Dict, Iterator, NoReturn, Optional, Tuple, Union

import pytest

if TYPE_CHECKING:  # the plugin loads before any test: wizsock's heavy parts load on use
    from wizsock.emulator import Emulator
    from wizsock.engine import Module

__all__ = ["WizFi360Options", "wizfi360_options", "wizfi360_emulator", "wizfi360_url",
           "wizfi360", "wizsock_patched"]

MARKER = "wizfi360"
DEFAULT_BAUD = 921600

_names = itertools.count(1)


def _usage(message: str) -> NoReturn:
    """A misused marker or fixture fails the test that uses it, without a traceback."""
    pytest.fail(message, pytrace=False)


@dataclass(frozen=True)
class WizFi360Options:
    """What ``@pytest.mark.wizfi360(...)`` asked for (defaults when absent)."""

    baud: int = DEFAULT_BAUD
    rtt: float = 0.0
    faults: Optional[str] = None
    seed: Optional[int] = None
    world: Union[None, str, "os.PathLike[str]", Dict[str, Any]] = None
    join: bool = True
    log: bool = False

    @classmethod
    def from_marker(cls, marker: Optional[pytest.Mark]) -> "WizFi360Options":
        """Validate the marker's arguments (a typo is a usage error, not a default)."""
        if marker is None:
            return cls()
        if marker.args:
            _usage(
                f"@pytest.mark.{MARKER} takes keyword arguments only, got {marker.args!r}")
        known = {f.name for f in fields(cls)}
        unknown = set(marker.kwargs) - known
        if unknown:
            _usage(
                f"@pytest.mark.{MARKER}: unknown argument(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(known))}")
        kw = dict(marker.kwargs)
        try:
            opts = cls(**kw)
            if not isinstance(opts.baud, int) or opts.baud <= 0:
                raise ValueError(f"baud must be a positive int, got {opts.baud!r}")
            if float(opts.rtt) < 0:
                raise ValueError(f"rtt must be >= 0 seconds, got {opts.rtt!r}")
            if opts.world is not None and not isinstance(opts.world, (str, dict, os.PathLike)):
                raise ValueError(f"world must be a dict or a path, got {type(opts.world).__name__}")
        except (TypeError, ValueError) as exc:
            _usage(f"@pytest.mark.{MARKER}: {exc}")
        return opts

    def build_world(self) -> Dict[str, Any]:
        """The default world with the marker's ``world`` keys laid over it."""
        from wizsock.emulator.core import load_world

        world = load_world(None)
        if self.world is not None:
            world.update(load_world(os.fspath(self.world) if not isinstance(self.world, dict)
                                    else self.world))
        return world


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(baud=921600, rtt=0.0, faults=None, seed=None, world=None, join=True, "
        "log=False): configure the emulated WizFi360 behind the wizsock plugin's fixtures "
        "(wizfi360_url, wizfi360, wizsock_patched); rtt in seconds, world a dict or JSON path")


@pytest.fixture
def wizfi360_options(request: pytest.FixtureRequest) -> WizFi360Options:
    """The settings of this test's ``@pytest.mark.wizfi360`` (closest one wins)."""
    return WizFi360Options.from_marker(request.node.get_closest_marker(MARKER))


@pytest.fixture
def wizfi360_emulator(wizfi360_options: WizFi360Options) -> Iterator["Emulator"]:
    """A running private emulator, stopped after the test."""
    from wizsock.emulator import Emulator

    o = wizfi360_options
    emu = Emulator(world=o.build_world(), rtt=float(o.rtt), baudrate=o.baud, faults=o.faults,
                   seed=o.seed, name=f"pytest{os.getpid()}-{next(_names)}", log_traffic=o.log)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def wizfi360_url(wizfi360_emulator: "Emulator") -> str:
    """``wizemu://<name>`` of this test's emulator (open it at the marker's ``baud``)."""
    return wizfi360_emulator.url


def _default_ap(world: Dict[str, Any]) -> Optional[Tuple[str, str]]:
    """The access point the module joins: the default world's, else the first
    joinable one listed."""
    from wizsock.patch import EMULATOR_AP

    aps = world.get("aps", [])
    for ap in aps:
        if (ap.get("ssid"), ap.get("password", "")) == EMULATOR_AP:
            return EMULATOR_AP
    for ap in aps:
        if not ap.get("fail"):
            return ap["ssid"], ap.get("password", "")
    return None


@pytest.fixture
def wizfi360(wizfi360_url: str, wizfi360_emulator: "Emulator",
             wizfi360_options: WizFi360Options) -> Iterator["Module"]:
    """An open blocking ``wizsock.Module`` on this test's emulator, joined to its
    default access point (station mode); closed after the test."""
    from wizsock import _orig
    from wizsock.patch import open_default_module

    ssid = password = None
    if wizfi360_options.join:
        ap = _default_ap(wizfi360_emulator.world)
        if ap is None:
            _usage(
                f"@pytest.mark.{MARKER}: the world has no joinable access point; "
                "add one to 'aps' or pass join=False")
        ssid, password = ap
    module = open_default_module(wizfi360_url, ssid=ssid, password=password or "",
                                 baudrate=wizfi360_options.baud)
    try:
        yield module
    finally:
        with _orig.internal():
            module.close()


@pytest.fixture
def wizsock_patched(wizfi360: "Module") -> Iterator["Module"]:
    """``wizsock.patch(wizfi360)`` for the test: its sockets go over the module.

    Ask for your servers' fixtures before this one: a server created while the
    patch is on is reached over the host's loopback directly, not through the module.
    """
    from wizsock import patch as wpatch

    if wpatch.is_patched():
        _usage("wizsock_patched: wizsock is already patched in this process "
                                "(by the test itself or another fixture)")
    wpatch.patch(wizfi360)
    try:
        yield wizfi360
    finally:
        wpatch.unpatch()
