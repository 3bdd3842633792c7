"""Unmodified `requests` over the emulated module (HTTPS with verification)."""
import hashlib

import pytest
import requests

from support.servers import deterministic_bytes, sha256


def test_https_get_verified(https_srv, patched, at_log):
    with requests.get(https_srv.url + "/", verify=https_srv.ca.ca_pem_path, timeout=10) as r:
        assert r.status_code == 200
        assert r.content == b"hello from the test server\n"
    assert at_log.count("CIPSTART") == 1          # it went over the module
    assert at_log.count("CIPDOMAIN") == 0         # localhost: no DNS traffic


def test_keepalive_1mb_download_and_300kb_post(https_srv, patched):
    with requests.Session() as s:
        ca = https_srv.ca.ca_pem_path
        with s.get(https_srv.url + "/bytes/1000000", verify=ca, timeout=30) as r:
            assert r.status_code == 200 and len(r.content) == 1_000_000
            assert hashlib.sha256(r.content).hexdigest() == r.headers["X-SHA256"]
        body = deterministic_bytes(300_000)
        with s.post(https_srv.url + "/upload", data=body, verify=ca, timeout=30) as r:
            assert r.json() == {"length": 300_000, "sha256": sha256(body)}
    assert https_srv.connections == 1             # one reused keep-alive connection


def test_closed_port_raises_connection_error(patched):
    from support.servers import free_port
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{free_port()}/", timeout=10)


def test_read_timeout(https_srv, patched):
    with pytest.raises(requests.ReadTimeout):
        requests.get(https_srv.url + "/slow/3", verify=https_srv.ca.ca_pem_path, timeout=(5, 0.5))


def test_wrong_ca_is_ssl_error(https_srv, patched):
    import trustme
    other = trustme.CA()
    with other.cert_pem.tempfile() as wrong:
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(https_srv.url + "/", verify=wrong, timeout=10)
    # and the system store does not know the test CA either
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(https_srv.url + "/", timeout=10)
