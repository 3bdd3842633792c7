"""MicroPython's `micropython.const` (an identity outside the compiler)."""


def const(value):
    return value
