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
import os
import runpy
import sys
import threading

__all__ = ["add_arguments", "run", "parse_program"]


def add_arguments(parser):
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
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log wizsock's activity (-vv: the AT traffic too)")
    parser.add_argument("--trace", default=None, metavar="FILE",
                        help="record the UART traffic, secrets masked, to FILE (mode 0600); "
                             "read it with `wizsock trace FILE`")
    parser.add_argument("program", nargs=argparse.REMAINDER,
                        help="-- then the program: [python] script.py ARGS | -m module ARGS | -c code")


def _is_python(word):
    base = os.path.basename(word)
    return word == sys.executable or base.startswith("python") and not base.endswith(".py")


def parse_program(argv):
    """``[python] script.py args | -m mod args | -c code args`` -> (kind, target, argv)."""
    argv = list(argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if argv and _is_python(argv[0]):
        argv = argv[1:]
    while argv and argv[0] in ("-u", "-B", "-E", "-s", "-S", "-I", "-X") :
        argv = argv[2:] if argv[0] == "-X" else argv[1:]
    if not argv:
        raise SystemExit("wizsock run: no program given (wizsock run -- script.py ARGS)")
    if argv[0] == "-m":
        if len(argv) < 2:
            raise SystemExit("wizsock run: -m needs a module name")
        return "module", argv[1], [argv[1]] + argv[2:]
    if argv[0] == "-c":
        if len(argv) < 2:
            raise SystemExit("wizsock run: -c needs code")
        return "code", argv[1], ["-c"] + argv[2:]
    if argv[0].startswith("-"):
        raise SystemExit(f"wizsock run: unsupported interpreter option {argv[0]!r}")
    return "script", argv[0], argv


def _route_policy(networks):
    if not networks:
        return None
    import ipaddress

    nets = [ipaddress.IPv4Network(n, strict=False) for n in networks]

    def route(ip, port, type_):
        addr = ipaddress.IPv4Address(ip)
        return not any(addr in n for n in nets)
    return route


def _wait_for_threads():
    """Like the interpreter at exit: wait for the program's non-daemon threads."""
    me = threading.current_thread()
    for t in threading.enumerate():
        if t is not me and not t.daemon and t.is_alive():
            t.join()


def _exit_code(exc):
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run(args):
    import logging

    from wizsock import patch as _patch

    kind, target, prog_argv = parse_program(args.program)
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
    module = _patch.open_default_module(args.port, ssid=args.ssid, password=args.password,
                                        baudrate=args.baudrate, **options)
    _patch.patch(module, route=_route_policy(args.kernel))
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
        _patch.unpatch()
        module.close()
    return code
