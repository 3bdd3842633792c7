"""The software WizFi360 (design.md §3).

`from wizsock.emulator import Emulator`; the command handler seam for
plug-ins is `wizsock.emulator.registry`.
"""

__all__ = ["Emulator"]


def __getattr__(name):
    if name == "Emulator":
        from wizsock.emulator.core import Emulator

        return Emulator
    raise AttributeError(f"module 'wizsock.emulator' has no attribute {name!r}")
