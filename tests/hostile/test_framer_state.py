"""The framer state the engine's recovery reads (ipd_pending, mid_line): both twins
agree at every split of a stream that has every kind of unit boundary."""
from __future__ import annotations

import random

import pytest

from wizsock import _framer_py
from wizsock.framer import COMPILED, Framer

from conftest import require

STREAM = (b"\r\nOK\r\n+IPD,3,10:0123456789\r\n4,CLOSED\r\n+IPD,1,5,\"10.0.0.1\",80:ab\r\ncd"
          b"> \r\n+IPD,0,3:xyz1,SEND OK\r\n\x01\x02junk\r\n+IPD,2,4:ab")


def _states(framer_cls, cuts):
    f = framer_cls()
    out = []
    pos = 0
    for cut in cuts + [len(STREAM)]:
        f.feed(STREAM[pos:cut])
        pos = cut
        out.append((f.ipd_pending, f.mid_line))
    return out


@pytest.mark.parametrize("seed", range(30))
def test_twins_agree_on_recovery_state(seed):
    require(COMPILED, "the compiled framer")
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(STREAM)), rng.randrange(1, 12)))
    assert _states(Framer, cuts) == _states(_framer_py.Framer, cuts)


def test_recovery_state_values():
    for cls in {Framer, _framer_py.Framer}:
        f = cls()
        f.feed(b"+IPD,3,10:0123")
        assert f.ipd_pending == (3, 6) and not f.mid_line
        f.feed(b"456789" + b"4,CLO")
        assert f.ipd_pending is None and f.mid_line
        f.feed(b"SED\r\n")
        assert not f.mid_line
        f.feed(b"+IPD,1")          # a header is not a line
        assert not f.mid_line and f.ipd_pending is None
        f.reset()
        assert f.ipd_pending is None and not f.mid_line
