"""``wizsock check``: hold a module against the emulator -- a conformance report and a timing profile.

One scripted, safe session runs on the module (``--port``) and then on a private
in-process emulator; every answer is reduced to its *shape* (values that vary by
nature -- MACs, addresses, numbers, strings, dates -- by form, not value) and the two
are compared step by step.  Each difference names the command and the spec section
it concerns.  Nothing is written to the flash unless ``--allow-flash``; every
current setting the script changes is set back at the end; no factory reset.  An
``AT+RST`` (boot time) runs only when the module's current settings equal its saved
ones, so the reset loses nothing.  ``--profile FILE`` writes the measured timing as
a profile the emulator loads (``wizsock emulator --profile FILE``).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from wizsock import protocol as P
from wizsock.emulator.profile import NOT_PROFILED, TimingProfile, key_of
from wizsock.framer import (Busy, Data, Echo, Garbage, Info, LinkEvent, Prompt, Ready, Recv, Result, SendBufAck,
                            Subscription, Text, Wifi)

from . import common as C
from .atsession import Answer, RawSession

__all__ = ["add_arguments", "run", "Options", "Step", "Difference", "Report", "EchoPeer", "run_script",
           "compare", "check", "shape_of", "profile_of", "REFERENCE_CREDENTIALS"]

#: what the reference emulator joins (its default world's network)
REFERENCE_CREDENTIALS = ("wizsock-lab", "wizsock123")
#: what the echo peer takes as "close your end" (and does not echo)
CLOSE_REQUEST = b"#close"
#: commands the timing phase repeats (median of REPEAT turnarounds each)
TIMED = (b"AT", b"AT+GMR", b"AT+CWMODE_CUR?", b"AT+UART_CUR?", b"AT+CIPMUX?", b"AT+CIPSTATUS", b"AT+CIFSR",
         b"AT+CIPSTA_CUR?", b"AT+CWJAP_CUR?", b"AT+CIPSTO?")
REPEAT = 5
#: resets the boot time is the least of (each loses nothing: see reset_is_safe)
BOOTS = 3
#: current settings that a reset would lose unless equal to the saved ones (twin queries)
#: (not CIPSTA/CIPAP: their _CUR shows the DHCP lease; a static address set with them
#: switches DHCP off, which CWDHCP shows)
TWINS = ("CWMODE", "CWDHCP", "CIPSTAMAC", "CIPAPMAC", "UART", "CWSAP", "CIPDNS", "CWCOUNTRY", "CWDHCPS")
#: settings without a saved twin, with their value after a reset
BOOT_VALUES = {"CIPMUX": "0", "CIPDINFO": "0", "CIPSTO": "180"}


# ----------------------------------------------------------------------------- shapes

_DATE = re.compile(r"[A-Z][a-z]{2} +\d{1,2} \d{4}(?: \d\d:\d\d:\d\d)?")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_MAC = re.compile(r"(?<![0-9A-Fa-f:])[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}(?![0-9A-Fa-f:])")
_IP = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")
_HEX = re.compile(r"(?<=\()[0-9a-f]{6,}(?=\))")
_NUM = re.compile(r"(?<![A-Za-z_<])-?\d+")


def value_form(text: str) -> str:
    """A value by form: ``<date>``, ``"<mac>"``, ``"<ip>"``, ``"<str>"``, ``<hex>``, ``<n>``."""
    text = _DATE.sub("<date>", text)

    def quoted(m: "re.Match[str]") -> str:
        inner = m.group(1)
        if _MAC.fullmatch(inner):
            return '"<mac>"'
        if _IP.fullmatch(inner):
            return '"<ip>"'
        return '"<str>"'
    text = _QUOTED.sub(quoted, text)
    text = _MAC.sub("<mac>", text)
    text = _IP.sub("<ip>", text)
    text = _HEX.sub("<hex>", text)
    return _NUM.sub("<n>", text)


def token(ev: Any) -> Optional[str]:
    """One line of an answer by form; None for what is state, not answer (WiFi events)."""
    if isinstance(ev, Info):
        return "+" + ev.name + ("" if ev.value is None else ":" + value_form(ev.value))
    if isinstance(ev, Echo):
        return "<echo>"
    if isinstance(ev, Text):
        return value_form(ev.text)
    if isinstance(ev, Result):
        return ev.code
    if isinstance(ev, Prompt):
        return ">"
    if isinstance(ev, Recv):
        return "Recv <n> bytes"
    if isinstance(ev, SendBufAck):
        return ("" if ev.link is None else "<n>,") + "<n>,SEND OK"
    if isinstance(ev, LinkEvent):
        return ("" if ev.link is None else "<n>,") + ev.state
    if isinstance(ev, Busy):
        return f"busy {ev.kind}..." if ev.kind else "busy"
    if isinstance(ev, Data):
        return "+IPD,<n>,<n>" + ("" if ev.remote is None else ",<ip>,<n>") + ":"
    if isinstance(ev, Ready):
        return "ready"
    if isinstance(ev, Garbage):
        return "<garbage>"
    if isinstance(ev, Subscription):
        return "<subscription>"
    return None    # Wifi: the join state, compared by the steps that ask for it


def shape_of(events: Sequence[Any], *, collapse: bool = False, unordered: bool = False,
             ignore_garbage: bool = False) -> List[str]:
    """The answer's lines by form.  ``collapse``: runs of the same line count once (a scan's
    list, +IPD chunks); ``unordered``: as a sorted list (lines that race each other)."""
    out: List[str] = []
    for ev in events:
        if ignore_garbage and isinstance(ev, Garbage):
            continue
        t = token(ev)
        if t is None or (collapse and out and out[-1] == t):
            continue
        out.append(t)
    return sorted(out) if unordered else out


_HEAD = re.compile(rb"^AT(\+?)([A-Za-z0-9_]*)(=\?|\?|=)?")


def command_of(line: bytes) -> Tuple[str, str]:
    """(name, form) of a command line as the codec's table names it, also for lines it refuses."""
    m = _HEAD.match(line)
    if not m:
        return "", "execute"
    plus, name, suffix = m.group(1), m.group(2).decode("ascii").upper(), m.group(3)
    if not plus:
        name = name if name in ("E0", "E1") else ""
    form = {b"?": "query", b"=?": "test", b"=": "set"}.get(suffix or b"", "execute")
    return name, form


