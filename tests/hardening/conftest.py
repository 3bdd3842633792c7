"""Fixtures of the hardening tests: one emulated module (with its command record)
per test file; see helpers.py for the hostile inputs."""
from __future__ import annotations

from typing import Iterator

import pytest

import wizsock
from wizsock import _orig
from wizsock.emulator import Emulator

from hardening.helpers import AP, BAUD, Wire


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    e = Emulator(baudrate=BAUD, log_traffic=True, boot_delay=0.05)
    e.start()
    try:
        yield e
    finally:
        e.stop()


@pytest.fixture(scope="module")
def module(emu):
    with _orig.internal():
        m = wizsock.Module(emu.url, baudrate=BAUD)
    try:
        m.wifi.set_mode(1)
        m.wifi.join(*AP)
        yield m
    finally:
        m.close()


@pytest.fixture
def wire(emu) -> Wire:
    return Wire(emu)


