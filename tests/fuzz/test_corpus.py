"""The committed fuzz corpus (fuzz/corpus/<harness>/), replayed with plain pytest.

Each file is one input of a harness in fuzz/ (the same checks the sanitizer
fuzzing runs, docs/fuzzing.md), here without atheris and without the sanitizer
build: a regression of anything the fuzzer once reached fails the normal
suite.  The framer corpus runs twice: the compiled framer against the twin,
and the twin against itself (bounds and split checks), so both twins replay it.
"""
import importlib.util
import pathlib
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from framer.conftest import COMPILED_MODULE, PURE_MODULE, compiled_module

ROOT = pathlib.Path(__file__).resolve().parents[2]
FUZZ = ROOT / "fuzz"
HARNESSES = ("framer", "codec", "emulator")


def _load(name):
    if str(FUZZ) not in sys.path:
        sys.path.insert(0, str(FUZZ))
    path = FUZZ / (f"{name}_fuzz.py" if name in HARNESSES else f"{name}.py")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _corpus(name):
    return sorted((FUZZ / "corpus" / name).iterdir())


@pytest.fixture(scope="module")
def harness(request):
    return _load(request.param)


def test_the_corpus_is_there_and_small():
    total = 0
    for name in HARNESSES:
        files = _corpus(name)
        floor = 20 if name == "emulator" else 100
        assert floor <= len(files) <= 1000, (name, len(files))
        total += sum(p.stat().st_size for p in files)
    assert total < 2 * 1024 * 1024


@pytest.mark.parametrize("twins", ["compiled-vs-pure", "pure-vs-pure"])
def test_framer_corpus(twins):
    framer = _load("framer")
    compiled = compiled_module() if twins == "compiled-vs-pure" else PURE_MODULE
    for path in _corpus("framer"):
        framer.run(path.read_bytes(), compiled, PURE_MODULE)


def test_codec_corpus():
    codec = _load("codec")
    for path in _corpus("codec"):
        codec.run(path.read_bytes())


def test_emulator_corpus():
    emulator = _load("emulator")
    try:
        for path in _corpus("emulator"):
            emulator.run(path.read_bytes())
    finally:
        emulator.close()


def test_the_harness_checks_what_issue_8_broke():
    # "+" / "IPD" / a long line with max_line 2: before the fix the twin returned
    # a line longer than max_line (the harness's bounds check) and the compiled
    # framer overran its buffer (the sanitizer build, scripts/fuzz).
    framer = _load("framer")
    seeds = _load("seeds")
    assert seeds.ISSUE_8.endswith(b"A" * 253 + b"\n")
    framer.run(seeds.ISSUE_8, compiled_module(), PURE_MODULE)
    with pytest.raises(AssertionError):
        framer.check_bounds([PURE_MODULE.Garbage(b"+IPDAAA", "line too long")], 2, 8192, 48, 1)
    with pytest.raises(AssertionError):
        framer.check_bounds([PURE_MODULE.Data(0, b"xyz", None)], 2, 2, 48, 1)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_framer_harness_on_random_inputs(data):
    framer = _load_cached("framer")
    framer.run(data, compiled_module() if COMPILED_MODULE else PURE_MODULE, PURE_MODULE)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_codec_harness_on_random_inputs(data):
    _load_cached("codec").run(data)


_cache = {}


def _load_cached(name):
    if name not in _cache:
        _cache[name] = _load(name)
    return _cache[name]
