"""``wizsock term [--port URL] [--baudrate N] [--trace FILE]``: an interactive AT terminal.

Type AT commands as in any serial terminal; they go through the engine (the one
owner of the UART), so ``+IPD`` data, link events and WiFi messages keep arriving,
and are shown marked ``«`` above the line being typed.  Tab completes command
names (and the values of parameters that have a fixed set); the toolbar shows the
parameters of the command being typed; ``help NAME`` prints what the spec says.
History persists across sessions (``--history``, mode 0600) with passwords masked.
With no ``--port`` the in-process emulator is used, joined to its default network.
"""
from __future__ import annotations

import argparse
import codecs
import os
import re
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Type, Union

from wizsock import protocol as P
from wizsock.engine.trace import event_line, open_private
from wizsock.protocol.grammar import CommandSpec, Param, Sig
from wizsock.framer import Data, Info, LinkEvent, Ready, SendBufAck, Subscription, Wifi

from . import common as C

__all__ = ["add_arguments", "run", "Terminal", "describe_command", "lookup", "spec_section", "ipd_text",
           "mask_history_line"]

PROMPT_COMMANDS = frozenset({"CIPSEND", "CIPSENDEX", "CIPSENDBUF", "CASEND", "CLICASEND",
                             "AWSPKSEND"})
PEM_COMMANDS = frozenset({"CASEND", "CLICASEND", "AWSPKSEND"})
#: set forms that would take the UART away from the engine (it runs CIPMUX=1, command mode,
#: at the rate it opened the port with)
REFUSED = {
    "CIPMUX": "the engine runs the module with AT+CIPMUX=1",
    "CIPMODE": "passthrough takes the whole UART (use m.net.passthrough() from Python)",
    "UART_CUR": "the host side would keep the old rate (restart wizsock term with --baudrate)",
    "UART_DEF": "the host side would not follow a new rate after a restart",
    "SAVETRANSLINK": "a module that starts in passthrough cannot be driven by the engine",
}
_STA_INFO = frozenset({"STA_CONNECTED", "DIST_STA_IP", "STA_DISCONNECTED"})
SPEC_ENV = "WIZSOCK_SPEC"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[1]
    C.add_module_arguments(parser, json_output=False)
    parser.add_argument("--history", default=None, metavar="FILE",
                        help="history file (default ~/.local/state/wizsock/term_history)")
    parser.add_argument("--hexdump", action="store_true",
                        help="show every +IPD payload as a hex dump (default: text previews)")
    parser.add_argument("--spec", default=os.environ.get(SPEC_ENV), metavar="FILE",
                        help="the AT instruction set as text, quoted by `help NAME` "
                             f"(env {SPEC_ENV})")
    parser.add_argument("--no-color", action="store_true", help="no colours")


# ----------------------------------------------------------------------------- help text

def _param_text(p: Any) -> str:
    kind = getattr(p, "kind", "param")
    bits: List[str] = []
    choices = getattr(p, "choices", None)
    if choices:
        bits.append("one of " + ", ".join(map(str, choices)))
    elif kind == "int":
        lo, hi = getattr(p, "lo", None), getattr(p, "hi", None)
        if lo is not None and hi is not None:
            bits.append(f"integer {lo}..{hi}")
        elif lo is not None:
            bits.append(f"integer >= {lo}")
        else:
            bits.append("integer")
    else:
        what = getattr(p, "what", "") or ("string" if kind == "str" else kind)
        lo, hi = getattr(p, "min_len", 0), getattr(p, "max_len", None)
        size = (f", {hi} bytes" if lo and lo == hi else f", {lo}-{hi} bytes" if lo and hi
                else f", up to {hi} bytes" if hi else "")
        quoted = getattr(p, "quoted", False)
        bits.append(what + (" (quoted)" if quoted else "") + size)
    if p.optional:
        bits.append("optional")
    if p.secret:
        bits.append("secret: masked in history and traces")
    if p.doc:
        bits.append(p.doc)
    return "; ".join(bits)


