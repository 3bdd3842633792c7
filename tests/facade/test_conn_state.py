"""A facade connection's state is one value, changed only through its transitions."""
from __future__ import annotations

import errno

import pytest

from wizsock.facade.conn import TRANSITIONS, Conn


def test_a_connection_goes_up_once():
    conn = Conn(None, "TCP", ("198.51.100.1", 80))
    assert conn.state == "connecting"
    conn.connected(local=("198.51.100.2", 4000))
    assert (conn.state, conn.local) == ("connected", ("198.51.100.2", 4000))
    with pytest.raises(RuntimeError, match="connected -> connected"):
        conn.connected()
    with pytest.raises(RuntimeError, match="connected -> listening"):
        conn.listening(("0.0.0.0", 80))


def test_a_failure_survives_the_pump_ending_but_not_a_close():
    conn = Conn(None, "TCP", ("198.51.100.1", 80))
    conn.fail(ValueError("no route"))
    assert conn.state == "failed" and conn.error is not None and conn.error.errno == errno.EIO
    conn.ended()                       # a stream pump's end keeps the failure (SO_ERROR, accept)
    assert conn.state == "failed"
    conn.closed()                      # a datagram or listener pump's end does not
    assert conn.state == "closed"
    with pytest.raises(RuntimeError, match="closed -> connected"):
        conn.connected()


def test_so_error_is_reported_once():
    conn = Conn(None, "TCP", ("198.51.100.1", 80))
    assert conn.take_so_error() is None
    conn.fail(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    assert conn.take_so_error().errno == errno.ECONNREFUSED
    assert conn.take_so_error() is None


def test_the_far_side_closes_once_and_reclaim_is_a_remote_close():
    conn = Conn(None, "TCP", ("198.51.100.1", 80))
    conn.peer_closed()
    assert conn.remote_closed and not conn.reclaimed
    assert set(TRANSITIONS) == {"connecting", "connected", "listening", "failed", "closed"}
    assert all({"failed", "closed"} <= nxt for nxt in TRANSITIONS.values())
