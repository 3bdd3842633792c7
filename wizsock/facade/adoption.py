"""The hand-over of routing state to a facade socket being built by someone else's code.

Two constructors build a facade socket without being able to pass it anything:

* ``ssl.SSLSocket._create`` builds the TLS socket from ``sock.fileno()``: the new object
  takes the routing state of ``sock`` (wizsock.ssl wraps the call in ``adopting``);
* ``socket.accept`` of a module server builds a new socket that must be one end of a
  pair even inside the internal context (``paired``).

Owns that hand-over, per thread: what the next facade socket built on this thread takes.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Optional


class _HandOver(threading.local):
    """This thread's hand-over (each thread starts with none)."""

    def __init__(self) -> None:
        self._source: Optional[object] = None
        self._pair = False

    @contextlib.contextmanager
    def adopting(self, source: Optional[object]) -> Iterator[None]:
        self._source = source
        try:
            yield
        finally:
            self._source = None

    @contextlib.contextmanager
    def paired(self) -> Iterator[None]:
        self._pair = True
        try:
            yield
        finally:
            self._pair = False

    def force_pair(self) -> bool:
        return self._pair

    def take_source(self) -> Optional[object]:
        """The socket to adopt state from, handed over once."""
        source, self._source = self._source, None
        return source


_HAND_OVER = _HandOver()


def adopting(source: Optional[object]) -> contextlib.AbstractContextManager[None]:
    """The facade socket built from ``source``'s descriptor in this block (on this thread)
    takes ``source``'s routing state over, and what it owns (wizsock.ssl's wrapping)."""
    return _HAND_OVER.adopting(source)


def paired() -> contextlib.AbstractContextManager[None]:
    """A facade socket built in this block is one end of a pair even in the internal
    context (a module server's accepted connection)."""
    return _HAND_OVER.paired()


def force_pair() -> bool:
    """Inside :func:`paired` on this thread."""
    return _HAND_OVER.force_pair()


def take_source(fileno: Optional[int]) -> Optional[object]:
    """For a socket built from a descriptor inside :func:`adopting`: the socket whose
    state it takes (once), else None."""
    return _HAND_OVER.take_source() if fileno is not None else None