def section_of(name: str) -> str:
    spec = P.COMMANDS.get(name)
    if spec is not None and spec.legacy:
        # a bare ESP8266-AT form: the spec describes it as its _CUR/_DEF twins
        twin = P.COMMANDS.get(name + "_CUR") or P.COMMANDS.get(name + "_DEF")
        return f"{twin.section} (bare form)" if twin is not None else spec.section
    return "" if spec is None else spec.section


def _setting(value: Optional[str]) -> str:
    """A queried setting as its set form takes it (AT+CIPDINFO? prints FALSE/TRUE, takes 0/1)."""
    v = (value or "").strip()
    return {"FALSE": "0", "TRUE": "1"}.get(v.upper(), v)


# ----------------------------------------------------------------------------- records

@dataclass
class Step:
    """One thing the script did and what came back."""
    id: str
    command: str                     # as shown: secrets and MACs masked
    section: str
    shape: List[str] = field(default_factory=list)
    result: Optional[str] = None
    turnaround: Optional[float] = None
    wire_in: float = 0.0             # wire time of what the host wrote
    wire_out: float = 0.0            # ... of what the module printed, at the full line rate
    key: Optional[str] = None        # timing profile key (None: not a command's turnaround)
    codec: Optional[str] = None      # why the codec could not read the answer
    compare: bool = True
    skipped: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Difference:
    step: str
    command: str
    section: str
    expected: List[str]
    got: List[str]
    note: str = ""


@dataclass
class Run:
    steps: Dict[str, Step] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    firmware: Optional[str] = None
    reset_skipped: Optional[str] = None
    silent: Optional[str] = None      # why the script stopped early
    linked: bool = False              # the links phase ran


@dataclass
class Options:
    ssid: Optional[str] = None
    password: Optional[str] = None
    echo: Optional[Tuple[str, int]] = None
    allow_flash: bool = False
    reset: Optional[bool] = None     # None: decide from the module's settings; False: never
    timeout: float = 5.0


@dataclass
class Report:
    port: str
    baudrate: int
    target: Run
    reference: Run
    differences: List[Difference]

    def to_json(self) -> Dict[str, Any]:
        return {
            "format": "wizsock-check-report", "version": 1, "port": _mask_port(self.port),
            "baudrate": self.baudrate, "firmware": self.target.firmware,
            "differences": [C.as_data(d) for d in self.differences],
            "notes": self.target.notes,
            "steps": [{"id": s.id, "command": s.command, "section": s.section, "shape": s.shape,
                       "result": s.result, "skipped": s.skipped,
                       "turnaround_ms": None if s.turnaround is None else round(s.turnaround * 1000, 3),
                       **({"codec": s.codec} if s.codec else {}), **s.extra}
                      for s in self.target.steps.values()],
        }


def _mask_port(port: str) -> str:
    # a socket:// URL may carry a host name of the user's network: keep only the scheme
    return re.sub(r"^(\w+://)[^?]*", r"\1...", port) if "://" in port and not port.startswith("wizemu") else port


# ----------------------------------------------------------------------------- the script

class ModuleSilent(Exception):
    """Several commands in a row got no answer: the rest of the script would only wait."""


#: commands in a row without an answer that end the script
SILENT_AFTER = 3


