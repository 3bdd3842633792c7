"""The latest part of a record that would otherwise grow for as long as the module
runs (issue 21): `Emulator.transcript` and `Emulator.command_lines`.

A `Tail` keeps its newest entries up to a byte budget and is indexed as the whole
record: ``len()`` counts every entry appended since the last ``clear()``, so a
position taken with ``len()`` ("mark") still names the same entry later, and
``tail[mark:]`` is what came after it.  Asking for entries the budget already let
go raises ``LookupError`` rather than answering with a shorter list.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Deque, Generic, Iterator, List, TypeVar, Union, overload

T = TypeVar("T")


class Tail(Generic[T]):
    def __init__(self, budget: int, size: Callable[[T], int]) -> None:
        if budget <= 0:
            raise ValueError("budget must be > 0")
        self.budget = budget
        self._size = size
        self._items: Deque[T] = deque()
        self._bytes = 0
        self.dropped = 0          # entries let go, oldest first
        # the emulator's thread appends while a test's thread reads
        self._lock = threading.Lock()

    def append(self, item: T) -> None:
        with self._lock:
            self._items.append(item)
            self._bytes += self._size(item)
            while self._bytes > self.budget and len(self._items) > 1:
                self._bytes -= self._size(self._items.popleft())
                self.dropped += 1

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
            self.dropped = 0

    def kept(self) -> List[T]:
        """The entries still held, oldest first (a copy)."""
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        return self.dropped + len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self.kept())

    @overload
    def __getitem__(self, key: int) -> T: ...

    @overload
    def __getitem__(self, key: slice) -> List[T]: ...

    def __getitem__(self, key: Union[int, slice]) -> Union[T, List[T]]:
        with self._lock:
            dropped, items = self.dropped, list(self._items)
        total = dropped + len(items)
        if isinstance(key, slice):
            start, stop, step = key.indices(total)
            if start < dropped and start < stop:
                raise LookupError(f"entries {start}..{dropped - 1} are no longer kept "
                                  f"(budget {self.budget} bytes)")
            return items[start - dropped:max(0, stop - dropped):step]
        index = key + total if key < 0 else key
        if not 0 <= index < total:
            raise IndexError("Tail index out of range")
        if index < dropped:
            raise LookupError(f"entry {index} is no longer kept (budget {self.budget} bytes)")
        return items[index - dropped]

    def __repr__(self) -> str:
        return f"<Tail {len(self._items)} of {len(self)} entries, {self._bytes}/{self.budget} bytes>"
