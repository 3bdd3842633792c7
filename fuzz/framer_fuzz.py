#!/usr/bin/env python3
"""Differential fuzz harness: the compiled framer against its pure-Python twin.

One input is a script of operations decoded by fuzz/_reader.py: the two
constructor parameters (tiny ones included), then feeds of chunks (bytes,
bytearray, memoryview slices, buffers mutated or resized after the call,
2-D and non-byte formats, non-contiguous views), ``raw`` and
``raw_on_prompt`` toggles and ``reset()`` at any point.  After every
operation both framers must agree: the same events (``astuple``) or the same
exception type, the same ``raw``/``raw_on_prompt``.  Every event must keep the
bounds (no line longer than ``max_line``, no ``+IPD`` payload longer than
``max_ipd``), and between frame boundaries (start, ``reset()``, ``raw``
toggles) the events of the separate feeds must be the events of their
concatenation fed at once.

Run under the sanitizer build with scripts/fuzz; tests/fuzz/ replays the
corpus (fuzz/corpus/framer/) with plain pytest.
"""
from __future__ import annotations

import array
import sys
from types import ModuleType
from typing import Any, Callable, List, Tuple

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from _reader import Reader  # type: ignore[no-redef]
else:
    from ._reader import Reader

MAX_LINES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 47, 48, 49, 50, 64, 4096)
MAX_IPDS = (1, 2, 3, 4, 5, 8, 16, 100, 8192)
BAD_LIMITS = (0, -1, -(1 << 63), (1 << 30) + 1, 1 << 63, 1 << 64, 1.5, "8", None)

Outcome = Tuple[Any, ...]


