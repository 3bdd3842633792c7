"""One exception out of a trio exception group, at the public boundary.

trio's nurseries (strict exception groups) wrap whatever fails inside them in a
``BaseExceptionGroup``, even a single error.  wizsock's public entry points
(``open_module``, ``Module``, ``patch``, the socket facade, the tools) never let
one out: ``except OSError:`` and ``except wizsock.errors.ModuleUnresponsive:``
must work.  docs/design.md 3c says which exception the caller gets when several
really happen at once.
"""
from __future__ import annotations

import logging
import sys
from typing import Any, Callable, List, Optional, TypeVar

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

__all__ = ["collapse", "leaves", "call_collapsed"]

_T = TypeVar("_T")

log = logging.getLogger("wizsock.engine")


def leaves(group: BaseExceptionGroup) -> List[BaseException]:
    """The exceptions in ``group`` and its nested groups, in order."""
    out: List[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out.extend(leaves(exc))
        else:
            out.append(exc)
    return out


def _holds(group: BaseExceptionGroup, exc: BaseException) -> bool:
    """Whether ``exc`` is in ``group``: as one of its leaves, or (a group itself, which
    trio re-wraps as a new group object) with all of its leaves there."""
    there = {id(e) for e in leaves(group)}
    mine = leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return bool(mine) and all(id(e) in there for e in mine)


def collapse(group: BaseExceptionGroup, own: Optional[BaseException] = None) -> BaseException:
    """The one exception to raise in place of ``group``.

    The exception itself, not a copy: its type, ``__cause__`` and traceback are
    the ones it was raised with (re-raise it outside the ``except`` clause that
    caught the group, so that its ``__context__`` is not replaced by the group).

    When several are in it: trio's ``Cancelled`` only if nothing else is; then
    ``own`` (the caller's own exception, raised in its ``async with`` block) if it
    is one of them; then an interruption (``KeyboardInterrupt``, ``SystemExit``,
    anything not an ``Exception``); then the first.  The others are listed in the
    chosen one's notes (``add_note``) and logged with their tracebacks (debug level,
    logger ``wizsock.engine``)."""
    import trio

    everything = leaves(group)
    real = [e for e in everything if not isinstance(e, trio.Cancelled)] or everything
    if own is not None and _holds(group, own):
        # (the caller's own may be a group of its own making: it comes back whole)
        chosen = own
        mine = {id(e) for e in (leaves(own) if isinstance(own, BaseExceptionGroup) else [own])}
    else:
        chosen = next((e for e in real if not isinstance(e, Exception)), real[0])
        mine = {id(chosen)}
    for other in real:
        if id(other) in mine:
            continue
        # (debug: a second line on a tool's stderr would break its one-line report;
        # the note below carries it to whoever prints the chosen one's traceback)
        log.debug("%r happened at the same time as %r (which is raised)", other, chosen,
                  exc_info=other)
        _add_note(chosen, f"also, at the same time: {type(other).__name__}: {other}")
    return chosen


def call_collapsed(fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)``, a group it raises replaced by :func:`collapse`'s choice."""
    error: Optional[BaseException] = None
    try:
        return fn(*args)
    except BaseExceptionGroup as group:
        error = collapse(group)
    raise error     # (outside the except: its __context__ stays its own)


def _add_note(exc: BaseException, note: str) -> None:
    add = getattr(exc, "add_note", None)
    if add is not None:
        add(note)
    else:  # pragma: no cover - Python 3.10 (the exceptiongroup backport prints __notes__)
        notes = getattr(exc, "__notes__", None)
        if not isinstance(notes, list):
            notes = []
        notes.append(note)
        try:
            setattr(exc, "__notes__", notes)
        except AttributeError:
            pass
