"""``wizsock run [--port URL] [options] -- PROGRAM [ARGS...]``

Runs an unmodified Python program in this process with wizsock.patch()
installed before its first import, so its sockets, name lookups and TLS go over
the module.  PROGRAM is a script (script.py), -m module or -c code, optionally
preceded by python/python3/the interpreter's path, as you would type it.  With
no --port, the in-process emulator (wizemu://) is started and joined to its
default access point, so this works with no hardware.
"""
from __future__ import annotations

import argparse
import importlib.abc
import os
import runpy
import sys
import threading
import types
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Set, Tuple

if TYPE_CHECKING:
    from wizsock.tools.common import ToolError

__all__ = ["add_arguments", "run", "parse_program", "BYPASSING", "IsolationError"]

#: libraries that open their own sockets (or resolve names) in C, where the patch cannot
#: reach: on an ordinary host their traffic silently uses the host's network
BYPASSING = {
    "pycurl": "libcurl opens its own sockets and resolves names in C",
    "grpc": "gRPC's C core opens its own sockets and resolves names itself",
    "pycares": "c-ares resolves names over its own sockets",
    "aiodns": "it resolves names through c-ares, over its own sockets",
    "zmq": "libzmq opens its own sockets",
    "psycopg2": "libpq connects in C",
    "MySQLdb": "libmysqlclient connects in C",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[1]
    parser.add_argument("--port", default=None,
                        help="serial port of the module (anything pyserial opens: /dev/ttyUSB0, "
                             "socket://host:port, rfc2217://...); default: the in-process emulator")
    parser.add_argument("--baudrate", type=int, default=None,
                        help="UART rate (default 115200; 921600 for the emulator)")
    parser.add_argument("--ssid", default=os.environ.get("WIZSOCK_SSID"),
                        help="join this WiFi network first (env WIZSOCK_SSID)")
    parser.add_argument("--password", default=os.environ.get("WIZSOCK_PASSWORD", ""),
                        help="its password (env WIZSOCK_PASSWORD)")
    parser.add_argument("--flow-control", action="store_true",
                        help="RTS/CTS hardware flow control (AT+UART_CUR ...,1)")
    parser.add_argument("--no-sendbuf", action="store_true",
                        help="stop-and-wait AT+CIPSEND instead of AT+CIPSENDBUF")
    parser.add_argument("--kernel", action="append", default=[], metavar="NET",
                        help="keep destinations in this IPv4 network (e.g. 10.0.0.0/8) on the "
                             "host's own network; repeatable")
    parser.add_argument("--world", metavar="FILE", default=None,
                        help="world file for the emulator (no --port): access points, dns names")
    parser.add_argument("--isolate", action="store_true",
                        help="run the program in a private network namespace with only a loopback "
                             "device (Linux; root or unprivileged user namespaces), so anything that "
                             "does not go through the module fails instead of using this host's network")
    parser.add_argument("--reclaim-idle", action="store_true",
                        default=os.environ.get("WIZSOCK_RECLAIM_IDLE", "") not in ("", "0", "no", "false"),
                        help="when a connect finds all five links busy, close the longest-idle "
                             "connection with nothing in flight (as its peer could); env WIZSOCK_RECLAIM_IDLE=1")
    parser.add_argument("--in-private-netns", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log wizsock's activity (-vv: the AT traffic too)")
    parser.add_argument("--trace", default=None, metavar="FILE",
                        help="record the UART traffic, secrets masked, to FILE (mode 0600); "
                             "read it with `wizsock trace FILE`")
    parser.add_argument("program", nargs=argparse.REMAINDER,
                        help="-- then the program: [python] script.py ARGS | -m module ARGS | -c code")


def _is_python(word: str) -> bool:
    base = os.path.basename(word)
    return word == sys.executable or base.startswith("python") and not base.endswith(".py")


def _usage(message: str) -> ToolError:
    from wizsock.tools.common import EXIT_USAGE, ToolError

    return ToolError(message, EXIT_USAGE)


def parse_program(argv: Sequence[str]) -> Tuple[str, str, List[str]]:
    """``[python] script.py args | -m mod args | -c code args`` -> (kind, target, argv).

    A command line without a program raises ``wizsock.tools.common.ToolError`` (exit 2)."""
    argv = list(argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if argv and _is_python(argv[0]):
        argv = argv[1:]
    while argv and argv[0] in ("-u", "-B", "-E", "-s", "-S", "-I", "-X") :
        argv = argv[2:] if argv[0] == "-X" else argv[1:]
    if not argv:
        raise _usage("no program given (wizsock run -- script.py ARGS)")
    if argv[0] == "-m":
        if len(argv) < 2:
            raise _usage("-m needs a module name")
        return "module", argv[1], [argv[1]] + argv[2:]
    if argv[0] == "-c":
        if len(argv) < 2:
            raise _usage("-c needs code")
        return "code", argv[1], ["-c"] + argv[2:]
    if argv[0].startswith("-"):
        raise _usage(f"unsupported interpreter option {argv[0]!r}")
    return "script", argv[0], argv


def _route_policy(networks: Optional[Sequence[str]]) -> Optional[Callable[[str, int, int], bool]]:
    if not networks:
        return None
    import ipaddress

    nets = [ipaddress.IPv4Network(n, strict=False) for n in networks]

    def route(ip: str, port: int, type_: int) -> bool:
        addr = ipaddress.IPv4Address(ip)
        return not any(addr in n for n in nets)
    return route


def _wait_for_threads() -> None:
    """Like the interpreter at exit: wait for the program's non-daemon threads."""
    me = threading.current_thread()
    for t in threading.enumerate():
        if t is not me and not t.daemon and t.is_alive():
            t.join()


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


class IsolationError(OSError):
    """No private network namespace could be made (not root, no user namespaces)."""


_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000


def _unshare(flags: int) -> int:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(ctypes.c_int(flags)) != 0:
        return ctypes.get_errno()
    return 0


def enter_private_netns() -> None:
    """Move this (single-threaded) process into a new network namespace whose only
    device is loopback, up.  As root directly; otherwise inside a new user namespace
    (the same uid and gid mapped), where the kernel allows unprivileged ones."""
    import errno

    if not sys.platform.startswith("linux"):
        raise IsolationError(errno.ENOSYS, "wizsock run --isolate needs Linux network namespaces")
    err = _unshare(_CLONE_NEWNET)
    if err:
        uid, gid = os.getuid(), os.getgid()
        err2 = _unshare(_CLONE_NEWUSER | _CLONE_NEWNET)
        if err2:
            raise IsolationError(
                err2, "wizsock run --isolate: cannot create a private network namespace: "
                f"unshare(CLONE_NEWNET) failed ({os.strerror(err)}: not root?) and an unprivileged "
                f"user namespace is not available ({os.strerror(err2)}). Run as root, or allow user "
                "namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces, "
                "kernel.apparmor_restrict_unprivileged_userns=0)")
        for path, text in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"{uid} {uid} 1"),
                           ("/proc/self/gid_map", f"{gid} {gid} 1")):
            try:
                with open(path, "w") as f:
                    f.write(text)
            except OSError:
                pass    # (an old kernel without setgroups; the maps are what matter)
    _loopback_up()


def _loopback_up() -> None:
    import fcntl
    import socket
    import struct

    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    from wizsock import _orig

    with _orig.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(s, SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | IFF_UP))