def _signature(spec: CommandSpec, form: str, sig: Union[Sig, Type[_NoSig]]) -> str:
    head = spec.prefix
    if form == "query":
        return head + "?"
    if form == "test":
        return head + "=?"
    if form == "execute" or not sig.params:
        return head
    parts = []
    for i, p in enumerate(sig.params):
        text = ("" if i == 0 else ",") + f"<{p.name}>"
        parts.append(f"[{text}" if p.optional else text)
    closing = "]" * sum(1 for p in sig.params if p.optional)
    when = ("   when " + ", ".join(f"{k} is {'/'.join(map(str, v))}" for k, v in sig.when.items())
            if sig.when else "")
    return head + "=" + "".join(parts) + closing + when


def lookup(name: str) -> Any:
    """The table entry for ``CWJAP_CUR``, ``AT+cwjap_cur``, ``AT``, ``ATE0``; None if unknown."""
    key = name.strip().upper()
    if not key:
        return None
    if key.startswith("AT+"):
        key = key[3:]
    elif key in ("AT", "ATE0", "ATE1"):
        key = key[2:]
    return P.COMMANDS.get(key)


def describe_command(name: str) -> Optional[str]:
    """What the codec's table knows about a command (forms, parameters, ranges)."""
    spec = lookup(name)
    if spec is None:
        return None
    since = ".".join(map(str, spec.since))
    out = [f"{spec.prefix}: {spec.doc}",
           f"  spec section {spec.section}; firmware {since} or later"
           + (f"; twin {spec.twin}" if spec.twin else "")]
    out.append("  forms:")
    params: Dict[str, Any] = {}
    for form in ("execute", "query", "set", "test"):
        f = spec.forms.get(form)
        if f is None:
            continue
        sigs = f.sigs or (None,)
        for sig in sigs:
            out.append(f"    {_signature(spec, form, sig) if sig else _signature(spec, form, _NoSig)}"
                       f"   ({form})")
            for p in (sig.params if sig else ()):
                params.setdefault(p.name, p)
    if params:
        out.append("  parameters:")
        w = max(len(n) for n in params)
        for n, p in params.items():
            out.append(f"    {n:<{w}}  {_param_text(p)}")
    return "\n".join(out)


class _NoSig:
    params: Tuple[Any, ...] = ()
    when: Dict[str, Any] = {}


_HEADING = re.compile(r"^(\d+(?:\.\d+)+)\s+\S")


def spec_section(path: Optional[str], section: str, limit: int = 60) -> Optional[str]:
    """The text of ``section`` (e.g. "3.2.3") in the spec's text file, or None."""
    if not path or not section:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    start = None
    for i, line in enumerate(lines):
        m = _HEADING.match(line)
        # the body's heading, not the table of contents' (which ends in a page number)
        if m and m.group(1) == section and not re.search(r"\t\d+\s*$", line):
            start = i
            break
    if start is None:
        return None
    body = [lines[start]]
    for line in lines[start + 1:]:
        if _HEADING.match(line):
            break
        body.append(line)
        if len(body) >= limit:
            body.append("...")
            break
    return "\n".join(l.replace("\t", "    ").rstrip() for l in body).strip()


# ----------------------------------------------------------------------------- +IPD display

