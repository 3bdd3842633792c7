"""wizsock: use a WIZnet WizFi360 module as the host's own network.

Heavy parts (engine, sockets, emulator) load on first use, so that importing
wizsock for the framer or codec alone stays cheap.
"""
from wizsock._version import __version__ as __version__

from typing import TYPE_CHECKING

# The public names, re-exported explicitly (trio's __init__.py style) for checkers: under
# TYPE_CHECKING they see these imports and nothing else, so `wizsock.open_module` has its
# real signature and `wizsock.typo` is an error.  At run time the same names load on first
# use through the module __getattr__ below, which checkers never see (it is defined only
# when TYPE_CHECKING is false); tests/house/test_public_surface.py keeps the two lists equal.
if TYPE_CHECKING:
    from wizsock import errors as errors
    from wizsock.emulator.core import Emulator as Emulator
    from wizsock.engine import AsyncModule as AsyncModule
    from wizsock.engine import EngineOptions as EngineOptions
    from wizsock.engine import Module as Module
    from wizsock.engine import open_module as open_module
    from wizsock.patch import PatchModule

    #: the submodule wizsock.patch, callable: ``wizsock.patch(port)`` patches
    patch: PatchModule
    from wizsock.patch import patched as patched
    from wizsock.patch import unpatch as unpatch

__all__ = [
    "AsyncModule",
    "Emulator",
    "EngineOptions",
    "Module",
    "errors",
    "open_module",
    "patch",
    "patched",
    "unpatch",
]

#: name -> the module that defines it (the name itself if it is that module)
_LAZY = {
    "open_module": "wizsock.engine",
    "Module": "wizsock.engine",
    "AsyncModule": "wizsock.engine",
    "EngineOptions": "wizsock.engine",
    "errors": "wizsock.errors",
    "patch": "wizsock.patch",
    "unpatch": "wizsock.patch",
    "patched": "wizsock.patch",
    "Emulator": "wizsock.emulator",
}

if not TYPE_CHECKING:
    def __getattr__(name):
        mod = _LAZY.get(name)
        if mod is None:
            raise AttributeError(f"module 'wizsock' has no attribute {name!r}")
        import importlib

        module = importlib.import_module(mod)
        return module if mod.endswith("." + name) else getattr(module, name)

    def __dir__():
        return sorted(set(globals()) | set(__all__))


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
