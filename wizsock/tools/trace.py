"""``wizsock trace FILE``: read a UART trace recorded with ``--trace`` / ``trace=``.

Each command is shown once, at the time it was written, with the lines the module
answered, its result and how long it took; unsolicited messages are marked ``«``;
runs of ``+IPD`` on a link are summarised (packets, bytes); silences longer than
``--gap`` seconds, errors, unreadable bytes, busy answers, commands that got no
answer and module resets are highlighted ``!``.  The trace format is described in
:mod:`wizsock.engine.trace`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, TextIO, Tuple

from wizsock.engine.trace import FORMAT

__all__ = ["add_arguments", "run", "render", "load"]

FINAL = frozenset({"OK", "ERROR", "FAIL", "SEND OK", "SEND FAIL"})
FAILED = frozenset({"ERROR", "FAIL", "SEND FAIL"})
#: events that are unsolicited whatever command is in flight
URC_EVENTS = frozenset({"Data", "Ready", "Wifi", "Subscription", "SendBufAck"})
#: commands that print ">" and read data: an OK before the ">" is not their result
PROMPT_COMMANDS = frozenset({"CIPSEND", "CIPSENDEX", "CIPSENDBUF", "CASEND", "CLICASEND",
                             "AWSPKSEND"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Render a UART trace (wizsock ... --trace FILE): commands with their "
                          "answers and timings, unsolicited messages, +IPD summarised, gaps and "
                          "errors highlighted.")
    parser.add_argument("file", help="the trace (JSON lines); - for stdin")
    parser.add_argument("--gap", type=float, default=1.0,
                        help="mark silences longer than this many seconds (default 1)")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    parser.add_argument("--errors-only", action="store_true",
                        help="show only what is highlighted (errors, gaps, resets)")


@dataclass
class Item:
    t: float
    kind: str                       # cmd | urc | ipd | gap | note | garbage | text
    text: str
    lines: List[str] = field(default_factory=list)
    result: Optional[str] = None
    end: Optional[float] = None
    bad: bool = False
    name: Optional[str] = None
    link: Any = None
    packets: int = 0
    nbytes: int = 0
    prompted: bool = False


class TraceError(ValueError):
    """The file is not a wizsock UART trace."""


def load(stream: Iterable[str]) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """(header, records) of a trace; TraceError if it is not one."""
    header: Optional[Dict[str, Any]] = None
    records: List[Dict[str, Any]] = []
    for n, line in enumerate(stream, 1):
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            if header is None:
                raise TraceError(f"line {n} is not JSON: not a wizsock UART trace") from None
            records.append({"t": records[-1]["t"] if records else 0.0, "d": "!",
                            "note": f"line {n} of the trace is damaged"})
            continue
        if header is None:
            if not isinstance(rec, dict) or rec.get("trace") != FORMAT:
                raise TraceError(f"not a wizsock UART trace (expected a {FORMAT} header)")
            header = rec
            continue
        if isinstance(rec, dict) and isinstance(rec.get("t"), (int, float)):
            records.append(rec)
    if header is None:
        raise TraceError("empty file: not a wizsock UART trace")
    return header, records


def _is_urc(rec: Dict[str, Any], pending: Optional[Item]) -> bool:
    ev = rec.get("ev")
    if ev in URC_EVENTS or rec.get("cmd") is None or pending is None:
        return True
    if ev == "LinkEvent" and "," in rec.get("line", ""):
        return True          # <id>,CONNECT / <id>,CLOSED belong to a link, not a command
    if ev == "Info" and rec.get("line", "").split(":")[0] in (
            "+STA_CONNECTED", "+DIST_STA_IP", "+STA_DISCONNECTED"):
        return True
    return False


def build(records: List[Dict[str, Any]], gap: float = 1.0) -> List[Item]:
    """The records as display items, in time order."""
    builder = _Builder(gap)
    for rec in records:
        builder.add(rec)
    return builder.finish()


class _Builder:
    """Turns trace records into items: the command awaiting its answer (``pending``) and
    the run of +IPD being merged (``ipd``) are the state between records."""

    def __init__(self, gap: float) -> None:
        self.gap = gap
        self.items: List[Item] = []
        self.pending: Optional[Item] = None
        self.ipd: Optional[Item] = None
        self.last_t: Optional[float] = None

    def add(self, rec: Dict[str, Any]) -> None:
        t = float(rec["t"])
        self._quiet_since(t)
        d = rec.get("d")
        if d == "!":
            self.items.append(Item(t, "note", rec.get("note", ""), bad=True))
            self.ipd = None
        elif d == ">":
            self._from_host(rec, t)
        elif rec.get("ev") == "Data":
            self._data(rec, t)
        else:
            self.ipd = None
            self._from_module(rec, t)

    def finish(self) -> List[Item]:
        pending: Optional[Item] = self.pending
        if pending is not None and pending.result is None:
            pending.result = "no answer (trace ends)"
            pending.bad = True
        return self.items

    def _quiet_since(self, t: float) -> None:
        """A pause longer than ``gap`` is an item of its own."""
        last_t = self.last_t
        if last_t is not None and t - last_t > self.gap:
            self.items.append(Item(last_t, "gap", f"{t - last_t:.2f} s with no traffic", bad=True))
            self.ipd = None
        self.last_t = t

    def _from_host(self, rec: Dict[str, Any], t: float) -> None:
        pending: Optional[Item] = self.pending
        if "line" in rec:
            if pending is not None and pending.result is None:
                pending.bad = True
                pending.result = "no answer"
            self.pending = Item(t, "cmd", rec["line"], name=_name(rec["line"]))
            self.items.append(self.pending)
            self.ipd = None
        elif "data" in rec:
            what = (f"> {rec['data']} bytes" + (" (certificate/key, masked)"
                                                 if rec.get("masked") else ""))
            if pending is not None and pending.result is None:
                pending.lines.append(what)
                if pending.name == "CIPSENDBUF":    # the module answers nothing more
                    pending.result, pending.end = "OK", t
            else:
                self.items.append(Item(t, "text", f"{what} (passthrough data)"))

    def _data(self, rec: Dict[str, Any], t: float) -> None:
        """+IPD: consecutive packets of one link merge into one item."""
        ipd: Optional[Item] = self.ipd
        if ipd is not None and ipd.link == rec.get("link"):
            ipd.packets += 1
            ipd.nbytes += int(rec.get("len", 0))
            ipd.end = t
        else:
            remote = rec.get("remote")
            self.ipd = Item(t, "ipd", "" if not remote else f" from {remote[0]}:{remote[1]}",
                            link=rec.get("link"), packets=1, nbytes=int(rec.get("len", 0)), end=t)
            self.items.append(self.ipd)

    def _from_module(self, rec: Dict[str, Any], t: float) -> None:
        ev = rec.get("ev")
        if ev == "Garbage":
            self.items.append(Item(t, "garbage", f"{rec.get('len')} unreadable bytes from the module "
                                                 f"({rec.get('reason')})", bad=True))
            return
        line = rec.get("line", "")
        pending: Optional[Item] = self.pending
        if _is_urc(rec, pending) or pending is None or pending.result is not None:
            self.items.append(Item(t, "urc", line, bad=ev == "Ready"))
        else:
            _answer_line(pending, ev, line, t)


def _answer_line(pending: Item, ev: Optional[str], line: str, t: float) -> None:
    """A line of the pending command's answer."""
    if pending.name in PROMPT_COMMANDS and not pending.prompted and line in ("OK", ">"):
        pending.lines.append(line)          # CIPSEND prints OK, then ">"
        pending.prompted = line == ">"
    elif ev == "Result" and line in FINAL:
        pending.result = line
        pending.end = t
        pending.bad = line in FAILED
    elif ev == "Busy":
        pending.lines.append(line)
        pending.bad = True
    elif ev != "Echo":
        pending.lines.append(line)


