"""wizsock: use a WIZnet WizFi360 module as the host's own network.

Heavy parts (engine, sockets, emulator) load on first use, so that importing
wizsock for the framer or codec alone stays cheap.
"""
from wizsock._version import __version__ as __version__

from typing import Any

_LAZY = {
    "open_module": "wizsock.engine",
    "Module": "wizsock.engine",
    "errors": "wizsock.errors",
    "patch": "wizsock.patch",
    "unpatch": "wizsock.patch",
    "patched": "wizsock.patch",
    "Emulator": "wizsock.emulator",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'wizsock' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(mod)
    return module if mod.endswith("." + name) else getattr(module, name)


def _register_serial_urls() -> None:
    # pyserial finds URL handlers as <package>.protocol_<scheme>; this makes
    # wizemu:// (the in-process emulator) open like any other port.
    try:
        import serial
    except ImportError:  # pragma: no cover
        return
    if "wizsock.urlhandler" not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append("wizsock.urlhandler")


_register_serial_urls()
