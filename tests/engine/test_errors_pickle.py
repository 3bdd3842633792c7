"""wizsock.errors: every exception pickles and copies with its type, errno, message and fields."""
import copy
import errno
import pickle
import socket

import pytest

from wizsock import errors as E

#: one instance of every public exception, with its extra fields set
SAMPLES = [
    E.WizError("serial port failed: EOF"),
    E.WizError(errno.EIO, "with an errno"),
    E.CommandError("CIPSTART failed: ERROR (CLOSED)", command="CIPSTART", result="ERROR",
                   lines=["CLOSED"]),
    E.Busy("CIPSEND: busy", command="CIPSEND", result="busy", lines=["busy p..."]),
    E.NotGpioMode("SYSGPIOWRITE: NOT GPIO MODE!", command="SYSGPIOWRITE", result="ERROR"),
    E.NotOutputMode("SYSGPIOWRITE: NOT OUTPUT MODE!", command="SYSGPIOWRITE", result="ERROR"),
    E.JoinError("join failed: wrong password", code=2, meaning="wrong password",
                command="CWJAP_CUR", result="FAIL", lines=["+CWJAP_CUR:2"]),
    E.JoinError("join failed: cannot find the target AP", code=3, networks=["lab", "cafe"]),
    E.CommandTimeout("no answer to GMR", command="GMR", timeout=2.0),
    E.ModuleUnresponsive("no answer to AT at any baud rate", command="", timeout=1.0),
    E.ModuleUnresponsive("/dev/ttyUSB0: no answer to AT at any of the 2 baud rates tried",
                         command="", timeout=0.2, rates=(115200, 9600), port="/dev/ttyUSB0"),
    E.ModuleReset("module reset (ready)"),
    E.ModuleReset(),
    E.LinkLimitError("all 5 links are in use"),
    E.ConnectError("CIPSTART refused", lines=["4,CLOSED"]),
    E.ResolveError("DNS Fail for 'nowhere.test'"),
    E.SendFailed("link 3: SEND FAIL", link=3),
    E.BufferOverflow("link 1: 2000000 bytes unread"),
    E.LinkClosed(),
    E.LinkClosed("module closed"),
    E.StaleLink("link 2 generation 4 is gone"),
    E.ProtocolError("link 1: +IPD length lied", command=None, link=1),
    E.BadResponse("the answer to CIPSTATUS cannot be read", command="CIPSTATUS", lines=["x"]),
    E.PortError(errno.ENOTTY, "cannot open /dev/null: not a serial device", port="/dev/null"),
    E.PortNotFound(errno.ENOENT, "cannot open /dev/ttyNOPE: no such device", port="/dev/ttyNOPE"),
    E.PortAccessDenied(errno.EACCES, "cannot open /dev/ttyS0: permission denied",
                       port="/dev/ttyS0"),
    E.PortBusy(errno.EBUSY, "cannot open /dev/ttyUSB0: busy", port="/dev/ttyUSB0",
               holders=["pid 42 (minicom)"]),
]


def test_every_public_exception_is_sampled():
    assert {type(e).__name__ for e in SAMPLES} == set(E.__all__)


def _same(a, b):
    assert type(a) is type(b)
    assert a.args == b.args
    assert a.errno == b.errno
    assert a.strerror == b.strerror
    assert str(a) == str(b)
    assert vars(a) == vars(b)       # command, result, lines, code, meaning, timeout, link


@pytest.mark.parametrize("exc", SAMPLES, ids=lambda e: type(e).__name__)
def test_pickle_round_trip(exc):
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        _same(exc, pickle.loads(pickle.dumps(exc, proto)))


@pytest.mark.parametrize("exc", SAMPLES, ids=lambda e: type(e).__name__)
def test_copy_and_deepcopy(exc):
    c = copy.copy(exc)
    _same(exc, c)
    d = copy.deepcopy(exc)
    _same(exc, d)
    if hasattr(exc, "lines"):
        assert d.lines == exc.lines


def test_fields_and_families_survive():
    j = pickle.loads(pickle.dumps(SAMPLES[6]))
    assert (j.code, j.meaning, j.command, j.result, j.lines) == (
        2, "wrong password", "CWJAP_CUR", "FAIL", ("+CWJAP_CUR:2",))
    r = pickle.loads(pickle.dumps(E.ModuleReset("boom")))
    assert isinstance(r, ConnectionResetError) and r.errno == errno.ECONNRESET
    g = copy.deepcopy(E.ResolveError("x"))
    assert isinstance(g, socket.gaierror) and g.errno == socket.EAI_NONAME
    t = copy.copy(E.CommandTimeout("t", command="GMR", timeout=2.0))
    assert isinstance(t, TimeoutError) and t.timeout == 2.0


def test_raised_copy_still_raises_and_keeps_fields():
    exc = E.SendFailed("link 3: SEND FAIL", link=3)
    with pytest.raises(E.SendFailed) as info:
        raise pickle.loads(pickle.dumps(exc))
    assert info.value.link == 3 and info.value.errno == errno.EPIPE


def test_port_errors_keep_their_families_and_fields():
    nf = pickle.loads(pickle.dumps(E.PortNotFound(errno.ENOENT, "cannot open x: no such device",
                                                  port="x")))
    assert isinstance(nf, FileNotFoundError) and isinstance(nf, E.WizError)
    assert (nf.errno, nf.port, str(nf)) == (errno.ENOENT, "x", "cannot open x: no such device")
    denied = copy.deepcopy(E.PortAccessDenied(errno.EACCES, "denied", port="/dev/ttyS0"))
    assert isinstance(denied, PermissionError) and denied.errno == errno.EACCES
    busy = pickle.loads(pickle.dumps(E.PortBusy(errno.EBUSY, "busy", port="p",
                                                holders=["pid 1 (x)"])))
    assert busy.holders == ("pid 1 (x)",) and busy.errno == errno.EBUSY
    mu = pickle.loads(pickle.dumps(E.ModuleUnresponsive("m", rates=[115200, 600], port="p")))
    assert mu.rates == (115200, 600) and mu.port == "p" and isinstance(mu, TimeoutError)
    j = copy.copy(E.JoinError("j", code=3, networks=["a"]))
    assert j.networks == ("a",) and E.JoinError("j").networks is None
