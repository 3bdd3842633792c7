"""Every framer test runs against both implementations, imported directly.

A missing compiled module skips the compiled half locally and fails it under
CI (tests/conftest.py `require`), so a broken build can't pass as green.
"""
import importlib

import pytest

from conftest import require  # tests/conftest.py (pythonpath = tests)
from wizsock.framer import astuple


def _load(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


COMPILED_MODULE = _load("wizsock._framer")
PURE_MODULE = importlib.import_module("wizsock._framer_py")


def compiled_module():
    require(COMPILED_MODULE is not None,
            "compiled framer wizsock._framer (python setup.py build_ext --inplace)")
    return COMPILED_MODULE


@pytest.fixture(params=["compiled", "pure"])
def impl(request):
    """The framer module under test: wizsock._framer or wizsock._framer_py."""
    return compiled_module() if request.param == "compiled" else PURE_MODULE


@pytest.fixture
def both():
    """(compiled, pure) for the tests that compare the two."""
    return compiled_module(), PURE_MODULE


def feed(framer, data, sizes=None):
    """Feed data in chunks of the given sizes (cycled; None = one chunk); astuples out."""
    events = []
    if sizes is None:
        events += framer.feed(data)
    else:
        pos = i = 0
        while pos < len(data):
            size = sizes[i % len(sizes)]
            events += framer.feed(data[pos:pos + size])
            pos += size
            i += 1
    return [astuple(ev) for ev in events]


@pytest.fixture
def run():
    """run(module, data, sizes=None, **framer_kwargs) -> list of astuples."""
    def _run(module, data, sizes=None, **kwargs):
        return feed(module.Framer(**kwargs), data, sizes)
    return _run
