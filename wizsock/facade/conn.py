"""A routed socket's connection: what the socket and the task serving its pair share."""
from __future__ import annotations

import errno
import os
import socket as _stdsocket
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Literal, Optional

import trio

from wizsock import _orig

from wizsock.facade.seams import FacadeLink

if TYPE_CHECKING:
    from wizsock.facade.registry import Handle

#: an IPv4 socket address
Address = tuple[str, int]

#: a link of the engine (TCP, UDP or SSL) as its ``open_*`` calls return it
Link = FacadeLink

#: what a listening socket's pump queued for ``accept()``: engine links (a module
#: server), or ``(descriptor, address)`` of an accepted kernel socket (a relay)
AcceptQueue = deque[Any]


#: a connection's lifecycle, one value
ConnState = Literal["connecting", "connected", "listening", "failed", "closed"]
#: the far side as the copy loops saw it: open, closed by the peer (EOF), or closed by
#: idle reclaim (:mod:`wizsock.facade.reclaim`), which the user reads as a remote close
FarState = Literal["open", "closed", "reclaimed"]

#: state -> the states it may change to.  Failing and closing can happen in any state
#: (a pump that fails after its loop ended, the user's close); connected and listening
#: only from a new connection.
TRANSITIONS: dict[ConnState, frozenset[ConnState]] = {
    "connecting": frozenset({"connected", "listening", "failed", "closed"}),
    "connected": frozenset({"failed", "closed"}),
    "listening": frozenset({"failed", "closed"}),
    "failed": frozenset({"failed", "closed"}),
    "closed": frozenset({"failed", "closed"}),
}


class Conn:
    """What a routed socket shares with its pump (one per connection).

    Its fields are changed only through its methods: the socket (user thread) and the
    pump or relay (a trio loop) each call the ones for their side."""

    def __init__(self, module: Optional[Handle], kind: str, remote: Optional[Address],
                 relay: Optional[_stdsocket.socket] = None, local: Optional[Address] = None) -> None:
        self.module = module          # facade handle (None: a relay)
        self.kind = kind              # "TCP" / "UDP" / "SSL" / "SERVER"
        self.remote = remote          # (ip, port)
        self.local = local            # (ip, port) once known
        self.link: Optional[Link] = None
        self.udp_peer: Optional[Address] = None  # a datagram socket's connect()ed peer
        self._state: ConnState = "connecting"
        self._far: FarState = "open"
        self.error: Optional[OSError] = None    # pending connect error (SO_ERROR)
        self.so_error_reported = False
        self.user_id: Optional[tuple[int, int]] = None   # (st_dev, st_ino) of the user's end
        self.user_fd = -1
        self.shut_wr = False
        self.shut_rd = False
        # the kernel socket a relay serves (None: a module link)
        self.relay = relay
        self.last_active = 0.0        # trio time of the last byte moved (idle reclaim)
        self.cancel_scope: Optional[trio.CancelScope] = None   # the pump's copy loop, while it runs
        self.pair_end: Optional[_stdsocket.socket] = None     # our end of the pair, while the pump runs
        self.awaiting_reply = False   # the last bytes moved were the user's (idle reclaim)
        self.finished = threading.Event()   # set when the pump has let go of the link

    # -- the lifecycle ------------------------------------------------------------------

    @property
    def state(self) -> ConnState:
        return self._state

    def _to(self, state: ConnState) -> None:
        if state not in TRANSITIONS[self._state]:
            raise RuntimeError(f"facade connection: {self._state} -> {state} is not a transition")
        self._state = state

    def connected(self, link: Optional[Link] = None, local: Optional[Address] = None) -> None:
        """Up: on ``link`` (a module link), or a relay whose kernel socket has ``local``."""
        self._to("connected")
        if link is not None:
            self.link = link
        self.local = local or getattr(link, "local", None) or self.local

    def listening(self, local: Address) -> None:
        self._to("listening")
        self.local = local

    def fail(self, exc: BaseException) -> None:
        self.error = exc if isinstance(exc, OSError) else OSError(errno.EIO, str(exc))
        self._to("failed")

    def ended(self) -> None:
        """The pump let go of the stream: closed, unless it failed."""
        if self._state != "failed":
            self._to("closed")

    def closed(self) -> None:
        self._to("closed")

    # -- the user's side ----------------------------------------------------------------

    def attach_user(self, fd: int) -> None:
        """The user's end of the pair is ``fd`` (a reset is delivered there)."""
        st = os.fstat(fd)
        self.user_id = (st.st_dev, st.st_ino)
        self.user_fd = fd

    def udp_connect(self, peer: Address) -> None:
        """A datagram socket's (re-)connect: its sends go to ``peer``."""
        self.udp_peer = peer

    def take_so_error(self) -> Optional[OSError]:
        """The pending error for SO_ERROR, reported once."""
        if self.error is None or self.so_error_reported:
            return None
        self.so_error_reported = True
        return self.error

    def shutdown(self, how: int) -> None:
        if how in (_stdsocket.SHUT_WR, _stdsocket.SHUT_RDWR):
            self.shut_wr = True
        if how in (_stdsocket.SHUT_RD, _stdsocket.SHUT_RDWR):
            self.shut_rd = True

    # -- the copy loops (engine or relay loop) ------------------------------------------

    @property
    def remote_closed(self) -> bool:
        return self._far != "open"

    @property
    def reclaimed(self) -> bool:
        return self._far == "reclaimed"

    def peer_closed(self) -> None:
        if self._far == "open":
            self._far = "closed"

    def reclaim(self) -> None:
        """Close it as its peer could have (idle reclaim): the user reads EOF."""
        self._far = "reclaimed"
        assert self.cancel_scope is not None, "only a running copy loop is reclaimed"
        self.cancel_scope.cancel()

    def moved(self, from_user: bool) -> None:
        """Bytes moved, the user's (a request that awaits its answer) or the peer's."""
        self.last_active = trio.current_time()
        self.awaiting_reply = from_user

    def copy_started(self, pair_end: _stdsocket.socket) -> None:
        self.last_active = trio.current_time()
        self.pair_end = pair_end

    def copy_running(self, scope: trio.CancelScope) -> None:
        self.cancel_scope = scope

    def copy_ended(self) -> None:
        self.cancel_scope = None
        self.pair_end = None

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
