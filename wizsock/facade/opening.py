"""Opening a link for a connect: the wait for one of the module's five links, bounded by
the socket's timeout, and a link that arrives after its caller gave up closed again."""
from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any, Optional

import trio

from wizsock.engine.groups import collapse
from wizsock.facade import reclaim
from wizsock.facade.conn import Link
from wizsock.facade.pumps import close_link
from wizsock.facade.seams import FacadeAsyncModule

if sys.version_info < (3, 11):  # pragma: no cover - trio depends on the backport there
    from exceptiongroup import BaseExceptionGroup

#: how long a connect waits for one of the module's five links to be freed when the
#: socket itself sets no limit (blocking with no timeout, or non-blocking): a program
#: that holds every link and opens one more then fails in bounded time (see README)
LINK_WAIT = float(os.environ.get("WIZSOCK_LINK_WAIT", "30"))

def link_wait(timeout: Optional[float]) -> float:
    """How long a connect waits for a free link: the socket's own timeout, or LINK_WAIT
    for a socket that has none (blocking without timeout, or non-blocking)."""
    if timeout is None or timeout == 0.0:
        return LINK_WAIT
    return timeout

async def reserve(aio: FacadeAsyncModule, kind: str, wait: float) -> AbstractContextManager[object]:
    """A reserved link id (waiting FIFO for one, at most ``wait`` s) or LinkLimitError."""
    net = aio.net
    if not hasattr(net, "reserve_link"):
        return contextlib.nullcontext()
    reservation: AbstractContextManager[object]
    if not reclaim.RECLAIM_IDLE:
        reservation = await net.reserve_link(kind, wait)
        return reservation
    error: Optional[BaseException] = None
    try:
        async with trio.open_nursery() as nursery:
            # while this connect waits, idle connections may be reclaimed for it
            nursery.start_soon(reclaim.reclaim_while_waiting, aio)
            try:
                reservation = await net.reserve_link(kind, wait)
                return reservation
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:   # LinkLimitError as itself, never in a group
        error = collapse(group)
    raise error

async def open_within(open_fn: Callable[[], Awaitable[Link]], timeout: Optional[float],
                       box: dict[str, Any], aio: Optional[FacadeAsyncModule] = None, kind: str = "TCP") -> Link:
    """Open a link, giving up after ``timeout`` seconds (None: no limit).

    The wait for a free link is part of the connect and bounded by the same timeout
    (at most LINK_WAIT).  An AT command in flight is not cancelled by the engine; the
    open carries on in a task of its own, and a link that arrives after the caller
    gave up (timeout, or ``box["abandoned"]`` set by an interrupted caller) is closed.
    """
    deadline = trio.current_time() + (math.inf if timeout is None else timeout)
    reservation: AbstractContextManager[object] = contextlib.nullcontext()
    if aio is not None:
        reservation = await reserve(aio, kind, link_wait(timeout))
    done = trio.Event()

    async def opener() -> None:
        try:
            with reservation:
                box["link"] = await open_fn()
        except Exception as exc:
            box["error"] = exc
        finally:
            done.set()
            if box.get("abandoned") and "link" in box:
                await close_link(box["link"])

    try:
        trio.lowlevel.spawn_system_task(opener)
    except BaseException:
        reservation.__exit__(None, None, None)
        raise
    with trio.move_on_at(deadline):
        await done.wait()
    if not done.is_set():
        box["abandoned"] = True
        raise TimeoutError("timed out")
    if "error" in box:
        raise box["error"]
    link: Link = box["link"]
    return link
