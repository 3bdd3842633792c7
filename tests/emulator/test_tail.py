"""The emulator's bounded records (`wizsock.emulator.tail.Tail`): transcript and
command lines keep their newest entries within a byte budget, indexed as the whole
record, and say so when asked for what they let go (issue 21)."""
import pytest

from wizsock.emulator import core
from wizsock.emulator.tail import Tail


def test_keeps_the_newest_entries_within_its_budget():
    t = Tail(10, len)
    for i in range(100):
        t.append(b"%03d" % i)
    assert t.kept() == [b"097", b"098", b"099"]     # 9 bytes; a fourth would pass 10
    assert len(t) == 100 and t.dropped == 97
    assert list(t) == t.kept()


def test_a_mark_names_the_same_entry_later():
    t = Tail(100, len)
    for i in range(30):
        t.append(b"a%d" % i)
    mark = len(t)
    for i in range(3):
        t.append(b"b%d" % i)
    assert t[mark:] == [b"b0", b"b1", b"b2"]
    assert t[-1] == b"b2" and t[mark] == b"b0"
    for i in range(100):
        t.append(b"c%d" % i)
    with pytest.raises(LookupError):
        t[mark:]               # let go: an error, not a shorter answer
    with pytest.raises(LookupError):
        t[mark]
    with pytest.raises(IndexError):
        t[len(t)]


def test_an_entry_larger_than_the_budget_is_kept_alone():
    t = Tail(4, len)
    t.append(b"x" * 10)
    assert t.kept() == [b"x" * 10]
    t.append(b"y")
    assert t.kept() == [b"y"]


def test_clear_starts_the_record_again():
    t = Tail(10, len)
    for i in range(20):
        t.append(b"%02d" % i)
    t.clear()
    assert len(t) == 0 and list(t) == [] and t[0:] == []
    t.append(b"z")
    assert t[0] == b"z"


def test_the_emulator_records_are_bounded():
    emu = core.Emulator(log_traffic=True)
    assert emu.events.maxlen == core.EVENT_TAIL
    assert emu.transcript.budget == core.TRANSCRIPT_BYTES
    assert emu.command_lines.budget == core.COMMAND_LINES_BYTES
    for _ in range(core.TRANSCRIPT_BYTES // 1000 + 100):
        emu.transcript.append((">>", b"x" * 1000))
    assert sum(len(d) for _, d in emu.transcript) <= core.TRANSCRIPT_BYTES
