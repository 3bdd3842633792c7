"""The software WizFi360 (design.md §5).

`from wizsock.emulator import Emulator`; the command handler seam for
plug-ins is `wizsock.emulator.registry`.
"""
from typing import TYPE_CHECKING

__all__ = ["Emulator"]

# Checkers see the real class; at run time it loads on first use (wizsock/__init__.py's
# pattern: the __getattr__ is invisible to checkers, so a typo is an error there).
if TYPE_CHECKING:
    from wizsock.emulator.core import Emulator as Emulator
else:
    def __getattr__(name):
        if name == "Emulator":
            from wizsock.emulator.core import Emulator

            return Emulator
        raise AttributeError(f"module 'wizsock.emulator' has no attribute {name!r}")
