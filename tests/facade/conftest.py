"""Fixtures for the facade tests: an emulated module (fast UART) and a patch around it.

Servers come from tests/support (real peers on loopback).  Tests start their
servers before patching (`with wizsock.patched(module):` in the test body, or the
`patched` fixture listed after the server fixtures): a server created while
patched is a kernel socket of this process, and connections to it would stay on
the kernel (paho's wake-up pair rule), which would prove nothing.
"""
import logging

import pytest

import wizsock
from support.fixtures import *  # noqa: F401,F403

from facade.helpers import ATLog, open_module, wait_links_free


@pytest.fixture(scope="module")
def module():
    # one emulated module per test file (opening is quick, closing is not); every test
    # closes what it opened, and `patched` checks that no link is left behind
    m = open_module()
    try:
        yield m
    finally:
        m.close()


@pytest.fixture
def patched(module):
    with wizsock.patched(module):
        yield module
    left = wait_links_free(module, 3.0)
    if left:
        # keep the next test's slate clean, and say so
        import warnings
        warnings.warn(f"links left open after the test: {left}")
        for link in left.values():
            try:
                module.run(link.aclose)
            except Exception:
                pass


@pytest.fixture
def at_log():
    logger = logging.getLogger("wizsock.engine.at")
    handler = ATLog()
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
