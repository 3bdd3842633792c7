"""One validator (issue 11): the emulator accepts exactly what the codec accepts.

Every command line is parsed by `protocol.parse_request` before a handler runs, and
the handlers read the codec's typed parameters (`req.params`) instead of checking
the line again. So:

- a line the codec refuses gets `ERROR` and nothing else from the emulator;
- a line the codec accepts is never refused by a handler for its syntax. Handlers
  refuse for the module's state with `CommandFailed` (no AP, link not open,
  NOT GPIO MODE!, CIPMUX deciding whether a leading number is a link id); any
  other exception out of a handler (ValueError from a check of its own, IndexError,
  KeyError, ...), which the core also turns into ERROR, must not happen;
- the encoder (`spec.set(**kw)`) accepts exactly the typed values whose line the
  parser accepts, so the host refuses what the module would.

The lines come from `validator_cases.py`: every set signature of the table at and
beyond each parameter's bounds. The last test checks (with `ast`) that the
emulator's handler modules define no validators of their own.
"""
from __future__ import annotations

import ast
import json
import pathlib
import re
import threading
from typing import Dict, List, Optional, Tuple

import serial

from wizsock import protocol as P
from wizsock.emulator import Emulator, registry
# every handler module, so that each handler is registered before the battery wraps it
from wizsock.emulator import commands, mqtt, net, netconfig, services  # noqa: F401

from emulator.atclient import AT
from emulator.validator_cases import DISRUPTIVE, Case, all_cases, codec_accepts, host_names

FAST = 2000000
ROOT = pathlib.Path(__file__).resolve().parents[2]
WORLD = json.loads((ROOT / "wizsock/emulator/default_world.json").read_text())
FINAL = re.compile(rb"(?:^|\r\n)(OK|ERROR|FAIL|SEND OK|SEND FAIL|CLOSE)\r\n")
#: commands whose set form answers OK and then prompts `>` for data (the PEM uploads with mode 1)
PROMPTING = {"CIPSEND", "CIPSENDEX", "CIPSENDBUF"}
PEM_UPLOADS = {"CASEND", "AWSPKSEND", "CLICASEND"}
#: what the module may print between any two units (design.md §5b), whoever caused it
URC = re.compile(rb"(?:WIFI (?:CONNECTED|GOT IP|DISCONNECT)|wps (?:success,connecting ap \.\.\.|fail)|"
                 rb"\+(?:STA_CONNECTED|DIST_STA_IP|STA_DISCONNECTED):[^\r]*|(?:\d,)?CLOSED|(?:\d,)?CONNECT|"
                 rb"smartconfig [^\r]*|busy [ps]\.\.\.)\r\n")


def strip_urcs(answer: bytes) -> bytes:
    return URC.sub(b"", answer)


def lines(answer: bytes) -> List[bytes]:
    """The answer's lines without blank ones and without what may come between any two units."""
    return [ln for ln in strip_urcs(answer).split(b"\r\n") if ln]


class Rejections:
    """Every exception other than `CommandFailed` out of a handler (the core turns it into
    ERROR): a check of the handler's own refusing a line the codec accepted, or a bug.
    The real handlers run; each registered one is wrapped while the battery runs."""

    def __init__(self) -> None:
        self.seen: List[str] = []
        self.guard = threading.Lock()
        self.saved = dict(registry.HANDLERS)
        missing = set(P.COMMANDS) - set(self.saved)
        assert not missing, f"commands of the table without a handler: {sorted(missing)}"

    def __enter__(self) -> "Rejections":
        for name, fn in self.saved.items():
            registry.HANDLERS[name] = self._watch(fn)
        return self

    def __exit__(self, *exc: object) -> None:
        registry.HANDLERS.update(self.saved)

    def _watch(self, fn: registry.Handler) -> registry.Handler:
        async def watched(ctx: registry.Context, req: P.Request) -> Optional[str]:
            try:
                return await fn(ctx, req)
            except registry.CommandFailed:
                raise
            except Exception as e:
                with self.guard:
                    self.seen.append(f"handler {req.name} raised {type(e).__name__}: {e}")
                raise
        return watched

    def take(self) -> List[str]:
        with self.guard:
            out, self.seen = self.seen, []
        return out


