"""The codec's types catch real mistakes: at import (table names vs record fields) and
under a checker (record fields read by callers, the table's build/split lambdas)."""
import os
import textwrap

import pytest

from conftest import require
from wizsock import protocol as p
from wizsock.protocol import records as R
from wizsock.protocol.grammar import Int, Ip, Rest
from wizsock.protocol.shapes import Fields, Flag, Group, Keyed, Repeat

C = p.COMMANDS
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("make", [
    lambda: Fields((Int("next_segment"), Int("acked")), R.BufferStatus),
    lambda: Fields((Int("segment"),), R.SegmentCheck, fixed={"lnk": None}),
    lambda: Keyed((("ip", Ip("ip")), ("gw", Ip("gw"))), R.IpConfig, sep=":"),
    lambda: Group(R.ConnectionStatus, status=Fields((Int("status"),)), link=Fields((Int("link"),))),
    lambda: Flag("wps started", R.WpsState, "start"),
    lambda: Repeat(Fields((Int("stage"),)), R.UpdateProgress, "stage"),
])
def test_a_name_that_is_not_a_record_field_fails_at_construction(make):
    with pytest.raises(TypeError, match="has no field"):
        make()


def test_build_and_split_skip_the_field_check():
    # the record's fields are the lambdas' business (and the checker's, below)
    shape = Fields((Rest("name"),), R.Hostname, build=lambda v: R.Hostname(v["name"]),
                   split=lambda r: {"name": r.hostname})
    assert shape.parse_line("+X:h", {"names": ("X",), "name": "X"}) == R.Hostname("h")


def test_expect_types_the_record_and_refuses_another():
    line = ["1,1,0,2048,0"]
    rec = C["CIPBUFSTATUS"].parse_response("execute", line, expect=R.BufferStatus)
    assert rec == R.BufferStatus(1, 1, 0, 2048, 0) and rec.acked_segment == 0
    assert p.parse_response("CIPBUFSTATUS", "execute", line, expect=R.BufferStatus) == rec
    assert C["CIPBUFSTATUS"].execute().parse_response(line, expect=R.BufferStatus) == rec
    with pytest.raises(p.ResponseError, match="BufferStatus, not a BufferSegment"):
        C["CIPBUFSTATUS"].parse_response("execute", line, expect=R.BufferSegment)
    assert C["CWJAP_CUR"].parse_response("set", [], expect=R.JoinFailure) is None   # no line, no record


def test_mypy_catches_misspelled_record_fields(tmp_path, monkeypatch):
    """links.py once read `acked` of the CIPBUFSTATUS record (field: acked_segment) and
    silently fell back to a hand parser; typed records make that a checker error."""
    try:
        from mypy import api
    except ImportError:
        api = None
    require(api is not None, "mypy (the test extra)")
    monkeypatch.setenv("MYPYPATH", ROOT)   # the editable install's import hook is invisible to mypy
    src = tmp_path / "uses_codec.py"
    src.write_text(textwrap.dedent("""\
        from wizsock import protocol as p
        from wizsock.protocol import records as R
        from wizsock.protocol.grammar import Rest
        from wizsock.protocol.shapes import Fields

        rec = p.COMMANDS["CIPBUFSTATUS"].parse_response("execute", [], expect=R.BufferStatus)
        if rec is not None:
            print(rec.acked_segment, rec.acked)                       # line 8
        untyped = p.COMMANDS["CIPBUFSTATUS"].parse_response("execute", [])
        print(untyped.acked_segment)                                  # line 10: narrow first
        Fields((Rest("hostname"),), R.Hostname, build=lambda v: R.Hostname(v["hostname"]),
               split=lambda r: {"hostname": r.hostnme})              # line 12
        p.format_message(R.StationIp("aa:bb:cc:dd:ee:ff", ip="1.2.3.4", port=1))   # line 13
    """))
    out, err, status = api.run(["--strict", "--no-incremental", "--cache-dir", os.devnull,
                                "--config-file", os.path.join(ROOT, "pyproject.toml"), str(src)])
    lines = [l for l in out.splitlines() if "uses_codec.py" in l and ": error:" in l]
    assert status == 1, out + err
    assert [int(l.split(":")[1]) for l in lines] == [8, 10, 12, 13], out
    assert '"BufferStatus" has no attribute "acked"' in lines[0]
    assert '"object" has no attribute "acked_segment"' in lines[1]
    assert '"Hostname" has no attribute "hostnme"' in lines[2]
    assert 'Unexpected keyword argument "port"' in lines[3]
