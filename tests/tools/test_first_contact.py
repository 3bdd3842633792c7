"""Issue 22: what a new user meets first -- a wrong port, no permission, nothing connected,
another baud rate, a port another program holds, a wrong network or password.

One table: for each case the exception every entry point raises (``Module``,
``open_module``, ``patch``: an ``OSError`` of ``wizsock.errors``, never an exception
group), and for ``wizsock run`` and two tools one line on stderr, the documented exit
code and no traceback.  Each entry point and command gets a port of its own (the
engine opens devices with an exclusive lock), and a case's invocations run at once:
the slowest, a silent pty, costs one baud hunt (about 5.5 s) rather than six.
"""
import contextlib
import errno
import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import tty
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import pytest

from conftest import require
from tools.conftest import ROOT, env
from wizsock.emulator.core import Emulator

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "first_contact.py")
ENTRIES = ("Module", "open_module", "patch")
EMULATOR_AP = ("wizsock-lab", "wizsock123")       # the default world's access point
#: the program `wizsock run` starts: printed only if it ever starts
STARTED = "program started"


@dataclass
class Port:
    path: str
    holder: Optional[int] = None       # pid of the process holding it


# ---------------------------------------------------------------------------- ports
@contextlib.contextmanager
def no_such_port():
    yield Port("/dev/ttyNOPE-wizsock")


@contextlib.contextmanager
def dev_null():
    yield Port("/dev/null")


@contextlib.contextmanager
def silent_pty():
    """A pty with nothing behind it: what the host writes is never read, never answered."""
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        yield Port(os.ttyname(slave))
    finally:
        os.close(master)
        os.close(slave)


def device_group() -> grp.struct_group:
    for name in ("dialout", "uucp", "tty"):
        with contextlib.suppress(KeyError):
            return grp.getgrnam(name)
    raise AssertionError("no dialout, uucp or tty group on this host")


@contextlib.contextmanager
def forbidden_pty():
    """A serial device of the dialout group (mode 0660), as udev makes /dev/ttyUSB0."""
    with silent_pty() as port:
        os.chown(port.path, 0, device_group().gr_gid)
        os.chmod(port.path, 0o660)
        yield port


@contextlib.contextmanager
def emulator_pty(baud=115200):
    emu = Emulator(baudrate=baud).start()
    try:
        yield Port(emu.serve_pty(strict_baud=True))
    finally:
        emu.stop()


