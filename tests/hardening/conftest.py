"""Fixtures of the hardening tests: one emulated module (with its command record)
per test file; see helpers.py for the hostile inputs."""
from __future__ import annotations

from typing import Iterator

import pytest

from wizsock.emulator import Emulator

from hardening.helpers import AP, Wire, blocking_module, emulated


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with emulated() as e:
        yield e


@pytest.fixture(scope="module")
def module(emu):
    with blocking_module(emu) as m:
        m.wifi.set_mode(1)
        m.wifi.join(*AP)
        yield m


@pytest.fixture
def wire(emu) -> Wire:
    return Wire(emu)
