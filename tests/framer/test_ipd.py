"""+IPD: every header form, payloads counted by length, split anywhere."""
import pytest

from wizsock.framer import astuple

# Every sequence that would end or start something if the payload were read as lines.
SPECIAL = [b"\r\n", b"\n", b"\r", b"OK\r\n", b"\r\nOK\r\n", b"+IPD,0,5:", b"+IPD,", b"> ",
           b">", b"\x00", b"\x00\x00\r\n", b"ERROR\r\n", b"0,CLOSED\r\n", b"\xff\xfe", b":", b","]


@pytest.mark.parametrize("header,link,remote", [
    (b"+IPD,%d:", 0, None),
    (b"+IPD,3,%d:", 3, None),
    (b'+IPD,%d,"192.168.0.10",50000:', 0, ("192.168.0.10", 50000)),
    (b"+IPD,%d,192.168.0.10,50000:", 0, ("192.168.0.10", 50000)),
    (b'+IPD,1,%d,"10.0.0.1",80:', 1, ("10.0.0.1", 80)),
    (b"+IPD,4,%d,10.0.0.1,0:", 4, ("10.0.0.1", 0)),
], ids=["single", "mux", "single-info-quoted", "single-info-bare", "mux-info-quoted", "mux-info-bare"])
@pytest.mark.parametrize("payload", SPECIAL + [b"".join(SPECIAL), bytes(range(256))],
                         ids=lambda p: repr(p)[:30])
def test_payload_is_byte_exact_under_every_split(impl, run, header, link, remote, payload):
    frame = header % len(payload)
    stream = frame + payload + b"\r\nOK\r\n"
    expected = [("Data", link, payload, remote), ("Result", "OK")]
    assert run(impl, stream) == expected
    assert run(impl, stream, [1]) == expected
    for cut in range(1, len(stream)):
        f = impl.Framer()
        got = [astuple(e) for e in f.feed(stream[:cut]) + f.feed(stream[cut:])]
        assert got == expected, cut


def test_spec_examples(impl, run):
    assert run(impl, b"+IPD,5:12345") == [("Data", 0, b"12345", None)]
    assert run(impl, b'+IPD,1,5,"192.168.0.10",50000:12345') == [
        ("Data", 1, b"12345", ("192.168.0.10", 50000))]


def test_payload_is_bytes_and_whole_frame_waits_for_its_last_byte(impl):
    f = impl.Framer()
    assert f.feed(b"+IPD,0,4:ab") == []
    assert f.feed(b"c") == []
    (ev,) = f.feed(b"d")
    assert type(ev.payload) is bytes and ev.payload == b"abcd" and ev.link == 0 and ev.remote is None


def test_urc_glued_to_payload(impl, run):
    # Firmware prints the next message right after the payload, without CR LF.
    stream = b"+IPD,0,3:abc0,CLOSED\r\n+IPD,1,2:xy+IPD,1,1:zOK\r\n+IPD,2,1:q>"
    assert run(impl, stream) == [
        ("Data", 0, b"abc", None), ("LinkEvent", 0, "CLOSED"),
        ("Data", 1, b"xy", None), ("Data", 1, b"z", None), ("Result", "OK"),
        ("Data", 2, b"q", None), ("Prompt",)]


def test_zero_length_payload(impl, run):
    assert run(impl, b"+IPD,0,0:OK\r\n") == [("Data", 0, b"", None), ("Result", "OK")]


def test_max_ipd_is_the_largest_accepted_length(impl, run):
    ok = b"+IPD,0,16:" + b"x" * 16 + b"\r\n"
    assert run(impl, ok, max_ipd=16) == [("Data", 0, b"x" * 16, None)]
    big = b"+IPD,0,17:" + b"x" * 17 + b"\r\nOK\r\n"
    # Too long to trust: garbage, and the framer resynchronises at the next LF.
    assert run(impl, big, max_ipd=16) == [
        ("Garbage", b"+IPD,0,17:", "+IPD length > max_ipd"), ("Result", "OK")]


def test_remote_is_a_fresh_match_per_frame(impl, run):
    # The compiled framer caches the (ip, port) tuple per link; it must never
    # hand out a stale one.
    stream = (b'+IPD,0,1,"1.1.1.1",1:a+IPD,0,1,"1.1.1.1",2:b+IPD,0,1,1.1.1.1,2:c'
              b'+IPD,8,1,"2.2.2.2",1:d+IPD,0,1,"1.1.1.1",2:e+IPD,0,1:f')
    assert [e[3] for e in run(impl, stream)] == [
        ("1.1.1.1", 1), ("1.1.1.1", 2), ("1.1.1.1", 2), ("2.2.2.2", 1), ("1.1.1.1", 2), None]


@pytest.mark.parametrize("header", [
    b"+IPD,:", b"+IPD,x:", b"+IPD,-1:", b"+IPD,1,2,3,4,5:", b"+IPD,,5:", b"+IPD,1,:",
    b"+IPD,1234567890:", b"+IPD,1,5,\"1.2.3.4\":", b"+IPD,5,\"1.2.3.4\",:",
    b"+IPD,5,\"1.2.3.4\",65536:", b"+IPD,5,\"1.2.3.4,80:", b"+IPD,5,1.2.3.4\",80:",
    b"+IPD,5,\"\",80:", b"+IPD,5,\",80:", b"+IPD,5,host.example,80:", b"+IPD,5,1.2.3.4.5.6.7.89,80:",
    b"+IPD,0,5 :", b"+IPD, 5:", b"+IPD,5\x00:",
])
def test_malformed_header_is_garbage_then_resync(impl, run, header):
    stream = header + b"payload\r\nOK\r\n"
    expected = [("Garbage", header, "bad +IPD header"), ("Result", "OK")]
    assert run(impl, stream) == expected
    assert run(impl, stream, [1]) == expected


def test_header_cut_by_lf_is_garbage_and_the_next_line_is_kept(impl, run):
    assert run(impl, b"+IPD,0,5\r\nOK\r\n") == [
        ("Garbage", b"+IPD,0,5", "bad +IPD header"), ("Result", "OK")]


def test_header_without_colon_is_bounded(impl, run):
    header = b"+IPD," + b"1" * 100
    got = run(impl, header + b"\r\nOK\r\n")
    assert got == [("Garbage", (b"+IPD," + b"1" * impl.IPD_HEADER_MAX), "+IPD header too long"),
                   ("Result", "OK")]
    assert run(impl, header + b"\r\nOK\r\n", [1]) == got


def test_longest_wellformed_header_fits(impl, run):
    header = b'+IPD,123456789,8,"255.255.255.255",000065535:'
    assert len(header) - 6 <= impl.IPD_HEADER_MAX
    assert run(impl, header + b"12345678", [3]) == [
        ("Data", 123456789, b"12345678", ("255.255.255.255", 65535))]
