"""Opt-in TLS on the module itself (wizsock.ssl.ModuleSSLContext: CIPSTART "SSL")."""
import errno
import socket

import pytest

import wizsock.ssl as wssl
from facade.helpers import read_to_eof


def _get(sock):
    sock.sendall(b"GET /bytes/3000 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    return read_to_eof(sock)


def test_module_tls_verified(https_srv, patched, at_log):
    ctx = wssl.ModuleSSLContext(cafile=https_srv.ca.ca_pem_path)
    s = ctx.wrap_socket(socket.socket(), server_hostname="localhost")
    s.settimeout(20)
    s.connect(("127.0.0.1", https_srv.port))
    with s:
        data = _get(s)
    assert data.startswith(b"HTTP/1.1 200") and len(data.split(b"\r\n\r\n", 1)[1]) == 3000
    assert at_log.count('"SSL"') == 1 and at_log.count("CIPSSLCONF=2") == 1
    assert at_log.count("CASEND") == 1


def test_module_tls_wrong_ca_fails(https_srv, patched):
    import trustme
    ctx = wssl.ModuleSSLContext(cadata=trustme.CA().cert_pem.bytes())
    s = ctx.wrap_socket(socket.socket(), server_hostname="localhost")
    with s, pytest.raises(OSError):
        s.settimeout(20)
        s.connect(("127.0.0.1", https_srv.port))


def test_module_tls_needs_a_ca_or_explicit_no_verify():
    with pytest.raises(ValueError, match="verify=False"):
        wssl.ModuleSSLContext()
    with pytest.raises(TypeError):
        wssl.ModuleSSLContext(verify=0)
    assert wssl.ModuleSSLContext(verify=False).verify is False


def test_one_ssl_link_at_a_time(https_srv, patched):
    ctx = wssl.ModuleSSLContext(cafile=https_srv.ca.ca_pem_path)
    first = ctx.wrap_socket(socket.socket(), server_hostname="localhost")
    first.settimeout(20)
    first.connect(("127.0.0.1", https_srv.port))
    with first:
        second = ctx.wrap_socket(socket.socket(), server_hostname="localhost")
        with second, pytest.raises(OSError) as ei:
            second.settimeout(20)
            second.connect(("127.0.0.1", https_srv.port))
        assert ei.value.errno == errno.EBUSY and "SSL" in str(ei.value)
