"""Idle-link reclaim (opt-in): the module has five links and no way to queue a sixth
connection; a keep-alive pool (requests.Session, aiohttp) that has talked to five
hosts holds them all while idle.  With RECLAIM_IDLE, a connect that finds every link
busy first closes the longest-idle connection that has nothing in flight and whose
last bytes came from the peer (a request/response exchange that is over: a
connection whose request awaits its answer is never taken), as its peer could have
at any time: the user reads EOF, and pools then reconnect.

Owns the set of running stream connections and the ones being reclaimed.
"""
from __future__ import annotations

import fcntl
import logging
import os
import socket as _stdsocket
import termios
import weakref
from typing import TYPE_CHECKING, Any, Optional

import trio

if TYPE_CHECKING:
    from wizsock.facade.conn import Conn
    from wizsock.facade.seams import FacadeAsyncModule

log = logging.getLogger("wizsock.socket")

#: close the longest-idle connection when a connect finds all links busy
RECLAIM_IDLE = os.environ.get("WIZSOCK_RECLAIM_IDLE", "") not in ("", "0", "no", "false")
#: a connection counts as idle after this many seconds without a byte either way
RECLAIM_MIN_IDLE = 0.2


def set_reclaim_idle(on: bool) -> None:
    """Turn idle reclaim on or off (``wizsock run --reclaim-idle``; default: the
    environment's WIZSOCK_RECLAIM_IDLE)."""
    global RECLAIM_IDLE
    RECLAIM_IDLE = on

_streams: "weakref.WeakSet[Conn]" = weakref.WeakSet()


def _queued(sock: _stdsocket.socket) -> int:
    """Bytes waiting in either direction of our end of the pair."""
    fd = sock.fileno()
    if fd < 0:
        return 1
    buf = bytearray(4)
    try:
        fcntl.ioctl(fd, termios.FIONREAD, buf)     # the user wrote, we did not read
        inq = int.from_bytes(buf, "little")
        fcntl.ioctl(fd, termios.TIOCOUTQ, buf)     # we wrote, the user did not read
        outq = int.from_bytes(buf, "little")
    except OSError:
        return 1
    return inq + outq


def idle_candidate(module_aio: object) -> Optional[Conn]:
    """The longest-idle module connection with nothing unread, unsent or unacknowledged."""
    now = trio.current_time()
    best: Optional[Conn] = None
    for conn in list(_streams):
        link = conn.link
        if conn.module is None or getattr(conn.module, "aio", None) is not module_aio:
            continue
        if link is None or link.closed or conn.remote_closed or conn.reclaimed \
                or conn.cancel_scope is None or conn.pair_end is None:
            continue
        if link.buffered or link.unsent or _queued(conn.pair_end) or conn.awaiting_reply:
            continue   # data in flight, or a request that has not been answered yet
        if now - conn.last_active < RECLAIM_MIN_IDLE:
            continue
        if best is None or conn.last_active < best.last_active:
            best = conn
    return best


async def reclaim_while_waiting(module_aio: FacadeAsyncModule, max_links: int = 5) -> None:
    """Run beside a connect waiting for a link: whenever every link is held and none
    is being reclaimed already, close the longest-idle one (see RECLAIM_IDLE)."""
    while True:
        if len(module_aio.net.links) >= max_links and not _reclaiming:
            reclaim_idle(module_aio)
        await trio.sleep(0.1)


_reclaiming: "weakref.WeakSet[Conn]" = weakref.WeakSet()   # reclaimed, link not yet freed


def reclaim_idle(module_aio: object) -> None:
    conn = idle_candidate(module_aio)
    if conn is None:
        return
    _reclaiming.add(conn)
    log.info("all links busy and a connect waits: closing idle link %s to %s (idle %.1f s)",
             getattr(conn.link, "id", "?"), conn.remote, trio.current_time() - conn.last_active)
    conn.reclaim()   # idle_candidate() takes only running copy loops




def watch(conn: Conn) -> None:
    """``conn``'s copy loop runs: a candidate for reclaim."""
    _streams.add(conn)


def unwatch(conn: Conn) -> None:
    """``conn``'s copy loop has ended."""
    _streams.discard(conn)


def finished(conn: Conn) -> None:
    """``conn`` has let go of its link (a reclaim in progress is over)."""
    _reclaiming.discard(conn)