def world(tmp_path) -> str:
    w = dict(WORLD)
    dns = dict(w.get("dns", {}))
    # every generated host name, and SNTP's default servers, are loopback here
    for name in host_names() + ["cn.ntp.org.cn", "ntp.sjtu.edu.cn", "us.pool.ntp.org"]:
        dns[name] = "127.0.0.1"
    w["dns"] = dns
    path = tmp_path / "world.json"
    path.write_text(json.dumps(w))
    return str(path)


class Module:
    """One emulator and a plain AT client on it."""

    def __init__(self, world_file: str, flash: str):
        self.emu = Emulator(world=world_file, flash=flash, baudrate=FAST, boot_delay=0.02,
                            pace_input=False, seed=1).start()
        self.port = serial.serial_for_url(self.emu.url, baudrate=FAST, timeout=0.02)
        self.at = AT(self.port)
        self.at.wait_ready()
        self.raw(b"ATE0")

    def raw(self, line: bytes, timeout: float = 10.0) -> bytes:
        """Send a line; the answer up to its final result (data after a `>` prompt answered)."""
        at = self.at
        at.port.write(line + b"\r\n")
        try:
            req: Optional[P.Request] = P.parse_request(line)
        except P.RequestError:
            req = None
        prompting = req is not None and req.form == "set" and (
            req.name in PROMPTING or (req.name in PEM_UPLOADS and req["mode"] == 1))

        def done(b: bytes):
            m = FINAL.search(b)
            if m and not (prompting and m.group(1) == b"OK"):
                return ("final", m.end())
            if prompting and b.rstrip(b" ").endswith(b">"):
                return ("prompt", len(b))
            return None

        out = b""
        while True:
            kind, end = at.read_until(done, timeout)
            out += at.buf[:end]
            at.buf = at.buf[end:]
            if kind == "final":
                return out
            # a prompt: give the data the command waits for
            assert req is not None
            n = req.params.get("length")
            at.port.write(b"z" * n if n else b"-----END CERTIFICATE-----\r\n")
            prompting = False
            if req.name == "CIPSENDBUF":
                return out   # its acknowledgement comes later, as a message (the link is UDP here: ERROR)

    def close(self) -> None:
        self.port.close()
        self.emu.stop()


def disruptive(case: Case) -> bool:
    """An accepted line that would reset the module or move its UART rate."""
    if case.name not in DISRUPTIVE or not codec_accepts(case.line):
        return False
    if case.name.startswith("UART") and case.line.count(b",") == 4:
        return not case.line.split(b"=", 1)[1].startswith(b"%d," % FAST)
    return True


#: after a line of these commands, put the state back so the rest of the run sees the same module
RESTORE = {
    "CIPMODE": [b"AT+CIPMODE=0"],
    "CWMODE_CUR": [b"AT+CWMODE_CUR=3"], "CWMODE_DEF": [b"AT+CWMODE_CUR=3"], "CWMODE": [b"AT+CWMODE_CUR=3"],
    "UART_CUR": [b"AT+UART_CUR=2000000,8,1,0,0"], "UART_DEF": [b"AT+UART_CUR=2000000,8,1,0,0"],
    "UART": [b"AT+UART_CUR=2000000,8,1,0,0"], "SLEEP": [b"AT+SLEEP=0"],
    "WPS": [b"AT+WPS=0"], "CWSTARTSMART": [b"AT+CWSTOPSMART"],
}


def run(cases: List[Case], world_file: str, tmp_path, mux: int) -> Dict[bytes, Tuple[bytes, List[str]]]:
    """Each case's answer and the handler exceptions it caused, on a module in station+SoftAP
    mode, joined, with CIPMUX=`mux` and a UDP link open (so link commands reach their data)."""
    answers: Dict[bytes, Tuple[bytes, List[str]]] = {}
    n = [0]

    def fresh() -> Module:
        n[0] += 1
        return Module(world_file, str(tmp_path / f"flash-{mux}-{n[0]}.json"))

    with Rejections() as catcher:
        m = fresh()
        try:
            for line in (b"AT+CWMODE_CUR=3", b'AT+CWJAP_CUR="wizsock-lab","wizsock123"',
                         b"AT+CIPMUX=%d" % mux, b"AT+SYSIOSETCFG=3,1,0", b"AT+SYSGPIODIR=3,1",
                         b'AT+CIPSTART=%s"UDP","127.0.0.1",9' % (b"0," if mux else b"")):
                answer = m.raw(line)
                assert lines(answer)[-1] == b"OK", (line, answer)
            assert not catcher.take()
            for case in cases:
                if disruptive(case):
                    one = fresh()
                    try:
                        answers[case.line] = (one.raw(case.line), catcher.take())
                    finally:
                        one.close()
                    continue
                answers[case.line] = (m.raw(case.line), catcher.take())
                for line in RESTORE.get(case.name, ()):
                    m.raw(line)
                catcher.take()
        finally:
            m.close()
    return answers


