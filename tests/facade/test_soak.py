"""Many short connections leak nothing; concurrent requests from a thread pool."""
import concurrent.futures
import gc
import socket
import time

import requests

from facade.helpers import open_fds, thread_names, wait_links_free

CYCLES = 1000


def _raw_get(address):
    """connect, one keep-alive request, read exactly the response, close (client first)."""
    s = socket.create_connection(address, timeout=10)
    try:
        s.sendall(b"GET /bytes/64 HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 64:
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
    finally:
        s.close()
    assert data.startswith(b"HTTP/1.1 200")
    return data


def test_thousand_sequential_cycles_leak_nothing(http_srv, patched):
    address = ("127.0.0.1", http_srv.port)
    _raw_get(address)                         # warm up (lazy imports, first allocations)
    wait_links_free(patched)                  # the warm-up link is released asynchronously
    fds, threads = open_fds(), thread_names()
    links_before = dict(patched.aio.net.links)
    t0 = time.monotonic()
    for _ in range(CYCLES):
        _raw_get(address)
    elapsed = time.monotonic() - t0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (open_fds() > fds or set(patched.aio.net.links) - set(links_before)):
        gc.collect()
        time.sleep(0.05)
    assert open_fds() <= fds
    assert thread_names() == threads
    assert set(patched.aio.net.links) <= set(links_before)
    assert http_srv.connections >= CYCLES + 1
    print(f"{CYCLES} connect/request/close cycles in {elapsed:.1f} s")


def test_five_concurrent_requests(https_srv, patched):
    ca = https_srv.ca.ca_pem_path

    def fetch(i):
        with requests.get(f"{https_srv.url}/bytes/{20000 + i}", verify=ca, timeout=30) as r:
            r.raise_for_status()
            return len(r.content)

    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        sizes = list(pool.map(fetch, range(5)))
    assert sizes == [20000 + i for i in range(5)]
