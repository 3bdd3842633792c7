"""Shared helpers of the engine tests: the emulator URL and a trio runner."""
from __future__ import annotations

import functools
import hashlib

import trio

from wizsock.engine import open_module

BAUD = 2000000
AP = ("wizsock-lab", "wizsock123")


def emu_url(baud=BAUD, **opts):
    # input pacing (the emulator's default) off: these tests do not measure the UART
    q = "&".join(f"{k}={v}" for k, v in {"baud": baud, "pace_input": 0, **opts}.items() if v is not None)
    return f"wizemu://?{q}"


def trio_test(fn):
    """Run an async test function with trio (no pytest-trio here)."""
    @functools.wraps(fn)
    def wrapper(*args, **kw):
        return trio.run(functools.partial(fn, *args, **kw))
    return wrapper


async def joined(m):
    await m.wifi.set_mode(1)
    await m.wifi.join(*AP)
    return m


def module(url=None, baud=BAUD, **options):
    return open_module(url or emu_url(baud), baudrate=baud, **options)


async def read_all(link, limit=1 << 30):
    buf = bytearray()
    while len(buf) < limit:
        d = await link.receive(65536)
        if not d:
            break
        buf += d
    return bytes(buf)


def sha(data) -> str:
    return hashlib.sha256(data).hexdigest()
