"""Pumps: trio tasks on the engine's loop that join a socketpair end to a link.

The user's socket owns one end of an AF_UNIX socketpair (its file descriptor
was swapped in with ``os.dup2``); these tasks own the other end and copy bytes
between it and the engine's :class:`Link`.  Everything the kernel does for the
user's end (blocking, timeouts, non-blocking mode, select/poll/epoll, ssl)
then works unchanged.

Signals back to the user's end, all through the kernel:

* remote close      -> ``shutdown(SHUT_WR)`` on our end: the user reads the rest, then ``b""``;
* reset / failure   -> close our end with unread data in its receive queue: the
                       user's next ``recv`` raises ``ConnectionResetError``;
* user close        -> our end reads EOF (and POLLHUP) -> the link is closed.
"""
from __future__ import annotations

import errno
import functools
import logging
import os
import select
import socket as _stdsocket
import struct
import threading

import trio

from wizsock import _orig

log = logging.getLogger("wizsock.socket")

CHUNK = 8192          # bytes read from the pair per link.send (the engine splits at 2048)
HALF_CLOSE_POLL = 0.05

_ADDR = struct.Struct("!4sH")   # UDP framing on the pair: IPv4 address, port, then payload


def pack_addr(addr):
    return _ADDR.pack(_stdsocket.inet_aton(addr[0]), addr[1])


def unpack_addr(frame):
    ip, port = _ADDR.unpack_from(frame)
    return (_stdsocket.inet_ntoa(ip), port)


ADDR_LEN = _ADDR.size


class Conn:
    """What a routed socket shares with its pump (one per connection)."""

    def __init__(self, module, kind, remote):
        self.module = module          # facade handle (wizsock.socket._Handle)
        self.kind = kind              # "TCP" / "UDP" / "SSL"
        self.remote = remote          # (ip, port)
        self.local = None             # (ip, port) once known
        self.link = None
        self.state = "connecting"     # connecting / connected / failed / closed
        self.error = None             # pending connect error (SO_ERROR), an OSError
        self.so_error_reported = False
        self.user_id = None           # (st_dev, st_ino) of the user's end
        self.user_fd = -1
        self.shut_wr = False
        self.shut_rd = False
        self.remote_closed = False
        self.finished = threading.Event()   # set when the pump has let go of the link

    # -- helpers run on the engine loop -------------------------------------------

    def fail(self, exc):
        self.error = exc if isinstance(exc, OSError) else OSError(errno.EIO, str(exc))
        self.state = "failed"

    def poke_user(self):
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


class _Pair:
    """Our end of the socketpair, driven with trio's fd waits (not trio.socket: under a
    patch trio only accepts the patched class, and the pair is a host socket)."""

    def __init__(self, sock):
        self.sock = sock
        sock.setblocking(False)

    def fileno(self):
        return self.sock.fileno()

    async def _io(self, op, wait, arg):
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

    def recv(self, n):
        return self._io(self.sock.recv, trio.lowlevel.wait_readable, n)

    def send(self, data):
        return self._io(self.sock.send, trio.lowlevel.wait_writable, data)

    def send_nowait(self, data):
        return self.sock.send(data)

    def shutdown(self, how):
        self.sock.shutdown(how)

    def close(self):
        if self.sock.fileno() >= 0:
            trio.lowlevel.notify_closing(self.sock)
        self.sock.close()


def _guarded(fn):
    """Pumps run in the engine's nursery: an escaping exception would end the module.
    A pump that fails anyway fails its connection and closes its end of the pair, so
    the user's socket sees the error instead of waiting forever."""
    @functools.wraps(fn)
    async def wrapper(conn, pair_end, *args):
        try:
            await fn(conn, pair_end, *args)
        except Exception as exc:
            log.exception("wizsock pump %s failed", fn.__name__)
            if conn.error is None:
                conn.fail(exc)
            try:
                pair_end.close()
            except OSError:
                pass
            conn.finished.set()
    return wrapper


def _engine_closing():
    """Our task was cancelled because the engine itself is shutting down (a pump is only
    ever cancelled from outside by the engine's nursery)."""
    return trio.current_effective_deadline() == float("-inf")


async def _close_link(link):
    if link is None:
        return
    if _engine_closing():
        return  # the engine closes its links itself
    log.debug("closing link %r", link)
    with trio.CancelScope(shield=True):
        with trio.move_on_after(10):
            try:
                await link.aclose()
            except Exception as e:  # the link may already be gone (reset, remote close)
                log.debug("closing link: %r", e)


async def _send_all(tsock, data):
    view = memoryview(data)
    while view:
        n = await tsock.send(view)
        view = view[n:]


def _remote_closed_after_send(link, exc):
    """The peer closed (CLOSED) while segments were still unacknowledged: the engine
    fails the link with SendFailed.  A peer that answers and closes (HTTP
    ``Connection: close``) does exactly that, and the kernel would give EOF: so do we."""
    from wizsock import errors

    return isinstance(exc, errors.SendFailed) and bool(getattr(link, "_module_closed", False))


def _hung_up(fd):
    p = select.poll()
    p.register(fd, select.POLLHUP)
    try:
        return any(ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, ev in p.poll(0))
    except OSError:
        return True


async def _wait_user_gone(tsock):
    """After the user's half-close, wait until its end is fully closed."""
    while not _hung_up(tsock.fileno()):
        await trio.sleep(HALF_CLOSE_POLL)


async def _drain(tsock, n):
    """Read and discard the n bytes the user end was pre-filled with (connect pending)."""
    while n > 0:
        data = await tsock.recv(min(n, 65536))
        if not data:
            return False
        n -= len(data)
    return True