def _child_command(args: argparse.Namespace, port: str, baudrate: Optional[int],
                   ssid: Optional[str]) -> List[str]:
    cmd = [sys.executable, "-m", "wizsock", "run", "--in-private-netns", "--port", port]
    if baudrate:
        cmd += ["--baudrate", str(baudrate)]
    if ssid is not None:
        cmd += ["--ssid", ssid]         # the password goes in the environment, not argv
    if args.flow_control:
        cmd.append("--flow-control")
    if args.no_sendbuf:
        cmd.append("--no-sendbuf")
    if args.reclaim_idle:
        cmd.append("--reclaim-idle")
    for net in args.kernel:
        cmd += ["--kernel", net]
    if args.verbose:
        cmd.append("-" + "v" * args.verbose)
    program = list(args.program)
    if program and program[0] == "--":
        program = program[1:]
    return cmd + ["--"] + program


def _run_isolated(args: argparse.Namespace) -> int:
    """The module stays outside, the program goes in: the emulator (or the serial
    device) is reached over a tty, which no network namespace hides; the program runs
    in a child process that enters a private namespace before anything else."""
    import signal
    import subprocess

    from wizsock import patch as _patch

    parse_program(args.program)   # a bad command line fails here, before anything starts
    port, ssid, password, baudrate = args.port, args.ssid, args.password, args.baudrate
    emu = None
    if port is None:
        from wizsock.emulator.core import Emulator

        baudrate = baudrate or _patch.EMULATOR_BAUD
        emu = Emulator(world=args.world, baudrate=baudrate)
        emu.start()
        port = emu.serve_pty()
        if ssid is None:
            ssid, password = _patch.EMULATOR_AP
    elif "://" in port and not port.startswith("file://"):
        print(f"wizsock run --isolate: the module's port {port!r} is reached over a network, "
              "which the private namespace does not have: give a serial device (/dev/ttyUSB0), "
              "or no --port for the emulator", file=sys.stderr)
        return 2
    env = dict(os.environ)
    env["WIZSOCK_PASSWORD"] = password or ""
    try:
        proc = subprocess.Popen(_child_command(args, port, baudrate, ssid), env=env)
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                proc.send_signal(signal.SIGINT)   # (the terminal sent it to the child too)
    finally:
        if emu is not None:
            emu.stop()


