"""asyncio and trio over the module: patched, and trio through wizsock.trio without a patch."""
import asyncio
import socket

import pytest
import trio

import wizsock
import wizsock.trio
from facade.helpers import BAUD

REQUEST = b"GET /bytes/30000 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def _body(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:100]
    return body


async def _asyncio_fetch(host, port, ssl_ctx=None):
    reader, writer = await asyncio.open_connection(host, port, ssl=ssl_ctx,
                                                   server_hostname="localhost" if ssl_ctx else None)
    writer.write(REQUEST)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 20)
    peer = writer.get_extra_info("peername")
    writer.close()
    await writer.wait_closed()
    return raw, peer


def test_asyncio_open_connection_plain(http_srv, patched, at_log):
    raw, peer = asyncio.run(_asyncio_fetch("127.0.0.1", http_srv.port))
    assert len(_body(raw)) == 30000
    assert peer == ("127.0.0.1", http_srv.port)
    assert at_log.count("CIPSTART") == 1


def test_asyncio_open_connection_tls(https_srv, patched, at_log):
    raw, _ = asyncio.run(_asyncio_fetch("localhost", https_srv.port, https_srv.ca.client_context()))
    assert len(_body(raw)) == 30000
    assert at_log.count("CIPSTART") == 1


def test_asyncio_sock_connect(http_srv, patched, at_log):
    async def main():
        loop = asyncio.get_running_loop()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        await loop.sock_connect(s, ("127.0.0.1", http_srv.port))
        await loop.sock_sendall(s, REQUEST)
        raw = b""
        while True:
            chunk = await loop.sock_recv(s, 65536)
            if not chunk:
                break
            raw += chunk
        s.close()
        return raw

    assert len(_body(asyncio.run(main()))) == 30000
    assert at_log.count("CIPSTART") == 1


def test_asyncio_sock_connect_refused(patched):
    from support.servers import free_port

    async def main():
        loop = asyncio.get_running_loop()
        with socket.socket() as s:
            s.setblocking(False)
            await loop.sock_connect(s, ("127.0.0.1", free_port()))

    with pytest.raises(ConnectionRefusedError):
        asyncio.run(main())


async def _trio_fetch(port, tls_ctx=None):
    if tls_ctx is None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    else:
        stream = await trio.open_ssl_over_tcp_stream("localhost", port, ssl_context=tls_ctx,
                                                         https_compatible=True)
    async with stream:
        await stream.send_all(REQUEST)
        raw = b""
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            raw += chunk
    return raw


def test_trio_patched_plain_and_tls(http_srv, https_srv, patched, at_log):
    assert len(_body(trio.run(_trio_fetch, http_srv.port))) == 30000
    assert len(_body(trio.run(_trio_fetch, https_srv.port, https_srv.ca.client_context()))) == 30000
    assert at_log.count("CIPSTART") == 2


async def _trio_exchanges(module, http_port, https_port, ca):
    """Through wizsock.trio: plain, TLS, and a name the module resolves."""
    wizsock.trio.install(module)
    plain = await _trio_fetch(http_port)
    tls = await _trio_fetch(https_port, ca.client_context())
    # names resolve through the module (the emulator's world knows this one)
    stream = await trio.open_tcp_stream("lab.wizsock.test", http_port)
    await stream.aclose()
    assert len(_body(plain)) == 30000 and len(_body(tls)) == 30000


def test_trio_via_wizsock_trio_without_patch(http_srv, https_srv, module, at_log):
    assert not wizsock.patch.is_patched()
    trio.run(_trio_exchanges, module, http_srv.port, https_srv.port, https_srv.ca)
    assert at_log.count("CIPSTART") == 3
    assert at_log.count("CIPDOMAIN") == 1


@pytest.mark.wizfi360(baud=BAUD)
def test_wizsock_trio_with_open_module_on_the_same_loop(http_srv, https_srv, at_log, wizfi360_url):
    from wizsock.patch import EMULATOR_AP

    async def main():
        async with wizsock.open_module(wizfi360_url, baudrate=BAUD) as m:
            await m.wifi.set_mode(1)
            await m.wifi.join(*EMULATOR_AP)
            await _trio_exchanges(m, http_srv.port, https_srv.port, https_srv.ca)

    trio.run(main)
    assert at_log.count("CIPSTART") == 3


@pytest.mark.wizfi360(baud=BAUD)
def test_link_limit_through_wizsock_trio_is_no_group(wizfi360_url, monkeypatch):
    """All five links busy (each awaiting a reply from a server that never answers) and
    idle reclaim on: the sixth connect, waiting beside the reclaimer in a nursery, fails
    with LinkLimitError itself (an OSError, EBUSY), not an exception group around it."""
    import errno as _errno

    from wizsock.facade import reclaim as _reclaim
    from wizsock import errors as E
    from wizsock import socket as wsocket
    from wizsock.facade import opening
    from wizsock.patch import EMULATOR_AP

    monkeypatch.setattr(_reclaim, "RECLAIM_IDLE", True)
    monkeypatch.setattr(opening, "LINK_WAIT", 0.5)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)            # connections complete in the backlog; nothing ever answers
    address = silent.getsockname()

    async def main():
        async with wizsock.open_module(wizfi360_url, baudrate=BAUD) as m:
            await m.wifi.set_mode(1)
            await m.wifi.join(*EMULATOR_AP)
            wizsock.trio.install(m)
            held = []
            try:
                for _ in range(5):
                    s = trio.socket.socket()
                    await s.connect(address)
                    await s.send(b"?")          # awaiting a reply: not idle
                    held.append(s)
                sixth = trio.socket.socket()
                with pytest.raises(OSError) as ei:
                    await sixth.connect(address)
                sixth.close()
                assert isinstance(ei.value, E.LinkLimitError), repr(ei.value)
                assert ei.value.errno == _errno.EBUSY
            finally:
                for s in held:
                    s.close()
                wizsock.trio.uninstall()

    try:
        trio.run(main)
    finally:
        silent.close()
