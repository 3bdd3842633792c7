"""A routed socket's connection: what the socket and the task serving its pair share."""
from __future__ import annotations

import errno
import os
import socket as _stdsocket
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Optional

import trio

from wizsock import _orig

if TYPE_CHECKING:
    from wizsock.facade.registry import Handle

#: an IPv4 socket address
Address = tuple[str, int]

#: a link of the engine (TCP, UDP or SSL) as its ``open_*`` calls return it; the
#: facade uses its send/receive/aclose and a few attributes (typed with the engine)
Link = Any

#: what a listening socket's pump queued for ``accept()``: engine links (a module
#: server), or ``(descriptor, address)`` of an accepted kernel socket (a relay)
AcceptQueue = deque[Any]


class Conn:
    """What a routed socket shares with its pump (one per connection)."""

    def __init__(self, module: Optional[Handle], kind: str, remote: Optional[Address]) -> None:
        self.module = module          # facade handle (None: a relay)
        self.kind = kind              # "TCP" / "UDP" / "SSL" / "SERVER"
        self.remote = remote          # (ip, port)
        self.local: Optional[Address] = None    # (ip, port) once known
        self.link: Optional[Link] = None
        self.udp_peer: Optional[Address] = None  # a datagram socket's connect()ed peer
        self.state = "connecting"     # connecting / connected / listening / failed / closed
        self.error: Optional[OSError] = None    # pending connect error (SO_ERROR)
        self.so_error_reported = False
        self.user_id: Optional[tuple[int, int]] = None   # (st_dev, st_ino) of the user's end
        self.user_fd = -1
        self.shut_wr = False
        self.shut_rd = False
        self.remote_closed = False
        # the kernel socket a relay serves (None: a module link)
        self.relay: Optional[_stdsocket.socket] = None
        self.last_active = 0.0        # trio time of the last byte moved (idle reclaim)
        self.cancel_scope: Optional[trio.CancelScope] = None   # the pump's copy loop, while it runs
        self.pair_end: Optional[_stdsocket.socket] = None     # our end of the pair, while the pump runs
        self.reclaimed = False
        self.awaiting_reply = False   # the last bytes moved were the user's (idle reclaim)
        self.finished = threading.Event()   # set when the pump has let go of the link

    # -- helpers run on the engine loop -------------------------------------------

    def fail(self, exc: BaseException) -> None:
        self.error = exc if isinstance(exc, OSError) else OSError(errno.EIO, str(exc))
        self.state = "failed"

    def poke_user(self) -> None:
        """Leave unread data in our end's receive queue so closing it resets the user."""
        try:
            fd = os.dup(self.user_fd)
        except OSError:
            return
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != self.user_id:
                os.close(fd)
                return
            s = _orig.socket(fileno=fd)
            try:
                s.send(b"\0", _stdsocket.MSG_DONTWAIT)
            except OSError:
                pass  # full: there is unread data already, or the user end is gone
            finally:
                s.close()
        except OSError:
            try:
                os.close(fd)
            except OSError:
                pass