def _importer() -> str:
    """The module whose import statement is running (past importlib's own frames)."""
    f: Optional[types.FrameType] = sys._getframe(2)
    while f is not None and (f.f_code.co_filename.startswith("<frozen") or "importlib" in f.f_code.co_filename):
        f = f.f_back
    return (f.f_globals.get("__name__") or "") if f is not None else ""


class _BypassWatch(importlib.abc.MetaPathFinder):
    """Says once, at import, that a library will bypass the module."""

    def __init__(self, isolated: bool) -> None:
        self.isolated = isolated
        self.warned: Set[str] = set()

    def _exists(self, name: str, path: Optional[Sequence[str]], target: Optional[types.ModuleType]) -> bool:
        # (a try-import of a library that is not installed bypasses nothing)
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            try:
                if finder.find_spec(name, path, target) is not None:
                    return True
            except Exception:
                continue
        return False

    def find_spec(self, name: str, path: Optional[Sequence[str]] = None,
                  target: Optional[types.ModuleType] = None) -> None:
        top = name.partition(".")[0]
        why = BYPASSING.get(top)
        if why and top in ("aiodns", "pycares") and _importer().startswith("aiohttp"):
            return None   # aiohttp's optional import: its default resolver is getaddrinfo's
        if why and top not in self.warned and self._exists(name, path, target):
            self.warned.add(top)
            if self.isolated:
                print(f"wizsock run: {top} bypasses the module ({why}); in this private network "
                      "namespace its connections fail", file=sys.stderr, flush=True)
            else:
                print(f"wizsock run: warning: {top} bypasses the module ({why}): its traffic uses "
                      "this host's own network, not the WizFi360. Use `wizsock run --isolate` to "
                      "make such traffic fail instead of leaking.", file=sys.stderr, flush=True)
        return None


def run(args: argparse.Namespace) -> int:
    import logging

    if args.isolate and not args.in_private_netns:
        return _run_isolated(args)
    if args.in_private_netns:
        try:
            enter_private_netns()
        except IsolationError as e:
            print(e.strerror or str(e), file=sys.stderr)
            return 1

    from wizsock.facade import reclaim as _reclaim
    from wizsock import patch as _patch

    kind, target, prog_argv = parse_program(args.program)
    if args.reclaim_idle:
        _reclaim.set_reclaim_idle(True)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else logging.INFO,
                            format="%(asctime)s %(name)s %(message)s")
        if args.verbose < 2:
            logging.getLogger("wizsock.engine.at").setLevel(logging.INFO)
    options = {}
    if args.flow_control:
        options["flow_control"] = True
    if args.no_sendbuf:
        options["use_sendbuf"] = False
    if args.trace:
        options["trace"] = args.trace
    # (a failure here, before the program starts, reaches wizsock.cli.main: one line and
    # the tools' exit code -- 3 no module, 4 joining failed; see wizsock.tools.explain)
    module = _patch.open_default_module(args.port, ssid=args.ssid, password=args.password,
                                        baudrate=args.baudrate, world=args.world,
                                        scan_if_join_fails=True, **options)
    _patch.patch(module, route=_route_policy(args.kernel))
    watch = _BypassWatch(args.in_private_netns)
    sys.meta_path.insert(0, watch)
    saved_argv, saved_path0 = sys.argv[:], sys.path[0] if sys.path else None
    sys.argv = prog_argv
    code = 0
    try:
        try:
            if kind == "module":
                sys.path.insert(0, os.getcwd())
                runpy.run_module(target, run_name="__main__", alter_sys=True)
            elif kind == "code":
                sys.path.insert(0, "")
                exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})
            else:
                script = os.path.abspath(target)
                if not os.path.exists(script):
                    print(f"wizsock run: can't open file {target!r}", file=sys.stderr)
                    return 2
                sys.path.insert(0, os.path.dirname(script))
                runpy.run_path(script, run_name="__main__")
            _wait_for_threads()
        except SystemExit as exc:
            code = _exit_code(exc)
        except KeyboardInterrupt:
            code = 130
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
    finally:
        sys.argv = saved_argv
        if saved_path0 is not None and sys.path and sys.path[0] != saved_path0:
            sys.path.pop(0)
        if watch in sys.meta_path:
            sys.meta_path.remove(watch)
        _patch.unpatch()
        module.close()
    return code
