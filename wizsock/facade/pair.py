"""The AF_UNIX pair behind a facade socket: its buffers, the datagram framing on it, and
``Pair``, a host socket driven with trio's descriptor waits."""
from __future__ import annotations

import select
import socket as _stdsocket
import struct
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from wizsock import _orig
from wizsock.facade.conn import Address

if TYPE_CHECKING:
    from typing_extensions import Buffer

_R = TypeVar("_R")

PAIR_BUFFER = 4096     # SO_SNDBUF asked for on both stream pair ends (the kernel doubles it)
DGRAM_PAIR_BUFFER = 256 * 1024   # datagram pairs: room for a whole 64 KiB datagram and its frame


def new_pair(pair_type: int) -> tuple[_stdsocket.socket, _stdsocket.socket]:
    """A fresh AF_UNIX pair with small stream buffers (so blocking and timeouts track
    the UART): (the user's end, the pump's end)."""
    mine, theirs = _orig.socketpair(_stdsocket.AF_UNIX, pair_type)
    size = PAIR_BUFFER if pair_type == _stdsocket.SOCK_STREAM else DGRAM_PAIR_BUFFER
    for s in (mine, theirs):
        s.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_SNDBUF, size)
        s.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_RCVBUF, size)
    return mine, theirs


_ADDR = struct.Struct("!4sH")   # UDP framing on the pair: IPv4 address, port, then payload


def pack_addr(addr: Address) -> bytes:
    return _ADDR.pack(_stdsocket.inet_aton(addr[0]), addr[1])

def unpack_addr(frame: Buffer) -> Address:
    ip, port = _ADDR.unpack_from(frame)
    return (_stdsocket.inet_ntoa(ip), port)


ADDR_LEN = _ADDR.size


class Pair:
    """A host socket (our end of the pair, or a relay's kernel socket), driven with
    trio's fd waits (not trio.socket: under a patch trio only accepts the patched class)."""

    def __init__(self, sock: _stdsocket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    async def _io(self, op: Callable[[Any], _R], wait: Callable[[_stdsocket.socket], Awaitable[None]],
                  arg: Any) -> _R:
        # trio's checkpoint contract: cancellable before the call, never after it has
        # moved bytes (they would be lost)
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                result = op(arg)
            except BlockingIOError:
                await wait(self.sock)
                continue
            await trio.lowlevel.cancel_shielded_checkpoint()
            return result

    def recv(self, n: int) -> Coroutine[Any, Any, bytes]:
        return self._io(self.sock.recv, trio.lowlevel.wait_readable, n)

    def send(self, data: Buffer) -> Coroutine[Any, Any, int]:
        return self._io(self.sock.send, trio.lowlevel.wait_writable, data)

    def send_nowait(self, data: Buffer) -> int:
        return self.sock.send(data)

    def recvfrom(self, n: int) -> Coroutine[Any, Any, tuple[bytes, Any]]:
        return self._io(self.sock.recvfrom, trio.lowlevel.wait_readable, n)

    def sendto(self, data: Buffer, addr: Address) -> Coroutine[Any, Any, int]:
        return self._io(lambda d: self.sock.sendto(d, addr), trio.lowlevel.wait_writable, data)

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            trio.lowlevel.notify_closing(self.sock)
        self.sock.close()

async def send_all(tsock: Pair, data: Buffer) -> None:
    view = memoryview(data)
    while view:
        n = await tsock.send(view)
        view = view[n:]

def hung_up(fd: int) -> bool:
    p = select.poll()
    p.register(fd, select.POLLHUP)
    try:
        return any(ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, ev in p.poll(0))
    except OSError:
        return True