class Script:
    """The check's session on one module (the target or the reference emulator)."""

    def __init__(self, session: RawSession, opts: Options):
        self.s = session
        self.o = opts
        self.run = Run()
        self.unanswered = 0
        self.echo_was_on = False
        self.snap: Dict[str, Optional[str]] = {}
        self.secrets: List[str] = [x for x in (opts.ssid, opts.password) if x]

    # -- recording
    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(P.quote(secret), '"***"')
        return _MAC.sub("**:**:**:**:**:**", text)

    def record(self, sid: str, line: bytes, ans: Answer, *, compare: bool = True, collapse: bool = False,
               unordered: bool = False, ignore_garbage: bool = False, key: bool = True,
               shown: Optional[str] = None, parse: bool = True, t_end: Optional[float] = None,
               section: Optional[str] = None) -> Step:
        name, form = command_of(line)
        text = shown if shown is not None else line.decode("utf-8", "replace")
        step = Step(sid, self.mask(text), section or section_of(name), compare=compare)
        step.shape = shape_of([ev for _, ev in ans.events], collapse=collapse, unordered=unordered,
                              ignore_garbage=ignore_garbage)
        step.result = ans.result
        end = t_end if t_end is not None else (ans.t_final if ans.t_final is not None else ans.t_prompt)
        if end is not None:
            step.turnaround = end - ans.t_written
            step.wire_in = self.s.wire_time(len(ans.sent) + (0 if sid.endswith(".sent") else 2))
            step.wire_out = self.s.wire_time(len(ans.raw))
            # an answer that is not a success (ERROR to a refused line) may take another path
            # through the firmware: only successes time a command
            if key and line.startswith(b"AT") and name not in NOT_PROFILED and ans.result in ("OK", ">"):
                step.key = key_of(name, form)
        if ans.result is None:
            step.shape.append("<no answer>")
        if parse and ans.result == "OK" and name in P.COMMANDS and form in P.COMMANDS[name].forms:
            lines = [ev for _, ev in ans.events if isinstance(ev, (Info, Text))]
            try:
                P.COMMANDS[name].parse_response(form, lines)
            except (P.ResponseError, ValueError) as e:
                step.codec = f"the codec's {key_of(name, form)} shape does not read it ({type(e).__name__})"
        self.run.steps[sid] = step
        return step

    def skip(self, sid: str, command: str, why: str) -> None:
        name, _ = command_of(command.encode())
        self.run.steps[sid] = Step(sid, self.mask(command), section_of(name), skipped=why, compare=False)

    def at(self, sid: str, line: bytes, *, timeout: Optional[float] = None, prompt: bool = False,
           quiet: float = 0.0, **kw: Any) -> Answer:
        ans = self.s.command(line, timeout=timeout or self.o.timeout, prompt=prompt, quiet=quiet)
        self.record(sid, line, ans, **kw)
        self.unanswered = 0 if ans.result is not None else self.unanswered + 1
        if self.unanswered >= SILENT_AFTER:
            raise ModuleSilent(f"the module stopped answering (no answer to the last {SILENT_AFTER} commands, "
                               f"the last {self.mask(line.decode('utf-8', 'replace'))})")
        return ans

    def value(self, ans: Answer, name: Optional[str] = None) -> Optional[str]:
        for ev in ans.of(Info):
            if name is None or ev.name == name:
                value: Optional[str] = ev.value
                return value
        return None

    # -- the phases
    def basic(self) -> None:
        first = self.at("basic.echo_off.first", b"ATE0", compare=False, key=False)
        self.echo_was_on = bool(first.of(Echo))
        self.at("basic.at", b"AT")
        self.at("basic.echo_on", b"ATE1")
        self.at("basic.at_echoed", b"AT")
        self.at("basic.echo_off", b"ATE0")
        self.at("basic.at_quiet", b"AT")
        gmr = self.at("system.version", b"AT+GMR")
        texts = gmr.of(Text)
        self.run.firmware = texts[0].text if texts else None
        self.at("system.uart_cur", b"AT+UART_CUR?")
        self.at("system.uart_def", b"AT+UART_DEF?")

    def snapshot(self) -> Dict[str, Optional[str]]:
        """The current settings the script may change, as the module prints them."""
        snap: Dict[str, Optional[str]] = {}
        for name in ("CWMODE_CUR", "CIPMUX", "CIPDINFO", "CIPSTO"):
            # CIPDINFO prints its state as a word (TRUE/FALSE): a value, not a form to compare
            ans = self.at(f"snapshot.{name.lower()}", f"AT+{name}?".encode(), compare=name != "CIPDINFO")
            snap[name] = self.value(ans) if ans.result == "OK" else None
        ans = self.at("snapshot.cwjap_cur", b"AT+CWJAP_CUR?", compare=False, key=False)
        snap["joined"] = self.value(ans) if ans.result == "OK" else None
        return snap

    def reset_is_safe(self, snap: Dict[str, Optional[str]]) -> Optional[str]:
        """None if an AT+RST loses no current setting, else what it would lose."""
        lost: List[str] = []
        for base in TWINS:
            cur = self.s.command(f"AT+{base}_CUR?".encode(), timeout=self.o.timeout)
            dflt = self.s.command(f"AT+{base}_DEF?".encode(), timeout=self.o.timeout)
            a = [(ev.value or "") for ev in cur.of(Info)] + [ev.text for ev in cur.of(Text)]
            b = [(ev.value or "") for ev in dflt.of(Info)] + [ev.text for ev in dflt.of(Text)]
            if cur.result != dflt.result or a != b:
                lost.append(f"{base}_CUR")
        for name, boot in BOOT_VALUES.items():
            if snap.get(name) is not None and _setting(snap[name]) != boot:
                lost.append(name)
        if snap.get("joined"):
            saved = self.s.command(b"AT+CWJAP_DEF?", timeout=self.o.timeout)
            auto = self.s.command(b"AT+CWAUTOCONN?", timeout=self.o.timeout)
            cur_ssid = (snap["joined"] or "").split(",")[0]
            def_ssid = (self.value(saved) or "").split(",")[0]
            if cur_ssid != def_ssid or (self.value(auto) or "").strip() != "1":
                lost.append("the WiFi join")
        return ", ".join(lost) or None

    def reset(self) -> None:
        times = []
        for i in range(BOOTS):
            suffix = "" if i == 0 else f".{i}"
            ans = self.s.command(b"AT+RST", timeout=self.o.timeout)
            boot = self.s.collect(lambda a, ev: isinstance(ev, Ready), timeout=15.0)
            self.record("system.reset" + suffix, b"AT+RST", ans, key=False, compare=i == 0)
            step = self.record("system.boot" + suffix, b"AT+RST", boot, ignore_garbage=True, key=False,
                               shown="AT+RST (boot to ready)", compare=i == 0)
            step.turnaround = None
            if ans.t_final is not None and boot.t_final is not None:
                times.append(boot.t_final - ans.t_final)
                step.extra["boot_s"] = round(times[-1], 4)
            self.s.drain(0.05)
        if times:
            self.run.steps["system.boot"].turnaround = min(times)   # load on the host only adds
        self.at("system.echo_off_after_boot", b"ATE0")

    def wifi(self) -> None:
        self.at("wifi.mode_station", b"AT+CWMODE_CUR=1")
        self.at("wifi.mode_query", b"AT+CWMODE_CUR?")
        self.at("wifi.scan", b"AT+CWLAP", timeout=20.0, collapse=True)
        if self.o.ssid is not None:
            line = P.COMMANDS["CWJAP_CUR"].set(ssid=self.o.ssid, pwd=self.o.password or "").encode().rstrip(b"\r\n")
            self.joined_here = True
            self.at("wifi.join", line, timeout=30.0)
            self.at("wifi.join_query", b"AT+CWJAP_CUR?")
        self.at("wifi.addresses", b"AT+CIFSR")
        self.at("wifi.station_ip", b"AT+CIPSTA_CUR?")
        self.at("wifi.station_mac", b"AT+CIPSTAMAC_CUR?")
        self.at("wifi.status", b"AT+CIPSTATUS")

    def legacy(self, def_mode: Optional[str]) -> None:
        for name in ("CWMODE", "CIPSTAMAC", "CIPSTA", "UART", "CWDHCP"):
            self.at(f"legacy.{name.lower()}_query", f"AT+{name}?".encode())
        if self.o.allow_flash and def_mode:
            # writes the saved value back unchanged: the bare set form saves in the flash
            self.at("legacy.cwmode_set", f"AT+CWMODE={def_mode.strip()}".encode())
        else:
            self.skip("legacy.cwmode_set", "AT+CWMODE=<saved mode>", "writes the flash (--allow-flash)")

    def wrong_input(self) -> None:
        self.at("wrong.mode_out_of_range", b"AT+CWMODE_CUR=4")
        self.at("wrong.mux_out_of_range", b"AT+CIPMUX=2")
        self.at("wrong.timeout_out_of_range", b"AT+CIPSTO=7201")
        self.at("wrong.unknown_command", b"AT+WIZSOCKCHECK")
        self.at("wrong.missing_parameter", b"AT+CWMODE_CUR=")

    def links(self) -> None:
        assert self.o.echo is not None
        host, port = self.o.echo
        target = f'"{host}",{port}'.encode()
        def tcp(lid: int) -> bytes:
            return b'AT+CIPSTART=%d,"TCP",' % lid + target
        mux_was = _setting(self.snap.get("CIPMUX"))
        self.at("links.mux_on", b"AT+CIPMUX=1")
        # +IPD without the remote's address: the form the emulator's reference prints (restored)
        self.at("links.ipd_plain", b"AT+CIPDINFO=0")
        if mux_was == "0":   # no server can run in single mode: deleting none deletes nothing of the user's
            self.at("links.server_delete_none", b"AT+CIPSERVER=0")
        else:
            self.skip("links.server_delete_none", "AT+CIPSERVER=0",
                      "the module was in AT+CIPMUX=1: a server of yours may be running")
        self.at("links.tcp_open", tcp(0), timeout=15.0)
        self.at("links.udp_open", b'AT+CIPSTART=1,"UDP",' + target, timeout=15.0)
        self.at("links.status", b"AT+CIPSTATUS")
        self.send("links.tcp_send", 0, b"hello wizsock")
        self.send("links.udp_send", 1, b"howdy wizsock")
        for i in range(REPEAT):    # SEND OK latency: the least of these and the sends above
            self.send(f"timing.send_ok.{i}", 0, b"timing %d" % i)
        for seg in (1, 2):
            self.sendbuf(f"links.sendbuf_{seg}", 0, b"segment%d" % seg)
        self.at("links.sendbuf_status", b"AT+CIPBUFSTATUS=0")
        # data longer than announced: 2 bytes more than the 4 of AT+CIPSENDBUF
        self.sendbuf("wrong.overlong_data", 0, b"abcd", extra=b"EF")
        self.at("wrong.after_overlong", b"AT", section=section_of("CIPSENDBUF"),
                shown="AT (after data longer than announced)")
        self.at("wrong.send_too_long", b"AT+CIPSEND=0,2049")
        self.ipd_pacing()
        # the peer closes its end
        self.send("links.peer_close_request", 0, CLOSE_REQUEST, echo=False)
        closed = self.s.collect(lambda a, ev: isinstance(ev, LinkEvent) and ev.state == "CLOSED",
                                timeout=5.0)
        self.record("links.peer_closed", b"", closed, key=False, shown="(the peer closes link 0)",
                    section=section_of("CIPCLOSE"))
        self.at("links.host_close", b"AT+CIPCLOSE=1")
        # five links, then a sixth
        for lid in range(5):
            self.at(f"links.fill_{lid}", tcp(lid), timeout=15.0)
        self.at("wrong.sixth_link", tcp(5), timeout=15.0)
        self.at("links.close_all", b"AT+CIPCLOSE=5", timeout=10.0, quiet=0.1, unordered=True)

    def send(self, sid: str, lid: int, payload: bytes, *, echo: bool = True) -> None:
        line = b"AT+CIPSEND=%d,%d" % (lid, len(payload))
        ans = self.at(sid + ".prompt", line, prompt=True)
        if ans.result != ">":
            return
        sent = self.s.data(payload, until=lambda a, ev: isinstance(ev, Result) and ev.code in (
            "SEND OK", "SEND FAIL", "ERROR"))
        early = _take_data(sent)
        step = self.record(sid + ".sent", line, sent, key=False, shown=f"{line.decode()} <{len(payload)} bytes>")
        step.extra["send_ok_s"] = step.turnaround
        if echo:
            self.echoed(sid + ".echo", line, lid, len(payload), early)

    def sendbuf(self, sid: str, lid: int, payload: bytes, extra: bytes = b"") -> None:
        line = b"AT+CIPSENDBUF=%d,%d" % (lid, len(payload))
        ans = self.at(sid + ".prompt", line, prompt=True)
        if ans.result != ">":
            return
        sent = self.s.data(payload + extra, until=lambda a, ev: isinstance(ev, (SendBufAck, Result)) and not (
            isinstance(ev, Result) and ev.code == "OK"), quiet=0.1 if extra else 0.0)
        early = _take_data(sent)
        self.record(sid + ".sent", line, sent, key=False, unordered=bool(extra),
                    shown=f"{line.decode()} <{len(payload) + len(extra)} bytes>")
        self.echoed(sid + ".echo", line, lid, len(payload), early)

    def echoed(self, sid: str, line: bytes, lid: int, n: int,
               early: Sequence[Tuple[float, Any]] = ()) -> Answer:
        """The peer's echo as +IPD, counting ``early``: what arrived while the send was
        answered (an echo may overtake a late SEND OK)."""
        early = list(early)
        have = len(RawSession.received(Answer(b"", events=early), lid))
        if have >= n:
            ans = Answer(b"", t_written=early[0][0], t_final=early[-1][0], result="event")
        else:
            ans = self.s.collect(lambda a, ev: have + len(RawSession.received(a, lid)) >= n, timeout=5.0)
        ans.events = early + ans.events
        step = self.record(sid, line, ans, key=False, collapse=True, shown=f"(the peer echoes {n} bytes)")
        step.extra["echoed_bytes"] = len(RawSession.received(ans, lid))
        return ans

    def ipd_pacing(self) -> None:
        n = 2048
        payload = bytes(range(256)) * (n // 256)
        line = b"AT+CIPSEND=0,%d" % n
        ans = self.at("timing.ipd.prompt", line, prompt=True)
        if ans.result != ">":
            return
        sent = self.s.data(payload, until=lambda a, ev: isinstance(ev, Result) and ev.code in (
            "SEND OK", "SEND FAIL", "ERROR"))
        early = _take_data(sent)
        step = self.record("timing.ipd.sent", line, sent, key=False, shown=f"{line.decode()} <{n} bytes>")
        step.extra["send_ok_s"] = step.turnaround
        echo = self.echoed("timing.ipd.echo", line, 0, n, early)
        datas = [(t, ev) for t, ev in echo.events if isinstance(ev, Data)]
        st = self.run.steps["timing.ipd.echo"]
        st.extra["ipd_sizes"] = [len(ev.payload) for _, ev in datas]
        reads = echo.reads
        if len(reads) >= 3:
            # the pace of the +IPD stream: the time from the first read to the last over the
            # bytes after the first (pauses between bytes, or between chunks, included)
            span = reads[-1][0] - reads[0][0]
            nbytes = sum(n for _, n in reads[1:])
            if span > 0:
                st.extra["ipd_byte_us"] = round(span / nbytes * 1e6, 3)

    def timing(self) -> None:
        # round-robin: a burst of load on the host hits one sample of many commands, not
        # every sample of one (the median takes care of the one)
        for i in range(REPEAT):
            for line in TIMED:
                self.at(f"timing.{line.decode().lower()}.{i}", line, compare=False)

    def restore(self, snap: Dict[str, Optional[str]]) -> None:
        for name in ("CIPMUX", "CIPDINFO", "CIPSTO", "CWMODE_CUR"):
            was = snap.get(name)
            if was is None:
                continue
            now = self.s.command(f"AT+{name}?".encode(), timeout=self.o.timeout)
            if _setting(self.value(now)) != _setting(was):
                self.at(f"restore.{name.lower()}", f"AT+{name}={_setting(was)}".encode(), compare=False, key=False)
        if getattr(self, "joined_here", False) and not snap.get("joined"):
            self.at("restore.leave", b"AT+CWQAP", compare=False, key=False)
        elif getattr(self, "joined_here", False):
            self.run.notes.append("the module stays joined to the network given with --ssid")
        if self.echo_was_on:
            self.at("restore.echo", b"ATE1", compare=False, key=False)

    # -- all of it
    def go(self) -> Run:
        try:
            return self._go()
        except ModuleSilent as exc:
            self.run.silent = str(exc)
            self.run.notes.append(str(exc))
            return self.run

    def _go(self) -> Run:
        self.s.drain(0.05)
        self.basic()
        self.snap = snap = self.snapshot()
        if self.o.reset is False:
            why: Optional[str] = "not asked for (--no-reset)"
        else:
            lost = self.reset_is_safe(snap)
            why = None if lost is None else f"a reset would lose the current settings of {lost}"
        if why is None:
            self.reset()
        else:
            self.run.reset_skipped = why
            self.skip("system.reset", "AT+RST", why)
            self.run.notes.append(f"AT+RST skipped: {why}")
        try:
            self.wifi()
            self.legacy(self._saved_mode())
            self.wrong_input()
            if self.o.echo is None:
                self.run.notes.append("no --echo peer: links, data and +IPD timing not checked")
            elif self.o.ssid is None and not snap.get("joined"):
                self.run.notes.append("the module has joined no network (give --ssid): links, data and "
                                      "+IPD timing not checked")
            else:
                self.run.linked = True
                self.links()
            self.timing()
        except ModuleSilent:
            raise     # nothing to restore on a module that does not answer
        except BaseException:
            self.s.drain(0.05)
            self.restore(snap)
            raise
        self.s.drain(0.05)
        self.restore(snap)
        return self.run

    def _saved_mode(self) -> Optional[str]:
        ans = self.s.command(b"AT+CWMODE_DEF?", timeout=self.o.timeout)
        return self.value(ans)


def _take_data(ans: Answer) -> List[Tuple[float, Any]]:
    """Take the +IPD events out of ``ans``: they are the echo step's lines, not the send's."""
    data = [(t, ev) for t, ev in ans.events if isinstance(ev, Data)]
    ans.events = [(t, ev) for t, ev in ans.events if not isinstance(ev, Data)]
    return data


def run_script(port: Any, baudrate: int, opts: Options) -> Run:
    return Script(RawSession(port, baudrate), opts).go()


# ----------------------------------------------------------------------------- comparing

def compare(target: Run, reference: Run) -> List[Difference]:
    """Every step both ran whose answer differs in shape, and every answer the codec cannot read."""
    out: List[Difference] = []
    for sid, ref in reference.steps.items():
        got = target.steps.get(sid)
        if got is None or got.skipped or ref.skipped or not (got.compare and ref.compare):
            continue
        if got.shape != ref.shape:
            out.append(Difference(sid, got.command, got.section, ref.shape, got.shape))
        elif got.codec and not ref.codec:
            out.append(Difference(sid, got.command, got.section, ref.shape, got.shape, got.codec))
    return out


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def _byte_us(run: Optional[Run]) -> Optional[float]:
    """Microseconds a byte of the +IPD stream took, as the host read it (None: not measured)."""
    step = None if run is None else run.steps.get("timing.ipd.echo")
    value = None if step is None else step.extra.get("ipd_byte_us")
    return None if value is None else float(value)


def _pacing(run: Run, baudrate: int, reference: Optional[Run]) -> float:
    """The share of the line rate the module's output kept.

    The host's reads blur a stream's rate (the emulator at full rate reads as about 4 us
    a byte at 2 Mbaud where the line takes 5: its output goes in 2 ms slices), so the
    reference's reading of the same stream calibrates it: the time a byte took beyond
    the reference's is the module's pause between bytes.  Within 5% of the line rate,
    the line rate stands (the blur, not the module)."""
    mine, base = _byte_us(run), _byte_us(reference)
    if mine is None or base is None:
        return 1.0
    line = 1e7 / baudrate            # us a byte takes at the line rate (10 bits)
    ratio = line / (line + max(0.0, mine - base))
    return ratio if ratio < 0.95 else 1.0


def _timings(run: Run, pace: float = 1.0) -> Dict[str, Any]:
    """Per profile key, the module's share (turnaround - wire time) of each sample; SEND OK; boot.

    The module's output is counted at the rate it kept (``pace``: a module that pauses
    between bytes takes longer on the wire, which is its pacing's share, not its processing's)."""
    share: Dict[str, List[float]] = {}
    raw: Dict[str, List[float]] = {}
    other: Dict[str, List[float]] = {}
    send_ok: List[float] = []
    send_ok_raw: List[float] = []
    boot: Optional[float] = None
    for step in run.steps.values():
        if step.turnaround is None:
            continue
        wire = step.wire_in + step.wire_out / pace
        if step.key:
            share.setdefault(step.key, []).append(max(0.0, step.turnaround - wire))
            raw.setdefault(step.key, []).append(step.turnaround)
        elif step.id.endswith(".sent") and "send_ok_s" in step.extra and step.result == "SEND OK":
            send_ok.append(max(0.0, step.turnaround - wire))
            send_ok_raw.append(step.turnaround)
        elif step.id == "system.boot":
            boot = step.turnaround
        elif step.id.startswith(("wifi.", "links.")) and step.result == "OK":
            other.setdefault(step.command.split("=")[0], []).append(step.turnaround)
    return {"share": share, "raw": raw, "other": other, "send_ok": send_ok, "send_ok_raw": send_ok_raw,
            "boot": boot}


def profile_of(run: Run, baudrate: int, source: str, reference: Optional[Run] = None) -> TimingProfile:
    """The run's timing as a profile.

    Per command, the least of the module's shares (turnaround minus the wire time of its
    bytes) over its samples: load on the host only ever adds time, so the least is the
    module's own (the medians are in ``measured`` too).  With the ``reference`` run (the
    same script on the emulator with no processing time) its share is subtracted too:
    what is left is the module's own time, not the host's or the emulator's, so an
    emulator loading the profile answers in the module's time instead of the module's
    time plus its own."""
    pace = _pacing(run, baudrate, reference)
    t = _timings(run, pace)
    base = _timings(reference) if reference is not None else None

    def own(key: str, values: List[float]) -> float:
        mine = min(values)
        if base is not None and base["share"].get(key):
            mine -= min(base["share"][key])
        return max(0.0, mine)
    turn = {k: own(k, v) for k, v in t["share"].items()}
    send_ok = min(t["send_ok"], default=0.0)
    if base is not None and base["send_ok"]:
        send_ok = max(0.0, send_ok - min(base["send_ok"]))
    boot = t["boot"]
    if boot is not None and base is not None and base["boot"] is not None:
        boot = max(0.0, boot - max(0.0, base["boot"] - REFERENCE_BOOT))
    measured: Dict[str, Any] = {
        "turnaround_ms": {k: round(min(v) * 1000, 3) for k, v in sorted(t["raw"].items())},
        "turnaround_median_ms": {k: round(_median(v) * 1000, 3) for k, v in sorted(t["raw"].items())},
        "samples": {k: len(v) for k, v in sorted(t["raw"].items())},
        "send_ok_ms": round(min(t["send_ok_raw"]) * 1000, 3) if t["send_ok_raw"] else None,
        "boot_ms": None if t["boot"] is None else round(t["boot"] * 1000, 3),
        "radio_network_ms": {k: round(_median(v) * 1000, 3) for k, v in sorted(t["other"].items())},
    }
    ipd = run.steps.get("timing.ipd.echo")
    if ipd is not None:
        measured["ipd_sizes"] = ipd.extra.get("ipd_sizes")
        measured["ipd_byte_us"] = ipd.extra.get("ipd_byte_us")
        measured["line_rate_ratio"] = round(pace, 4)
    prompts = [min(v) for k, v in t["raw"].items() if k in ("AT+CIPSEND=", "AT+CIPSENDBUF=")]
    if prompts:
        measured["prompt_ms"] = round(min(prompts) * 1000, 3)   # command to `>`
    return TimingProfile(turnaround=turn, default_turnaround=_median(list(turn.values())),
                         send_ok=send_ok, boot=boot, line_rate_ratio=pace,
                         baudrate=baudrate, source=source, measured=measured)


# ----------------------------------------------------------------------------- echo peer

class EchoPeer:
    """TCP and UDP echo on one port (loopback by default); ``#close`` makes it close a TCP link."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((host, port))
        self.address: Tuple[str, int] = self.tcp.getsockname()[:2]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(self.address)
        self.tcp.listen(16)
        self._stop = False
        self._threads = [threading.Thread(target=self._accept, daemon=True),
                         threading.Thread(target=self._udp, daemon=True)]
        for t in self._threads:
            t.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _serve(conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data or data == CLOSE_REQUEST:
                    return
                try:
                    conn.sendall(data)
                except OSError:
                    return

    def _udp(self) -> None:
        while not self._stop:
            try:
                data, addr = self.udp.recvfrom(65536)
                if self._stop or not addr:
                    return
                self.udp.sendto(data, addr)
            except (OSError, TypeError):   # closed under it
                return

    def close(self) -> None:
        self._stop = True
        for s in (self.tcp, self.udp):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def __enter__(self) -> "EchoPeer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ----------------------------------------------------------------------------- the whole check

REFERENCE_BAUD = 2000000
REFERENCE_BOOT = 0.05      # the reference emulator's boot time (seconds from reset to ready)


def reference_run(opts: Options, reset: bool, linked: bool = True) -> Run:
    """The same script on a private emulator (its own echo peer on loopback); ``linked``:
    the module under check ran the links phase (joined to a network before the check)."""
    import serial

    import wizsock  # noqa: F401  (registers wizemu://)
    ref_opts = Options(ssid=REFERENCE_CREDENTIALS[0] if opts.ssid is not None else None,
                       password=REFERENCE_CREDENTIALS[1] if opts.ssid is not None else None,
                       allow_flash=opts.allow_flash, reset=reset, timeout=opts.timeout)
    with EchoPeer() as peer:
        if opts.echo is not None and linked:
            ref_opts.echo = peer.address
        port = serial.serial_for_url(f"wizemu://?baud={REFERENCE_BAUD}&boot={REFERENCE_BOOT}",
                                     baudrate=REFERENCE_BAUD, timeout=0.005)
        try:
            session = RawSession(port, REFERENCE_BAUD)
            session.collect(lambda a, ev: isinstance(ev, Ready), timeout=5.0)   # its boot
            if ref_opts.echo is not None and opts.ssid is None:
                # the module under check may be joined already: the links need the reference joined
                session.command(b"AT+CWMODE_CUR=1")
                session.command(P.COMMANDS["CWJAP_CUR"].set(ssid=REFERENCE_CREDENTIALS[0],
                                pwd=REFERENCE_CREDENTIALS[1]).encode().rstrip(b"\r\n"), timeout=30.0)
            return Script(session, ref_opts).go()
        finally:
            port.close()


def check(port: Any, baudrate: int, opts: Options, reference: Optional[Run] = None) -> Report:
    """Run the script on ``port`` (a pyserial port object), then on the reference emulator
    (or compare with ``reference``, a run of the same script and options, reset included)."""
    target = run_script(port, baudrate, opts)
    if reference is None:
        reference = reference_run(opts, reset=target.reset_skipped is None, linked=target.linked)
    return Report(str(getattr(port, "port", port)), baudrate, target, reference, compare(target, reference))


# ----------------------------------------------------------------------------- command line

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[1]
    parser.epilog = ("exit codes: 0 no difference, 1 differences found, 2 usage, 3 no module, "
                     "130 interrupted")
    parser.add_argument("--port", default=None,
                        help="the module's port (anything pyserial opens: /dev/ttyUSB0, socket://host:port, "
                             "wizemu://...); default: an in-process emulator")
    parser.add_argument("--baudrate", type=int, default=None,
                        help="UART rate (default 115200; 921600 for the emulator)")
    parser.add_argument("--ssid", default=None, help="join this network (and check the join and addresses)")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the network's password from the first line of stdin")
    parser.add_argument("--echo", default=None, metavar="HOST:PORT",
                        help="a TCP+UDP echo peer the module can reach (`wizsock check --serve-echo`): "
                             "links, data, closes and +IPD timing")
    parser.add_argument("--serve-echo", default=None, metavar="HOST:PORT",
                        help="only run the echo peer the check needs, on this host's HOST:PORT "
                             "(0.0.0.0:7777: every interface), until Ctrl-C")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="write the report as JSON (for a bug report: credentials and MACs masked)")
    parser.add_argument("--profile", default=None, metavar="FILE",
                        help="write the measured timing as a profile `wizsock emulator --profile` loads")
    parser.add_argument("--allow-flash", action="store_true",
                        help="also check forms that write the flash (the saved value is written back)")
    parser.add_argument("--no-reset", action="store_true", help="never send AT+RST (no boot time)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for one answer (default 5)")


def _host_port(text: str) -> Tuple[str, int]:
    host, sep, port = text.rpartition(":")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def render(report: Report) -> str:
    lines = [f"module: {_mask_port(report.port)} at {report.baudrate} baud, firmware {report.target.firmware or '?'}"]
    ran = [s for s in report.target.steps.values() if not s.skipped]
    lines.append(f"steps: {len(ran)} run, {len(report.target.steps) - len(ran)} skipped; "
                 f"differences from the emulator: {len(report.differences)}")
    if report.differences:
        rows = []
        for d in report.differences:
            exp, got = _first_difference(d.expected, d.got)
            rows.append((d.step, d.command, d.section or "-", exp, got, d.note))
        lines.append("")
        lines.append(C.table(rows, ("step", "command", "spec", "emulator", "module", "note")))
    prof = profile_of(report.target, report.baudrate, "", report.reference)
    m = prof.measured
    lines.append("")
    lines.append("timing (least of each command's samples, ms): " + ", ".join(f"{k} {v}" for k, v in list(m["turnaround_ms"].items())[:12]))
    extra = [f"SEND OK {m['send_ok_ms']} ms" if m.get("send_ok_ms") is not None else "",
             f"boot {m['boot_ms']} ms" if m.get("boot_ms") is not None else "",
             f"command to > {m['prompt_ms']} ms" if m.get("prompt_ms") is not None else "",
             f"+IPD chunks {m.get('ipd_sizes')}" if m.get("ipd_sizes") else "",
             f"output kept {m.get('line_rate_ratio')} of the line rate" if m.get("line_rate_ratio") else ""]
    if any(extra):
        lines.append("        " + ", ".join(e for e in extra if e))
    for note in report.target.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _first_difference(expected: List[str], got: List[str]) -> Tuple[str, str]:
    for i in range(max(len(expected), len(got))):
        a = expected[i] if i < len(expected) else "(nothing)"
        b = got[i] if i < len(got) else "(nothing)"
        if a != b:
            return a, b
    return " | ".join(expected), " | ".join(got)


def _write_private(path: str, data: Dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def _serve_echo(where: str) -> int:
    host, port = _host_port(where)
    with EchoPeer(host, port) as peer:
        print(f"echo peer on {peer.address[0]}:{peer.address[1]} (TCP and UDP); Ctrl-C stops it", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return C.EXIT_OK


def run(args: argparse.Namespace) -> int:
    if args.serve_echo:
        try:
            return _serve_echo(args.serve_echo)
        except (ValueError, OSError) as exc:
            print(f"wizsock check: --serve-echo {args.serve_echo}: {exc}", file=sys.stderr)
            return C.EXIT_USAGE
    password = None
    if args.password_stdin:
        if args.ssid is None:
            print("wizsock check: --password-stdin needs --ssid", file=sys.stderr)
            return C.EXIT_USAGE
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        echo = None if args.echo is None else _host_port(args.echo)
    except ValueError:
        print(f"wizsock check: --echo wants HOST:PORT, not {args.echo!r}", file=sys.stderr)
        return C.EXIT_USAGE
    url = args.port or "wizemu://?baud=921600"
    baud = args.baudrate or (921600 if url.startswith("wizemu") else 115200)
    opts = Options(ssid=args.ssid, password=password, echo=echo, allow_flash=args.allow_flash,
                   reset=False if args.no_reset else None, timeout=args.timeout)
    try:
        port = C.open_raw_port(url, baud)
    except C.ToolError as exc:
        print(f"wizsock check: {exc}", file=sys.stderr)
        return exc.code
    try:
        probe = RawSession(port, baud)
        for _ in range(3):    # a module still booting does not hear the first
            if probe.command(b"AT", timeout=1.0).result is not None:
                break
        else:
            print(f"wizsock check: no module answers on {url} at {baud} baud", file=sys.stderr)
            return C.EXIT_NO_MODULE
        report = check(port, baud, opts)
    except KeyboardInterrupt:
        return C.EXIT_INTERRUPTED
    finally:
        port.close()
    print(render(report))
    if report.target.silent:
        print(f"wizsock check: {report.target.silent}", file=sys.stderr)
    if args.json:
        _write_private(args.json, report.to_json())
    if args.profile:
        source = f"wizsock check on a module at {baud} baud, firmware {report.target.firmware or '?'}"
        profile_of(report.target, baud, source, report.reference).save(args.profile)
    if report.target.silent:
        return C.EXIT_NO_MODULE
    return C.EXIT_FAILED if report.differences else C.EXIT_OK