@_guarded
async def pump_stream(conn, pair_end, open_fn=None, junk=0):
    """TCP (and module-SSL) pump.  With open_fn, the connect happens here (non-blocking connect)."""
    tsock = _Pair(pair_end)
    link = conn.link
    reset = False
    try:
        if link is None:
            try:
                link = await open_fn()
            except BaseException as e:
                if not isinstance(e, Exception):
                    conn.fail(OSError(errno.ECANCELED, "connect cancelled"))
                    raise
                conn.fail(e)
                log.debug("non-blocking connect to %s failed: %r", conn.remote, e)
                return
            conn.link = link
            conn.local = getattr(link, "local", None) or conn.local
            conn.state = "connected"
            if not await _drain(tsock, junk):
                return  # the user closed before the connect finished
        reset = await _run_stream(conn, link, tsock)
    finally:
        conn.state = "failed" if conn.state == "failed" else "closed"
        engine_closing = _engine_closing()
        await _close_link(link)
        if reset or (engine_closing and link is not None):
            conn.poke_user()   # the module went away under the connection: a reset
        tsock.close()
        conn.finished.set()


async def _run_stream(conn, link, tsock):
    """Copy both ways until the user closes or the link fails; True means reset the user."""
    outcome = {"reset": False}

    async def up(cancel):
        send_dead = False
        while True:
            try:
                data = await tsock.recv(CHUNK)
            except OSError:
                data = b""
            if not data:
                log.debug("link %s: the user closed its end", getattr(link, "id", "?"))
                if conn.shut_wr and not conn.remote_closed:
                    await _wait_user_gone(tsock)
                cancel.cancel()
                return
            if conn.remote_closed or send_dead:
                continue  # the peer is gone; what the user still writes goes nowhere
            try:
                await link.send(data)
            except Exception as e:
                if conn.remote_closed or _remote_closed_after_send(link, e):
                    send_dead = True   # down still delivers what arrived, then EOF
                    continue
                log.debug("link send failed: %r", e)
                outcome["reset"] = True
                cancel.cancel()
                return

    async def down(cancel):
        while True:
            try:
                data = await link.receive(65536)
            except Exception as e:
                if not _remote_closed_after_send(link, e):
                    log.debug("link receive failed: %r", e)
                    outcome["reset"] = True
                    cancel.cancel()
                    return
                data = b""
            if not data:
                conn.remote_closed = True
                try:
                    tsock.shutdown(_stdsocket.SHUT_WR)
                except OSError:
                    pass
                if conn.shut_wr:
                    cancel.cancel()  # both directions are done
                return
            try:
                await _send_all(tsock, data)
            except OSError:
                if conn.shut_rd:
                    continue
                cancel.cancel()  # the user closed its end
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(up, nursery.cancel_scope)
        nursery.start_soon(down, nursery.cancel_scope)
    return outcome["reset"]


@_guarded
async def pump_dgram(conn, pair_end):
    """UDP pump: each datagram on the (SOCK_SEQPACKET) pair is framed with the peer's
    address; the user's close reads as EOF, as on a stream."""
    tsock = _Pair(pair_end)
    link = conn.link
    try:
        async def up(cancel):
            while True:
                try:
                    frame = await tsock.recv(65536 + ADDR_LEN)
                except OSError:
                    frame = b""
                if not frame:
                    # a zero-length datagram can never come from the user (it is framed):
                    # this is the user's end closing
                    cancel.cancel()
                    return
                addr = unpack_addr(frame)
                payload = frame[ADDR_LEN:]
                try:
                    if addr == tuple(link.remote or ()):
                        await link.send(payload)
                    else:
                        await link.send_to(payload, addr)
                except Exception as e:
                    log.debug("UDP send failed: %r", e)  # datagrams may be lost

        async def down(cancel):
            while True:
                try:
                    data, addr = await link.receive_from(65536)
                except Exception as e:
                    log.debug("UDP receive failed: %r", e)
                    cancel.cancel()
                    return
                try:
                    tsock.send_nowait(pack_addr(addr) + bytes(data))
                except BlockingIOError:
                    pass  # receive queue full: drop, as UDP does
                except OSError:
                    cancel.cancel()
                    return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(up, nursery.cancel_scope)
            nursery.start_soon(down, nursery.cancel_scope)
    finally:
        conn.state = "closed"
        await _close_link(link)
        tsock.close()
        conn.finished.set()


@_guarded
async def pump_listener(conn, pair_end, server, queue):
    """Accept loop for a module server: each accepted link is queued and one byte signals it."""
    tsock = _Pair(pair_end)
    try:
        async def accept_loop(cancel):
            while True:
                try:
                    link = await server.accept()
                except Exception as e:
                    log.debug("accept failed: %r", e)
                    conn.fail(e)
                    cancel.cancel()
                    return
                queue.append(link)
                try:
                    await tsock.send(b"\1")
                except OSError:
                    cancel.cancel()
                    return

        async def closed_watch(cancel):
            while True:
                try:
                    data = await tsock.recv(1024)
                except OSError:
                    data = b""
                if not data:
                    cancel.cancel()
                    return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept_loop, nursery.cancel_scope)
            nursery.start_soon(closed_watch, nursery.cancel_scope)
    finally:
        conn.state = "closed"
        with trio.CancelScope(shield=True):
            with trio.move_on_after(0 if _engine_closing() else 10):
                try:
                    await server.aclose()
                except Exception as e:
                    log.debug("closing server: %r", e)
            while queue:
                await _close_link(queue.pop())
        tsock.close()
        conn.finished.set()
