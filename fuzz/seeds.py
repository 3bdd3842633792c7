"""Writes the hand-made seed inputs of each harness into fuzz/corpus/<harness>/.

The fuzzer grows the corpus from these; ``scripts/fuzz --merge`` minimises it
back into fuzz/corpus/.  Seeds encode real module output, command lines from
the spec and the tests, and the cases of issue 8 (a held ``+IPD`` prefix longer
than a tiny ``max_line``), in each harness's input format (fuzz/_reader.py).
"""
from __future__ import annotations

import hashlib
import pathlib
import re
import sys
from typing import Iterable, List, Tuple

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wizsock import protocol as P  # noqa: E402

STREAMS = [
    b'OK\r\n+IPD,1,4,"1.2.3.4",5:ab\r\n+IPD,0,2:xy> ',
    b"AT+CIPSEND=0,5\r\n\r\nOK\r\n> hello\r\nRecv 5 bytes\r\n\r\nSEND OK\r\n",
    b"\x00\xfe\x1b ets Jan  8 2013,rst cause:2\r\nready\r\nWIFI CONNECTED\r\nWIFI GOT IP\r\n",
    b"0,CONNECT\r\n1,CLOSED\r\n2,CONNECT FAIL\r\n0,3,SEND OK\r\n4,SEND OK\r\nbusy p...\r\nbusy s...\r\n",
    b'+CWJAP_CUR:"ap","aa:bb:cc:dd:ee:ff",6,-50\r\n\r\nOK\r\ntopic -> data\r\n+IPD,3:abc+IPD,0,1,192.168.1.1,80:z',
    b'+IPD,0,999999999:x\r\n+IPD,,:\r\n+IPD,1,2,"1.2.3.4",65536:ab\r\n' + b"y" * 70 + b"\r\n",
    b'STATUS:3\r\n+CIPSTATUS:0,"TCP","10.0.0.1",80,1234,0\r\nAT version:1.1.1.7\r\nERROR\r\nCLOSE\r\n',
]

# Command lines: the spec's examples and the test suite's literals.
SPEC = pathlib.Path("/work/shared/spec/wizfi360-at-instruction-set-v1.1.1.7.txt")


def _request_lines() -> List[bytes]:
    lines = set()
    texts = [SPEC.read_text(errors="replace")] if SPEC.exists() else []
    texts += [p.read_text(errors="replace") for p in (ROOT / "tests").rglob("*.py")]
    for text in texts:
        for m in re.finditer(r"AT\+[A-Z_0-9]+(?:=\?|\?|=[^\s'\\]*)?", text):
            lines.add(m.group().encode())
    lines.update([b"AT", b"ATE0", b'AT+CWJAP_CUR="ap","s3cret,\\"pw"', b'AT+MQTTSET="u","pw","id",60',
                  b'AT+AZSET="hub","dev","key=="', b'AT+CWSAP_CUR="ap","password",5,3'])
    return sorted(lines)


def _response_lines() -> List[Tuple[str, bytes]]:
    out = []
    texts = [SPEC.read_text(errors="replace")] if SPEC.exists() else []
    for text in texts:
        for m in re.finditer(r"^\s*\+([A-Z_0-9]+)[:=].*$", text, re.M):
            if m.group(1) in sorted(P.COMMANDS):
                out.append((m.group(1), m.group().strip().encode()))
    out += [("MQTTSET", b'+MQTTSET:"user","password","client",60'), ("CIPSTATUS", STREAMS[6]),
            ("CWLAP", b'+CWLAP:(3,"ap",-50,"aa:bb:cc:dd:ee:ff",6)')]
    return out


# Issue 8 finding 3: max_line 2, then "+", "IPD", and a 255-byte line.
ISSUE_8 = bytes([1, 0, 0, 0, 1]) + b"+" + bytes([0, 3]) + b"IPD" + bytes([0, 254]) + b"A" * 253 + b"\n"


def framer_seeds() -> Iterable[bytes]:
    def enc(ml: int, mi: int, chunks: List[Tuple[int, bytes]]) -> bytes:
        out = bytes([ml, 0, mi])  # max_line index; max_ipd: a byte < 0xF0, then its index
        for kind, c in chunks:
            while c:
                part, c = c[:200], c[200:]
                out += bytes([kind << 5, len(part)]) + part
        return out
    for i, s in enumerate(STREAMS):
        yield enc(15, 8, [(0, s)])
        yield enc(i % 9, i % 6, [(i % 8, s[:7]), ((i + 1) % 8, s[7:])])
        yield enc(1, 0, [(0, bytes([b])) for b in s[:40]])
    # raw_on_prompt then reset; raw toggles; issue 8: "+", "IPD", a long line with max_line 1
    yield bytes([15, 0, 8, 28, 1, 0, 9]) + b"OK\r\n> abc" + bytes([0, 3]) + b"def" + bytes([30, 0, 4]) + b"OK\r\n"
    yield bytes([15, 0, 8, 25, 1, 0, 3]) + b"+++" + bytes([25, 0, 0, 4]) + b"OK\r\n"
    yield ISSUE_8
    yield bytes([0xFF, 3, 1])


def codec_seeds() -> Iterable[bytes]:
    names = sorted(P.COMMANDS)
    for line in _request_lines():
        yield bytes([0, 0, 0]) + line
    for name, line in _response_lines():
        forms = sorted(P.COMMANDS[name].forms)
        for i in range(len(forms)):
            yield bytes([1, names.index(name), i, 0]) + line
    yield bytes([2, 0, 1, 1, 1, 7]) + b"1.2.3.4" + bytes([80, 0, 1]) + b"payload\r\n"
    yield bytes([2, 1, 5]) + b"topic" + b"data -> x"
    yield bytes([2, 2]) + b'+STA_CONNECTED:"aa:bb:cc:dd:ee:ff"\r\n+DIST_STA_IP:"aa:bb:cc:dd:ee:ff","192.168.4.2"'
    yield bytes([2, 3]) + b"Smartconfig type:ESPTOUCH\r\nsmart get WiFi info\r\nssid:ap\r\npassword:pw\r\n"
    yield bytes([3, 0]) + b"-----BEGIN CERTIFICATE-----"
    yield bytes([3, names.index("MQTTSET") + 1]) + b'"user","password","client",60'


def emulator_seeds() -> Iterable[bytes]:
    for line in _request_lines():
        yield bytes([0]) + line + b"\r\n"


def write(harness: str, seeds: Iterable[bytes]) -> int:
    d = ROOT / "fuzz" / "corpus" / harness
    d.mkdir(parents=True, exist_ok=True)
    n = 0
    for s in seeds:
        (d / hashlib.sha1(s).hexdigest()).write_bytes(s)
        n += 1
    return n


if __name__ == "__main__":
    for h, gen in (("framer", framer_seeds), ("codec", codec_seeds), ("emulator", emulator_seeds)):
        print(h, write(h, gen()))