def _name(line: str) -> str:
    if not line.startswith("AT"):
        return line
    rest = line[3:] if line.startswith("AT+") else line[2:]
    for sep in "=?":
        rest = rest.split(sep, 1)[0]
    return rest


class _Style:
    def __init__(self, color: bool):
        self.color = color

    def __call__(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text


def render(header: Dict[str, Any], items: List[Item], out: TextIO, *, color: bool = False,
           errors_only: bool = False) -> Dict[str, int]:
    """Print the items; returns counts (commands, errors, ipd_bytes, ...)."""
    s = _Style(color)
    out.write(s("1", f"UART trace of {header.get('port')} at {header.get('baudrate')} baud, "
                     f"started {header.get('start')} (wizsock {header.get('wizsock')})") + "\n")
    counts = {"commands": 0, "errors": 0, "unsolicited": 0, "ipd_packets": 0, "ipd_bytes": 0,
              "gaps": 0}
    for it in items:
        stamp = f"{it.t:10.3f}  "
        if it.kind == "cmd":
            counts["commands"] += 1
            counts["errors"] += it.bad
            if errors_only and not it.bad:
                continue
            took = "" if it.end is None else f"  {_ms(it.end - it.t)}"
            res = it.result or "?"
            res_text = s("1;31" if it.bad else "32", res)
            out.write(stamp + s("1", it.text) + f"  -> {res_text}{took}\n")
            for line in it.lines:
                out.write(" " * 12 + "| " + line + "\n")
        elif it.kind == "ipd":
            counts["ipd_packets"] += it.packets
            counts["ipd_bytes"] += it.nbytes
            if errors_only:
                continue
            span = "" if it.packets == 1 else f" over {_ms((it.end or it.t) - it.t)}"
            out.write(stamp + s("36", f"« +IPD link {it.link}: {it.packets} packet"
                                      f"{'s' if it.packets != 1 else ''}, {it.nbytes} bytes"
                                      f"{it.text}{span}") + "\n")
        elif it.kind == "urc":
            counts["unsolicited"] += 1
            if errors_only and not it.bad:
                continue
            out.write(stamp + s("1;33" if it.bad else "36", "« " + it.text) + "\n")
        elif it.kind == "gap":
            counts["gaps"] += 1
            out.write(stamp + s("1;33", f"! gap: {it.text}") + "\n")
        elif it.kind in ("note", "garbage"):
            counts["errors"] += 1
            out.write(stamp + s("1;31", f"! {it.text}") + "\n")
        else:
            if not errors_only:
                out.write(stamp + it.text + "\n")
    end = max((it.end or it.t for it in items), default=0.0)
    out.write(s("1", f"{counts['commands']} commands, {counts['errors']} errors, "
                     f"{counts['unsolicited']} unsolicited messages, {counts['ipd_packets']} +IPD "
                     f"({counts['ipd_bytes']} bytes), {counts['gaps']} gaps, {end:.2f} s") + "\n")
    return counts


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def run(args: argparse.Namespace) -> int:
    try:
        if args.file == "-":
            header, records = load(sys.stdin)
        else:
            with open(args.file, encoding="utf-8", errors="replace") as f:
                header, records = load(f)
    except OSError as exc:
        print(f"wizsock trace: {exc}", file=sys.stderr)
        return 2
    except TraceError as exc:
        print(f"wizsock trace: {args.file}: {exc}", file=sys.stderr)
        return 2
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty()
                                       and os.environ.get("NO_COLOR") is None)
    try:
        render(header, build(records, args.gap), sys.stdout, color=color,
               errors_only=args.errors_only)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