@contextlib.contextmanager
def _held(exclusive, then="pass"):
    with emulator_pty() as port:
        os.chmod(port.path, 0o666)      # (anyone may open it: only the holder stands in the way)
        holder = subprocess.Popen(
            [sys.executable, "-c", "import fcntl, serial, sys, termios; "
             f"p = serial.Serial({port.path!r}, 115200, exclusive={exclusive}); {then}; "
             "print('held', flush=True); sys.stdin.read()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env())
        try:
            assert holder.stdout.readline().strip() == "held"
            yield Port(port.path, holder=holder.pid)
        finally:
            holder.kill()
            holder.wait()


@contextlib.contextmanager
def locked_pty():
    """The module's port, held by another program with pyserial's exclusive lock (flock)."""
    with _held(True) as port:
        yield port


@contextlib.contextmanager
def exclusive_mode_pty():
    """The module's port in exclusive mode (TIOCEXCL): only root may open it again."""
    with _held(False, "fcntl.ioctl(p.fd, termios.TIOCEXCL)") as port:
        yield port


# ---------------------------------------------------------------------------- the table
@dataclass
class Case:
    name: str
    port: Callable[[], Any]
    api: Dict[str, Any]                   # fields the entry points' exception must have
    code: int                             # exit code of run and the tools
    line: List[str]                       # what the one line on stderr says
    tools: List[List[str]]                # two tools (PORT: the port)
    baud: int = 115200
    ssid: Optional[str] = None
    password: str = ""
    unprivileged: bool = False
    extra: Dict[str, Callable[[Dict[str, Any], Port], bool]] = field(default_factory=dict)


NO_MODULE_TOOLS = [["scan", "--port", "PORT"], ["join", "some-net", "--port", "PORT"]]
JOIN_TOOLS = [["join", "SSID", "--port", "PORT", "--password-stdin"],
              ["socks", "--port", "PORT", "--ssid", "SSID", "--listen", "127.0.0.1:0"]]

CASES = [
    Case("no such port", no_such_port,
         api={"type": "PortNotFound", "errno": errno.ENOENT, "cause": "FileNotFoundError",
              "families": ["FileNotFoundError", "WizError"]},
         code=3, line=["cannot open /dev/ttyNOPE-wizsock: no such device"],
         tools=NO_MODULE_TOOLS),
    Case("permission denied", forbidden_pty, unprivileged=True,
         api={"type": "PortAccessDenied", "errno": errno.EACCES, "cause": "PermissionError",
              "families": ["PermissionError", "WizError"]},
         code=3, line=["permission denied", "which user", "sudo usermod -aG"],
         tools=NO_MODULE_TOOLS),
    Case("not a serial device", dev_null,
         api={"type": "PortError", "errno": errno.ENOTTY, "families": ["WizError", "OSError"]},
         code=3, line=["cannot open /dev/null: not a serial device"], tools=NO_MODULE_TOOLS),
    Case("nothing behind the port", silent_pty,
         api={"type": "ModuleUnresponsive", "errno": errno.ETIMEDOUT,
              "families": ["TimeoutError", "WizError"]},
         code=3, line=["no answer to AT on /dev/pts/",
                       "at any of the 17 baud rates tried (115200, 921600,", "check the wiring"],
         tools=NO_MODULE_TOOLS,
         extra={"all 17 rates tried": lambda out, port: len(out["rates"]) == 17}),
    Case("module at another baud rate (found by the hunt)", emulator_pty, baud=921600,
         api={"type": None, "uart": 921600},   # found at 115200, then switched to 921600
         code=0, line=[], tools=[["scan", "--port", "PORT"], ["info", "--port", "PORT"]]),
    Case("port held by another program", locked_pty,
         api={"type": "PortBusy", "errno": errno.EBUSY, "families": ["WizError", "OSError"]},
         code=3, line=["busy: another program holds it", "close the program that has it"],
         tools=NO_MODULE_TOOLS,
         extra={"the holder is named": lambda out, port: any(
             h.startswith(f"pid {port.holder} ") for h in out["holders"])}),
    Case("port in exclusive mode (TIOCEXCL)", exclusive_mode_pty, unprivileged=True,
         api={"type": "PortBusy", "errno": errno.EBUSY, "families": ["WizError", "OSError"]},
         code=3, line=["busy: another program holds it", "close the program that has it"],
         tools=NO_MODULE_TOOLS),
    Case("unknown network", emulator_pty, ssid="no-such-network", password="whatever-pw",
         api={"type": "JoinError", "code": 3, "families": ["CommandError", "WizError"]},
         code=4, line=["joining 'no-such-network' failed: cannot find the target AP"],
         tools=JOIN_TOOLS),
    Case("wrong password", emulator_pty, ssid=EMULATOR_AP[0], password="not-the-password",
         api={"type": "JoinError", "code": 2, "families": ["CommandError", "WizError"]},
         code=4, line=["failed: wrong password", "check the password"], tools=JOIN_TOOLS),
]

#: what only `wizsock run` and `wizsock join` add (they scan after a failed join)
SCANNED_HINT = {"unknown network": "networks in range: 'wizsock-lab'"}


# ---------------------------------------------------------------------------- running
@pytest.fixture(scope="module")
def as_user():
    """The command prefix that runs a process as an unprivileged user."""
    require(os.geteuid() == 0, "root, to make devices another user may not open")
    require(shutil.which("setpriv") is not None, "setpriv (util-linux)")
    users = {u.pw_name: u for u in pwd.getpwall()}
    if "nobody" not in users and "wizsock-test" not in users:
        subprocess.run(["useradd", "--system", "--no-create-home", "wizsock-test"], check=True)
        users["wizsock-test"] = pwd.getpwnam("wizsock-test")
    user = users.get("nobody") or users["wizsock-test"]
    # The interpreter may live where only root may look (this host's is under /root):
    # the process may read and search everywhere (CAP_DAC_READ_SEARCH) but writes only
    # as its user, so a read-write open of a device is the user's to be refused.
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
            "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]


def _spawn(argv, case, prefix, stdin_text=None):
    e = env(WIZSOCK_PASSWORD=case.password)
    e.pop("WIZSOCK_SSID", None)
    e.pop("WIZSOCK_DEBUG", None)
    # stdin from a file, there at once: all of a case's invocations run together
    with tempfile.TemporaryFile("w+") as stdin:
        stdin.write(stdin_text or "")
        stdin.seek(0)
        return subprocess.Popen(prefix + [sys.executable] + argv, stdin=stdin,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=e, cwd=ROOT)


def _commands(case, port):
    """`wizsock run` and the case's two tools, on ``port``."""
    common = ["--port", port.path, "--baudrate", str(case.baud)]
    run = ["-m", "wizsock", "run", *common]
    if case.ssid:
        run += ["--ssid", case.ssid]
    run += ["--", "-c", f"print({STARTED!r})"]
    out = [("run", run, None)]
    for tool in case.tools:
        argv = [case.ssid if a == "SSID" else a for a in tool]
        argv = [port.path if a == "PORT" else a for a in argv]
        argv = argv[:1] + ["--baudrate", str(case.baud)] + argv[1:]
        stdin = case.password + "\n" if "--password-stdin" in argv else None
        out.append((tool[0], ["-m", "wizsock", *argv], stdin))
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_first_contact(case, request):
    prefix = request.getfixturevalue("as_user") if case.unprivileged else []
    with contextlib.ExitStack() as stack:
        jobs = []
        for entry in ENTRIES:
            port = stack.enter_context(case.port())
            argv = [PROBE, entry, port.path, str(case.baud)] + ([case.ssid] if case.ssid else [])
            jobs.append((f"api {entry}", port, _spawn(argv, case, prefix)))
        commands = []
        for i, _ in enumerate(_commands(case, Port("?"))):
            port = stack.enter_context(case.port())
            name, argv, stdin = _commands(case, port)[i]
            commands.append((name, port, _spawn(argv, case, prefix, stdin)))
        results = {}
        for what, port, p in jobs + commands:
            out, err = p.communicate(timeout=90)
            results[what] = (port, p.returncode, out, err)

    for entry in ENTRIES:
        port, code, out, err = results[f"api {entry}"]
        assert code == 0 and "Traceback" not in err, (entry, err)
        got = json.loads(out)
        assert got["type"] == case.api["type"], (entry, got)
        if got["type"] is not None:
            assert got["oserror"] and got["wizerror"] and not got["group"], (entry, got)
        for key, want in case.api.items():
            if key == "families":
                assert set(want) <= set(got["families"]), (entry, got)
            else:
                assert got[key] == want, (entry, key, got)
        for what, check in case.extra.items():
            assert check(got, port), (entry, what, got)
        if case.password:
            assert case.password not in out + err

    for name, _, _ in _commands(case, Port("?")):
        port, code, out, err = results[name]
        assert code == case.code, (name, code, err)
        assert "Traceback" not in err, (name, err)
        lines = [line for line in err.splitlines() if line.strip()]
        if case.code == 0:
            assert lines == [], (name, err)
            if name == "run":
                assert out.strip() == STARTED
            continue
        assert len(lines) == 1, (name, err)
        assert lines[0].startswith(f"wizsock {name}: "), (name, lines)
        for words in case.line:
            assert words in lines[0], (name, words, lines)
        if name in ("run", "join") and case.name in SCANNED_HINT:
            assert SCANNED_HINT[case.name] in lines[0], (name, lines)
        assert STARTED not in out
        if case.password:
            assert case.password not in out + err, name


def test_debug_shows_the_traceback():
    """--debug (global, or after the command's name) and WIZSOCK_DEBUG=1: the traceback
    down to the operating system's error, then the same line."""
    line = "wizsock scan: cannot open /dev/ttyNOPE-wizsock: no such device"
    for argv, extra in ((["--debug", "scan"], {}), (["scan", "--debug"], {}),
                        (["scan"], {"WIZSOCK_DEBUG": "1"})):
        p = subprocess.run([sys.executable, "-m", "wizsock", *argv, "--port",
                            "/dev/ttyNOPE-wizsock"],
                           capture_output=True, text=True, timeout=60, env=env(**extra), cwd=ROOT)
        assert p.returncode == 3, p.stderr
        assert "Traceback" in p.stderr and "FileNotFoundError" in p.stderr
        assert "ExceptionGroup" not in p.stderr
        assert p.stderr.strip().splitlines()[-1].startswith(line), p.stderr


@pytest.mark.parametrize("argv, words", [
    ([], "wizsock run: no program given"),
    (["--", "-m"], "wizsock run: -m needs a module name"),
    (["--", "/nonexistent-wizsock/app.py"], "wizsock run: can't open file"),
])
def test_run_usage_errors_exit_2(argv, words):
    """Before the program starts, a command line without one is a usage error (2), as
    for the tools, in one line."""
    p = subprocess.run([sys.executable, "-m", "wizsock", "run", *argv], capture_output=True,
                       text=True, timeout=60, env=env(), cwd=ROOT)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(words), p.stderr