def _chunk_maker(kind: int, chunk: bytes) -> Tuple[Any, Callable[[], None]]:
    """A bytes-like object holding chunk, and what to do to it after feed()."""
    if kind == 0:
        return chunk, lambda: None
    if kind == 1:  # the caller reuses its buffer at once
        buf = bytearray(chunk)

        def scribble() -> None:
            buf[:] = b"\xaa" * len(buf)
            buf.extend(b"+IPD,1:x\r\n")
        return buf, scribble
    if kind == 2:  # a slice inside a larger object
        return memoryview(b"\xff+IPD," + chunk + b"\n\xff")[6:-2], lambda: None
    if kind == 3:  # a view on a bytearray, released and the bytearray resized after feed()
        ba = bytearray(chunk)
        mv = memoryview(ba)

        def resize() -> None:
            mv.release()
            ba[:] = b"\x00" * 3
            del ba[:]
        return mv, resize
    if kind == 4:
        return array.array("B", chunk), lambda: None
    if kind == 5 and len(chunk) % 2 == 0 and chunk:  # 2-D, C-contiguous
        return memoryview(chunk).cast("B", (2, len(chunk) // 2)), lambda: None
    if kind == 6 and len(chunk) % 2 == 0 and chunk:  # items wider than a byte
        return memoryview(chunk).cast("H"), lambda: None
    if kind == 7 and chunk:  # not contiguous: both refuse it (BufferError)
        spread = bytearray(2 * len(chunk))
        spread[::2] = chunk
        return memoryview(spread)[::2], lambda: None
    return bytes(chunk), lambda: None


def _line_len(ev: Any) -> int:
    """Bytes of the line an event came from, as far as its fields tell."""
    name = type(ev).__name__

    def n(s: str) -> int:
        return len(s.encode("utf-8", "surrogateescape"))
    if name in ("Text", "Echo"):
        return n(ev.text)
    if name == "Info":
        return 1 + n(ev.name) + (1 + n(ev.value) if ev.value is not None else 0)
    if name == "Subscription":
        return n(ev.topic) + 4 + len(ev.data)
    return 0


def check_bounds(events: List[Any], max_line: int, max_ipd: int, header_max: int,
                 raw_from: int) -> None:
    """Events from index raw_from on were produced in raw mode (unbounded Data)."""
    for i, ev in enumerate(events):
        name = type(ev).__name__
        assert _line_len(ev) <= max_line, (ev, max_line)
        if name == "Data":
            assert type(ev.payload) is bytes, ev
            if i < raw_from:
                assert len(ev.payload) <= max_ipd, (ev, max_ipd)
        elif name == "Garbage":
            if ev.reason in ("control bytes", "line too long"):
                assert len(ev.data) <= max_line, (ev, max_line)
            else:
                assert len(ev.data) <= len(b"+IPD,") + header_max + 1, ev


def _feed(framer: Any, obj: Any) -> Outcome:
    try:
        return ("ok", framer.feed(obj))
    except (TypeError, BufferError, ValueError) as exc:
        return ("raised", type(exc).__name__)


def run(data: bytes, compiled: ModuleType, pure: ModuleType) -> None:
    """One fuzz input (the atheris entry point, also used by the replay tests)."""
    from wizsock.framer import astuple

    r = Reader(data)
    first = r.byte()
    if first == 0xFF:  # bad constructor parameters: the same exception from both
        bad = r.pick(BAD_LIMITS)
        kw = {r.pick(("max_line", "max_ipd")): bad}
        outcomes = []
        for m in (compiled, pure):
            try:
                m.Framer(**kw)
                outcomes.append(None)
            except (TypeError, ValueError) as exc:
                outcomes.append(type(exc).__name__)
        assert outcomes[0] == outcomes[1] and outcomes[0] is not None, (kw, outcomes)
        return
    max_line = MAX_LINES[first % len(MAX_LINES)] if first < 0xF0 else 1 + r.u16()
    max_ipd = r.pick(MAX_IPDS) if r.byte() < 0xF0 else 1 + r.u16()
    fc = compiled.Framer(max_ipd=max_ipd, max_line=max_line)
    fp = pure.Framer(max_ipd=max_ipd, max_line=max_line)
    header_max = pure.IPD_HEADER_MAX
    # Since the last frame boundary: the chunks, their events, and whether raw mode
    # played a part (then the split matters: raw Data come one per chunk).
    segment: List[bytes] = []
    seg_events: List[Any] = []
    seg_raw = False

    def close_segment() -> None:
        nonlocal seg_raw
        if segment and not seg_raw:
            # Events of one implementation compare with == (cheaper than astuple).
            whole = compiled.Framer(max_ipd=max_ipd, max_line=max_line).feed(b"".join(segment))
            assert whole == seg_events, segment
        segment.clear()
        seg_events.clear()
        seg_raw = False

    while r:
        op = r.byte()
        kind, code = op >> 5, op & 0x1F
        if code < 24:  # feed (most operations)
            if code == 23:  # a long chunk from a short input: a pattern repeated
                n = 1 + r.u16() % 5000  # past the default max_line of 4096
                pattern = r.take(1 + r.byte() % 8) or b"A"
                chunk = (pattern * (n // len(pattern) + 1))[:n]
            else:
                chunk = r.take(r.size())
            raw_before, rop_before = fc.raw, fc.raw_on_prompt
            oc, after_c = _chunk_maker(kind, chunk)
            op_, after_p = _chunk_maker(kind, chunk)
            got_c, got_p = _feed(fc, oc), _feed(fp, op_)
            after_c()
            after_p()
            if got_c[0] == "ok" and got_p[0] == "ok":
                tc = [astuple(e) for e in got_c[1]]
                assert tc == [astuple(e) for e in got_p[1]], (chunk, tc, got_p[1])
                raw_from = len(got_c[1])
                if raw_before:
                    raw_from = 0
                elif rop_before and fc.raw:
                    raw_from = [type(e).__name__ for e in got_c[1]].index("Prompt") + 1
                check_bounds(got_c[1], max_line, max_ipd, header_max, raw_from)
                if raw_before or rop_before or fc.raw:
                    seg_raw = True
                segment.append(bytes(chunk))
                seg_events.extend(got_c[1])
            else:
                assert got_c == got_p, (chunk, kind, got_c, got_p)
        elif code < 27:
            on = bool(r.byte() & 1)
            close_segment()
            fc.raw = fp.raw = on
        elif code < 30:
            on = bool(r.byte() & 1)
            fc.raw_on_prompt = fp.raw_on_prompt = on
        else:
            close_segment()
            fc.reset()
            fp.reset()
        assert (fc.raw, fc.raw_on_prompt) == (fp.raw, fp.raw_on_prompt)
    close_segment()


def load_compiled() -> ModuleType:
    """The compiled framer: the sanitizer build named by WIZSOCK_FUZZ_FRAMER if set."""
    import importlib.util
    import os

    path = os.environ.get("WIZSOCK_FUZZ_FRAMER")
    if not path:
        import wizsock._framer
        return wizsock._framer
    spec = importlib.util.spec_from_file_location("wizsock._framer", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["wizsock._framer"] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    import atheris

    # Coverage comes from the compiled framer (clang's counters, scripts/fuzz): the
    # twin implements the same grammar branch for branch, and instrumenting its
    # Python bytecode too would cost six times the speed for little more guidance.
    # The sanitizer build must be in sys.modules before wizsock.framer picks one.
    compiled = load_compiled()
    import wizsock._framer_py as pure
    atheris.Setup(sys.argv, lambda data: run(data, compiled, pure))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