def _printable(data: bytes) -> Optional[str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if all(c.isprintable() or c in "\r\n\t" for c in text):
        return text
    return None


def hexdump(data: bytes, limit: Optional[int] = 64) -> List[str]:
    shown = data if limit is None else data[:limit]
    out = []
    for off in range(0, len(shown), 16):
        chunk = shown[off:off + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        out.append(f"{off:04x}  {hexes:<47}  |{text}|")
    if len(shown) < len(data):
        out.append(f"... {len(data) - len(shown)} more bytes")
    return out


def ipd_text(ev: Any, full_hexdump: bool = False) -> List[str]:
    """``+IPD`` summarised: link, size, sender, then a text preview or a hex dump."""
    data = bytes(ev.payload)
    where = "" if ev.remote is None else f" from {ev.remote[0]}:{ev.remote[1]}"
    head = f"+IPD link {ev.link}: {len(data)} bytes{where}"
    text = None if full_hexdump else _printable(data)
    if text is not None:
        preview = text if len(text) <= 160 else text[:160]
        more = "" if len(text) <= 160 else f" ... (+{len(text) - 160} characters)"
        return [head + ": " + repr(preview) + more]
    return [head] + hexdump(data, None if full_hexdump else 64)


# ----------------------------------------------------------------------------- the terminal

class Terminal:
    """The terminal's logic (no I/O of its own: ``write`` prints one line)."""

    def __init__(self, module: Any, write: Callable[[str], None], *, color: bool = False,
                 full_hexdump: bool = False, spec_path: Optional[str] = None,
                 ask: Optional[Callable[[str], str]] = None):
        self.m = module
        self.write = write
        self.color = color
        self.full_hexdump = full_hexdump
        self.spec_path = spec_path
        self.ask = ask or input

    def use_prompt(self, ask: Callable[[str], str]) -> None:
        """Read lines with ``ask`` from now on (the line editor, once it is set up)."""
        self.ask = ask

    def style(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    # -- unsolicited messages: the engine's tap, on the engine's loop (never blocks)
    def on_tap(self, kind: str, item: Any, command: Optional[str]) -> None:
        if kind != "rx":
            return
        cls = type(item)
        if cls is Data:
            lines = ipd_text(item, self.full_hexdump)
            self.write(self.style("33", "« " + lines[0]))
            for line in lines[1:]:
                self.write(self.style("33", "  " + line))
            return
        urc = (cls in (Ready, Wifi, Subscription, SendBufAck)
               or (cls is LinkEvent and item.link is not None)
               or (cls is Info and item.name in _STA_INFO))
        if urc or command is None:
            if cls is Subscription:
                text = f"{item.topic} -> " + (_printable(bytes(item.data)) or
                                              f"<{len(item.data)} bytes>")
            else:
                text = event_line(item, redact=False)
            self.write(self.style("1;33" if cls is Ready else "36", "« " + text))

    # -- one input line
    def execute(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        low = line.lower()
        if low in ("quit", "exit"):
            raise EOFError
        if low == "help" or low == "?":
            self.write(HELP)
            return
        if low.startswith("help "):
            self.help(line[5:].strip())
            return
        if not low.startswith("at"):
            self.write(self.style("31", f"not an AT command: {line!r} (type help)"))
            return
        line = normalise(line)
        try:
            req = P.parse_request(line, mux=self.m.engine.mux)
        except P.RequestError as exc:
            self.write(self.style("31", f"not sent: {exc}"))
            return
        if req.form == "set" and req.name in REFUSED:
            self.write(self.style("31", f"not sent: {REFUSED[req.name]}"))
            return
        payload = None
        # data follows the ">" of these (not AT+CASEND=0 and friends, which delete)
        if req.name in PROMPT_COMMANDS and req.form == "set" and not (
                req.name in PEM_COMMANDS and req.params.get("mode") != 1):
            payload = self._payload(req)
            if payload is None:
                return
        self.run(req, payload)

    def run(self, req: Any, payload: Optional[bytes] = None) -> None:
        from wizsock import errors as E
        t0 = time.monotonic()
        try:
            with C.progress_for(self.m):
                resp = self.m.command(req, check=False, payload=payload)
        except E.CommandTimeout as exc:
            self.write(self.style("1;31", f"no answer: {exc}"))
            return
        except E.WizError as exc:
            self.write(self.style("1;31", f"failed: {exc}"))
            return
        took = time.monotonic() - t0
        for text in resp.lines():
            self.write(text)
        result = resp.result or "?"
        good = result in ("OK", "SEND OK")
        self.write(self.style("1;32" if good else "1;31", result)
                   + self.style("2", f"  ({C.fmt_ms(took)})"))

    def _payload(self, req: Any) -> Optional[bytes]:
        if req.name in PEM_COMMANDS:
            path = self.ask("PEM file to upload: ").strip()
            try:
                with open(os.path.expanduser(path), encoding="ascii") as f:
                    return P.pem_upload(req.name, f.read())
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                self.write(self.style("31", f"not sent: {exc}"))
                return None
        n = req.params.get("length")
        text = self.ask(f"data ({n} bytes; \\r \\n \\xNN escapes)> ")
        try:
            data = codecs.escape_decode(text.encode("utf-8"))[0]
        except ValueError as exc:
            self.write(self.style("31", f"not sent: {exc}"))
            return None
        if n is not None and (len(data) != n if req.name != "CIPSENDEX" else len(data) > n):
            self.write(self.style("31", f"not sent: {len(data)} bytes of data for length {n}"))
            return None
        return data

    def help(self, name: str) -> None:
        text = describe_command(name)
        if text is None:
            self.write(self.style("31", f"no command {name!r} in the table (type help)"))
            return
        self.write(text)
        section = spec_section(self.spec_path, lookup(name).section)
        if section:
            self.write(self.style("2", "  from the spec:"))
            for line in section.splitlines():
                self.write("    " + line)


def normalise(line: str) -> str:
    """Upper-case ``at+cwjap_cur`` up to the first ``=``/``?`` (values keep their case)."""
    m = re.match(r"^([A-Za-z0-9_+]*)(.*)$", line, re.S)
    assert m is not None
    return m.group(1).upper() + m.group(2)


HELP = """\
Type AT commands (AT, AT+GMR, AT+CWJAP_CUR="ssid","password", ...); Tab completes names.
  help NAME        what the spec says about a command (forms, parameters, ranges)
  quit / Ctrl-D    leave
Unsolicited messages are marked «; +IPD data is previewed (--hexdump: full hex dumps).
AT+CIPSEND and friends ask for the data; AT+CASEND=1 and friends for a PEM file."""


# ----------------------------------------------------------------------------- prompt_toolkit

def _history_path(arg: Optional[str]) -> str:
    if arg:
        return arg
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                             "state")
    return os.path.join(base, "wizsock", "term_history")


def mask_history_line(line: str) -> str:
    """What the history keeps of a line: secrets masked (passwords, keys)."""
    text = normalise(line.strip())
    return P.redact(text.encode("utf-8", "surrogateescape")).decode("utf-8", "replace")


def _names() -> List[str]:
    return sorted(spec.prefix for spec in P.COMMANDS.values())


def _param_position(rest: str) -> Tuple[int, str]:
    """(index of the parameter being typed, its text so far) in ``rest`` after ``=``."""
    index, start, quoted, escaped = 0, 0, False, False
    for i, ch in enumerate(rest):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            index, start = index + 1, i + 1
    return index, rest[start:]


def params_at(name: str, index: int) -> List[Param]:
    spec = P.COMMANDS.get(name)
    if spec is None or "set" not in spec.forms:
        return []
    seen: Dict[str, Param] = {}
    for sig in spec.forms["set"].sigs:
        if index < len(sig.params):
            seen.setdefault(sig.params[index].name, sig.params[index])
    return list(seen.values())


def _make_prompt(term: Terminal, history_file: str) -> Any:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import Completer, Completion
    from prompt_toolkit.history import FileHistory

    os.makedirs(os.path.dirname(os.path.abspath(history_file)), mode=0o700, exist_ok=True)
    open_private(history_file, "a").close()

    class MaskedHistory(FileHistory):
        def append_string(self, string: str) -> None:
            super().append_string(mask_history_line(string))

    class ATCompleter(Completer):
        def get_completions(self, document: Any, complete_event: Any) -> Iterable[Any]:
            text = document.text_before_cursor
            m = re.match(r"^\s*help\s+(\S*)$", text, re.I)
            if m:
                word = m.group(1).upper()
                for spec in sorted(P.COMMANDS.values(), key=lambda s: s.name):
                    if spec.name and spec.name.startswith(word):
                        yield Completion(spec.name, -len(m.group(1)), display_meta=spec.doc)
                return
            if re.match(r"^[Aa][Tt][+A-Za-z0-9_]*$", text):
                up = text.upper()
                for full in _names():
                    if full.startswith(up):
                        known = P.COMMANDS.get(full[3:] if full.startswith("AT+") else
                                               ("" if full == "AT" else full[2:]))
                        yield Completion(full, -len(text),
                                         display_meta=getattr(known, "doc", ""))
                return
            m = re.match(r"^[Aa][Tt]\+([A-Za-z0-9_]+)=(.*)$", text)
            if m:
                index, partial = _param_position(m.group(2))
                for p in params_at(m.group(1).upper(), index):
                    for c in (getattr(p, "choices", None) or ()):
                        word = P.quote(c) if isinstance(c, str) and getattr(p, "quoted", False) \
                            else str(c)
                        if word.startswith(partial):
                            yield Completion(word, -len(partial), display_meta=p.name)

    def toolbar() -> Any:
        from prompt_toolkit.formatted_text import HTML
        from html import escape
        text = session.default_buffer.document.text_before_cursor
        h = re.match(r"^\s*help\s+(\S+)$", text, re.I)
        if h:
            spec = lookup(h.group(1))
            return HTML(escape("help: " + (spec.doc if spec is not None else "no such command")))
        m = re.match(r"^[Aa][Tt]\+([A-Za-z0-9_]+)(=?)(.*)$", text)
        if not m:
            return HTML("Tab: complete  help NAME: the spec  Ctrl-D: quit")
        spec = P.COMMANDS.get(m.group(1).upper())
        if spec is None:
            return HTML("unknown command")
        if not m.group(2) or "set" not in spec.forms:
            return HTML(escape(f"{spec.prefix}: {spec.doc}"))
        index, _ = _param_position(m.group(3))
        ps = params_at(spec.name, index)
        if not ps:
            return HTML(escape(f"{spec.prefix}: no parameter {index + 1}"))
        return HTML(" | ".join(f"<b>{escape(p.name)}</b>: {escape(_param_text(p))}" for p in ps))

    session: Any = PromptSession(history=MaskedHistory(history_file), completer=ATCompleter(),
                                 bottom_toolbar=toolbar, complete_while_typing=False)
    return session


def run(args: argparse.Namespace) -> int:
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if interactive:
        try:
            import prompt_toolkit  # noqa: F401
        except ImportError:
            print("wizsock term needs prompt_toolkit: pip install 'wizsock[term]'",
                  file=sys.stderr)
            return C.EXIT_USAGE

    def body(m: Any) -> int:
        color = interactive and not args.no_color and os.environ.get("NO_COLOR") is None

        def write(text: str) -> None:
            print(text, flush=True)

        term = Terminal(m, write, color=color, full_hexdump=args.hexdump, spec_path=args.spec)
        remove = m.engine.add_tap(term.on_tap)
        try:
            if interactive:
                return _interactive(term, m, _history_path(args.history))
            term.ask = lambda prompt: sys.stdin.readline().rstrip("\r\n")
            while True:
                line = sys.stdin.readline()
                if not line:
                    break
                try:
                    term.execute(line)
                except EOFError:
                    break
            return C.EXIT_OK
        finally:
            remove()
    return C.run_tool("term", args, body)


def _interactive(term: Terminal, m: Any, history_file: str) -> int:
    from prompt_toolkit.patch_stdout import patch_stdout

    session = _make_prompt(term, history_file)
    term.use_prompt(lambda prompt: session.prompt(prompt))
    print(f"wizsock term on {m.port} (firmware {m.firmware}); help, Tab, Ctrl-D to quit",
          flush=True)
    with patch_stdout(raw=True):
        while True:
            try:
                line = session.prompt("wizfi360> ")
            except KeyboardInterrupt:
                continue
            except EOFError:
                break
            try:
                term.execute(line)
            except EOFError:
                break
            except KeyboardInterrupt:
                term.write("interrupted (a command already sent runs to its end on the module)")
    return C.EXIT_OK
