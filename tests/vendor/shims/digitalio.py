"""CircuitPython's `digitalio` for the ESP-AT driver's reset/RTS pins.

A pin is any object; a callable pin is called with each new output level, so a test
can wire the driver's reset pin to the emulator's RST line (SIGUSR1 to
`wizsock emulator`).
"""
from typing import Any


class Direction:
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"


class DigitalInOut:
    def __init__(self, pin: Any) -> None:
        self._pin = pin
        self.direction = Direction.INPUT
        self._value = True

    @property
    def value(self) -> bool:
        return self._value

    @value.setter
    def value(self, level: bool) -> None:
        level = bool(level)
        if level != self._value and callable(self._pin):
            self._pin(level)
        self._value = level
