"""Turns a fuzzer's raw bytes into choices, deterministically and without atheris.

The harnesses decode their input with this instead of atheris's
FuzzedDataProvider so that the committed corpus replays under plain pytest
(tests/fuzz/), where atheris and the sanitizer build are not installed.  An
exhausted input reads as zeros, so every byte string is a valid input.
"""
from __future__ import annotations

from typing import Sequence, TypeVar

T = TypeVar("T")


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def __bool__(self) -> bool:
        return self.pos < len(self.data)

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        b = self.data[self.pos]
        self.pos += 1
        return b

    def u16(self) -> int:
        return self.byte() | self.byte() << 8

    def take(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out

    def rest(self) -> bytes:
        return self.take(len(self.data))

    def pick(self, items: Sequence[T]) -> T:
        return items[self.byte() % len(items)]

    def size(self) -> int:
        """A chunk size: mostly small, sometimes past 4 KiB (the default max_line)."""
        n = self.byte()
        if n == 255:
            return 255 + self.u16() % 8192
        return n
