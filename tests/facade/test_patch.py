"""wizsock.patch / unpatch / patched: what is replaced, what is restored, early imports."""
import socket
import ssl
import sys
import types

import pytest

import wizsock
import wizsock.socket as wsocket
import wizsock.ssl as wssl
from wizsock import _orig


def test_patch_replaces_exactly_the_five_and_the_ssl_hook(module):
    before = {n: getattr(socket, n) for n in
              ("socket", "SocketType", "getaddrinfo", "gethostbyname", "create_connection",
               "socketpair", "getnameinfo", "gethostbyname_ex")}
    ssl_context_class = ssl.SSLContext
    with wizsock.patched(module) as m:
        assert m is module and wizsock.patch.is_patched()
        assert socket.socket is wsocket.socket and socket.SocketType is wsocket.socket
        assert socket.getaddrinfo is wsocket.getaddrinfo
        assert socket.gethostbyname is wsocket.gethostbyname
        assert socket.create_connection is wsocket.create_connection
        assert socket.socketpair is before["socketpair"]           # untouched
        assert socket.getnameinfo is before["getnameinfo"]
        assert ssl.SSLContext is ssl_context_class                   # never replaced
        assert ssl.SSLContext.sslsocket_class is wssl.SSLSocket      # the one hook
        with pytest.raises(RuntimeError):
            wizsock.patch(module)
    assert {n: getattr(socket, n) for n in before} == before
    assert ssl.SSLContext.sslsocket_class is ssl.SSLSocket
    assert not wizsock.patch.is_patched()


def test_copies_taken_before_the_patch_are_fixed_and_restored(module):
    early = types.ModuleType("httpcore._wizsock_early_probe")
    early.create_connection = _orig._std_create_connection       # `from socket import create_connection`
    early.getaddrinfo = _orig.getaddrinfo

    class EarlySocket(_orig.socket):
        pass
    EarlySocket.__module__ = early.__name__
    early.EarlySocket = EarlySocket
    sys.modules[early.__name__] = early
    try:
        with pytest.warns(RuntimeWarning, match="subclasses socket.socket"):
            wizsock.patch(module)
        try:
            assert early.create_connection is wsocket.create_connection
            assert early.getaddrinfo is wsocket.getaddrinfo
        finally:
            wizsock.unpatch()
        assert early.create_connection is _orig._std_create_connection
        assert early.getaddrinfo is _orig.getaddrinfo
    finally:
        del sys.modules[early.__name__]


def test_internal_context_uses_the_host_network(module):
    with wizsock.patched(module):
        with _orig.internal():
            s = socket.socket()
            assert s._wiz_kernel
            s.close()
            assert socket.getaddrinfo("localhost", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0] == "127.0.0.1"


def test_no_module_is_a_clear_error():
    s = wsocket.socket()
    with s, pytest.raises(OSError, match="no WizFi360 module"):
        s.connect(("127.0.0.1", 9))


def test_patch_refuses_an_async_module():
    class AsyncOnly:
        net = None
    with pytest.raises(TypeError, match="wizsock.trio.install"):
        wizsock.patch(AsyncOnly())
    assert not wizsock.patch.is_patched()
