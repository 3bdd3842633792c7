"""Framer throughput: three module-to-host streams x three feed sizes x both framers.

    python -m pytest bench/bench_framer.py --benchmark-only

The summary table (MB/s, events/s, compiled/pure ratio, all from this one run)
is printed at the end by bench/conftest.py and copied into docs/benchmarks.md.
"""
import random

import pytest

from wizsock import _framer_py

try:
    from wizsock import _framer
except ImportError:  # pragma: no cover - reported as a failure below, never skipped
    _framer = None

STREAM_BYTES = 1 << 20
FEED_SIZES = (256, 4096, 65536)


def stream_bulk(total=STREAM_BYTES, seed=1):
    """(a) a bulk download: back-to-back `+IPD,0,2048:` frames of binary payload."""
    rng = random.Random(seed)
    payload = rng.randbytes(2048)
    frame = b"+IPD,0,2048:" + payload
    return frame * (total // len(frame))


def stream_mixed(total=STREAM_BYTES, seed=2):
    """(b) small +IPD frames (1-300 bytes, five links, half with CIPDINFO)
    interleaved with send cycles, link URCs and command responses."""
    rng = random.Random(seed)
    parts = []
    size = 0
    while size < total:
        r = rng.random()
        if r < 0.5:
            link = rng.randrange(5)
            n = rng.randint(1, 300)
            if rng.random() < 0.5:
                head = b'+IPD,%d,%d,"192.168.10.%d",%d:' % (link, n, 20 + link, 40000 + link)
            else:
                head = b"+IPD,%d,%d:" % (link, n)
            part = b"\r\n" + head + rng.randbytes(n)
        elif r < 0.75:
            n = rng.randint(1, 2048)
            part = b"\r\nOK\r\n> \r\nRecv %d bytes\r\n\r\nSEND OK\r\n" % n
        elif r < 0.85:
            link = rng.randrange(5)
            part = b"%d,CONNECT\r\n" % link if rng.random() < 0.5 else b"%d,CLOSED\r\n" % link
        else:
            part = (b'STATUS:3\r\n+CIPSTATUS:%d,"TCP","192.168.10.20",80,%d,0\r\n\r\nOK\r\n'
                    % (rng.randrange(5), rng.randint(1024, 65535)))
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def stream_commands(total=STREAM_BYTES, seed=3):
    """(c) command traffic only: results, information lines, text and URCs, no data."""
    rng = random.Random(seed)
    n = rng.randrange
    replies = [
        lambda: b"".join(b'+CWLAP:(3,"office-%d",-%d,"00:08:dc:11:22:%02x",%d)\r\n'
                         % (n(99), n(30, 90), n(256), n(1, 14)) for _ in range(4)),
        lambda: b'+CIFSR:STAIP,"192.168.10.%d"\r\n+CIFSR:STAMAC,"00:08:dc:00:00:%02x"\r\n'
                % (n(2, 255), n(256)),
        lambda: b"AT version:1.1.1.%d(Jul 18 2022 16:20:00)\r\nSDK version:3.%d\r\n" % (n(10), n(10)),
        lambda: b'+CIPSTA_CUR:ip:"192.168.10.%d"\r\n+CIPSTA_CUR:gateway:"192.168.10.1"\r\n' % n(2, 255),
        lambda: b"WIFI CONNECTED\r\nWIFI GOT IP\r\n",
        lambda: b"busy p...\r\n",
    ]
    finals = [b"\r\nOK\r\n", b"\r\nOK\r\n", b"\r\nOK\r\n", b"\r\nERROR\r\n", b"\r\nSEND OK\r\n"]
    parts = []
    size = 0
    while size < total:
        part = rng.choice(replies)() + rng.choice(finals)
        parts.append(part)
        size += len(part)
    return b"".join(parts)


STREAMS = {"a_bulk": stream_bulk, "b_mixed": stream_mixed, "c_commands": stream_commands}
IMPLS = {"compiled": _framer, "pure": _framer_py}
_cache = {}


def chunks(stream, feed):
    key = (stream, feed)
    if key not in _cache:
        data = STREAMS[stream]()
        _cache[key] = [data[i:i + feed] for i in range(0, len(data), feed)]
    return _cache[key]


def run(module, pieces):
    framer = module.Framer()
    n = 0
    for piece in pieces:
        n += len(framer.feed(piece))
    return n


@pytest.mark.parametrize("feed", FEED_SIZES, ids=lambda f: f"{f}B")
@pytest.mark.parametrize("stream", sorted(STREAMS))
@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_framer_throughput(benchmark, impl, stream, feed):
    module = IMPLS[impl]
    if module is None:
        pytest.fail("compiled framer not built: python setup.py build_ext --inplace")
    pieces = chunks(stream, feed)
    nbytes = sum(map(len, pieces))
    events = benchmark(run, module, pieces)
    # The streams are well-formed: a Garbage event would mean we timed the resync path.
    framer = module.Framer()
    kinds = {type(ev).__name__ for piece in pieces for ev in framer.feed(piece)}
    assert events > 0 and "Garbage" not in kinds, kinds
    benchmark.extra_info.update(impl=impl, stream=stream, feed=feed, bytes=nbytes, events=events)
