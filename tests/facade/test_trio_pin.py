"""What wizsock.trio relies on in trio's private socket class, pinned.

``wizsock.trio._TrioSocket`` subclasses ``trio._socket._SocketType`` and sets up
the instance as trio's own constructor does, minus its exact-type check (the
facade is a subclass of ``socket.socket``).  These tests fail as soon as trio
changes what that constructor does, what ``from_stdlib_socket`` returns, or
starts accepting subclasses (then the public constructor should be used).
"""
import socket

import pytest
import trio

import wizsock.socket as ws
import wizsock.trio as wt
from wizsock import _orig


def test_from_stdlib_socket_returns_the_class_we_subclass():
    a, b = _orig.socketpair()
    with a, b:
        t = trio.socket.from_stdlib_socket(a)
        assert type(t) is wt._TrioSocketBase
        assert isinstance(t, trio.socket.SocketType)
        assert issubclass(wt._TrioSocket, trio.socket.SocketType)


def test_trio_constructor_state_is_exactly_what_we_set():
    a, b = _orig.socketpair()
    with a, b:
        assert a.getblocking()
        t = trio.socket.from_stdlib_socket(a)
        # the constructor's whole effect: these attributes, and a non-blocking socket
        assert tuple(sorted(vars(t))) == tuple(sorted(wt.TRIO_SOCKET_STATE))
        assert vars(t) == {"_sock": a, "_did_shutdown_SHUT_WR": False}
        assert not a.getblocking()
        assert t.did_shutdown_SHUT_WR is False and t.fileno() == a.fileno()


def test_trio_still_refuses_subclasses():
    """The reason for the subclass; if trio relaxes it, use from_stdlib_socket instead."""
    s = ws.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        assert isinstance(s, _orig.socket) and type(s) is not _orig.socket
        with pytest.raises(TypeError):
            wt._TrioSocketBase(s)
    finally:
        s.close()


def test_wrapped_facade_matches_trio_own_wrapper():
    s = ws.socket(socket.AF_INET, socket.SOCK_STREAM)
    a, b = _orig.socketpair()
    try:
        mine = wt._TrioSocket(s)
        theirs = trio.socket.from_stdlib_socket(a)
        assert set(vars(mine)) == set(vars(theirs))
        assert vars(mine)["_sock"] is s and mine.did_shutdown_SHUT_WR is False
        assert not s.getblocking()
        assert (mine.family, mine.type) == (socket.AF_INET, socket.SOCK_STREAM)
    finally:
        s.close()
        a.close()
        b.close()


def test_wrapped_kernel_facade_carries_a_stream():
    """trio's own methods (connect with SO_ERROR, send, recv, shutdown) on the wrapper,
    over a facade socket that stays a kernel socket (internal context, loopback)."""
    trio.run(_carry_a_stream)


async def _carry_a_stream():
    with _orig.internal():
        listener = _orig.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        try:
            s = ws.socket(socket.AF_INET, socket.SOCK_STREAM)
            t = wt._TrioSocket(s)
            await t.connect(listener.getsockname())
            peer, _ = listener.accept()
            with peer:
                stream = trio.SocketStream(t)
                await stream.send_all(b"ping")
                assert peer.recv(4) == b"ping"
                peer.sendall(b"pong")
                assert await stream.receive_some(4) == b"pong"
                await stream.send_eof()
                assert t.did_shutdown_SHUT_WR is True
                assert peer.recv(1) == b""
                await stream.aclose()
        finally:
            listener.close()
