"""pytest fixtures over `support.servers` (real servers on loopback).

Use in a test module or conftest::

    from support.fixtures import *  # noqa: F401,F403

or ``pytest_plugins = ["support.fixtures"]`` in the top-level tests/conftest.py.

Fixtures (function scope unless noted):
  ca             session: a TestCA (trustme)                  -> support.servers.TestCA
  mosquitto      plain mosquitto broker                       -> Broker (.host, .port)
  mosquitto_tls  mosquitto with a plain and a TLS listener    -> Broker (.port, .tls_port, .ca is `ca`)
  mosquitto_mtls TLS listener that requires a client cert    -> Broker (.tls_port, .ca is `ca`)
  https_srv      HTTPS server with the default handler        -> HTTPServerInfo (.url, .port, .ca)
  http_srv       plain HTTP server with the default handler   -> HTTPServerInfo
  dns            UDP DNS server; records from the `dns_records` fixture (override it;
                 default {"test.local": "127.0.0.1", "example.test": "127.0.0.2"})
  tcp_echo       TCP echo server                              -> TCPServerInfo (.address)
  sink           TCP sink recording (n, sha256)               -> Sink
  sntp           SNTP responder (host clock)                  -> SNTPServerInfo (.address "127.0.0.1:PORT")
"""
import pytest

from support import servers

__all__ = ["ca", "mosquitto", "mosquitto_tls", "mosquitto_mtls", "https_srv", "http_srv",
           "dns_records", "dns", "tcp_echo", "sink", "sntp"]


@pytest.fixture(scope="session")
def ca():
    with servers.test_ca() as c:
        yield c


@pytest.fixture
def mosquitto():
    with servers.mosquitto_broker() as b:
        yield b


@pytest.fixture
def mosquitto_tls(ca):
    with servers.mosquitto_broker(tls=True, ca=ca) as b:
        yield b


@pytest.fixture
def mosquitto_mtls(ca):
    with servers.mosquitto_broker(tls=True, ca=ca, require_certificate=True) as b:
        yield b


@pytest.fixture
def https_srv(ca):
    with servers.https_server(ca) as s:
        yield s


@pytest.fixture
def http_srv():
    with servers.http_server() as s:
        yield s


@pytest.fixture
def dns_records():
    return {"test.local": "127.0.0.1", "example.test": "127.0.0.2"}


@pytest.fixture
def dns(dns_records):
    with servers.udp_dns_server(dns_records) as s:
        yield s


@pytest.fixture
def tcp_echo():
    with servers.tcp_echo_server() as s:
        yield s


@pytest.fixture
def sink():
    with servers.tcp_sink() as s:
        yield s


@pytest.fixture
def sntp():
    with servers.sntp_server() as s:
        yield s