LINK_COMMANDS = {name for name, spec in P.COMMANDS.items()
                 if any("link" in s.names for f in spec.forms.values() for s in f.sigs)}


def test_emulator_accepts_what_the_codec_accepts(tmp_path):
    cases = [c for c in all_cases() if c.name not in ("E0", "E1")]
    wf = world(tmp_path)
    problems = []
    accepted = refused = 0
    for mux in (0, 1):
        batch = cases if mux == 0 else [c for c in cases if c.name in LINK_COMMANDS]
        answers = run(batch, wf, tmp_path, mux)
        for case in batch:
            answer, raised = answers[case.line]
            if not codec_accepts(case.line):
                refused += 1
                if lines(answer) != [b"ERROR"] or raised:
                    problems.append(f"mux={mux} codec refuses {case}, emulator answered {answer!r} {raised}")
            else:
                accepted += 1
                if raised:
                    problems.append(f"mux={mux} codec accepts {case}, a handler refused it: {raised} -> {answer!r}")
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} in all)"
    # the cases reach both sides of every bound
    assert accepted > 500 and refused > 1000, (accepted, refused)


def test_encoder_accepts_what_the_parser_accepts():
    """The host side refuses what the module refuses: same typed values, same verdict."""
    disagree = []
    checked = 0
    for case in all_cases():
        if case.kw is None or "=" not in case.line.decode("utf-8"):
            continue
        spec = P.COMMANDS[case.name]
        try:
            encoded: Optional[bytes] = spec.set(**case.kw).encode()
        except (P.RequestError, TypeError):
            encoded = None
        checked += 1
        if (encoded is not None) != codec_accepts(case.line):
            disagree.append(f"{case}: encoder {'accepts' if encoded else 'refuses'}")
        elif encoded is not None and P.parse_request(encoded).params != P.parse_request(case.line).params:
            disagree.append(f"{case}: encoder wrote {encoded!r}")
    assert not disagree, "\n".join(disagree[:40])
    assert checked > 1000


# ----------------------------------------------------------------------------- no validators of its own

HANDLER_MODULES = ("commands.py", "net.py", "mqtt.py", "services.py", "netconfig.py", "atparse.py")
#: names of the removed helpers: their return would mean a second validator again
VALIDATOR_NAMES = {"I", "S", "IP", "MAC", "nargs", "args", "_link_arg"}
#: (module, function) that may raise ValueError, and why (none of them judges a command line)
VALUE_ERRORS_ALLOWED: Dict[Tuple[str, str], str] = {}


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_handler_modules_define_no_validators():
    src = ROOT / "wizsock/emulator"
    found = []
    for name in HANDLER_MODULES:
        tree = ast.parse((src / name).read_text(), name)
        for fn in _functions(tree):
            if fn.name in VALIDATOR_NAMES:
                found.append(f"{name}: defines {fn.name}()")
            for node in ast.walk(fn):
                if (isinstance(node, ast.Raise) and node.exc is not None
                        and isinstance(getattr(node.exc, "func", None), ast.Name)
                        and node.exc.func.id in ("ValueError", "RequestError", "TypeError")
                        and (name, fn.name) not in VALUE_ERRORS_ALLOWED):
                    found.append(f"{name}:{node.lineno}: {fn.name}() raises {node.exc.func.id}")
        for node in ast.walk(tree):
            # handlers read req.params; the positional split of the line is gone
            if isinstance(node, ast.Attribute) and node.attr == "args" and \
                    isinstance(node.value, ast.Name) and node.value.id in ("ctx", "self"):
                found.append(f"{name}:{node.lineno}: reads {node.value.id}.args")
            # a format check of its own (a MAC or address regex, ipaddress parsing a parameter)
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.endswith("_RE")
                                                    for t in node.targets):
                found.append(f"{name}:{node.lineno}: defines a format regex")
    assert not found, "\n".join(found)
