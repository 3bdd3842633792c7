"""`wizsock` command line: each subcommand lives with the part it drives."""
import argparse
import importlib
import os
import sys
from typing import List, Optional

DEBUG_ENV = "WIZSOCK_DEBUG"
EXIT_CODES = ("exit codes: 0 done (run: the program's own code once it started), 1 failed, "
              "2 usage, 3 no module (the port cannot be opened, nothing answers), 4 joining "
              "the network failed, 5 not connected, 6 ping: no reply, 130 interrupted")

# subcommand -> (module, help); the module has add_arguments(parser) and run(args) -> int
SUBCOMMANDS = {
    "run": ("wizsock.run", "run a Python program with its networking over the module"),
    "emulator": ("wizsock.emulator.cli", "run the software WizFi360 on a pty or TCP port"),
    "demo": ("wizsock.demo", "fetch a page over HTTPS with unmodified requests through the emulated module"),
    "socks": ("wizsock.socks", "a SOCKS5 proxy whose connections go over the module (curl, git, ssh, browsers)"),
    "term": ("wizsock.tools.term", "interactive AT terminal on a module (the emulator by default)"),
    "scan": ("wizsock.tools.scan", "list the WiFi networks the module sees"),
    "join": ("wizsock.tools.join", "join a WiFi network"),
    "status": ("wizsock.tools.status", "WiFi connection, address and links of the module"),
    "ping": ("wizsock.tools.ping", "ping a host from the module"),
    "info": ("wizsock.tools.info", "firmware, MAC and IP addresses, UART settings of the module"),
    "trace": ("wizsock.tools.trace", "render a UART trace recorded with --trace"),
    "check": ("wizsock.tools.check", "hold a module against the emulator: differences and a timing profile"),
}


def version_line() -> str:
    """What `wizsock --version` prints: the version, and which framer this install runs on."""
    from wizsock import __version__
    from wizsock.framer import COMPILED
    framer = "compiled framer" if COMPILED else "pure-Python framer"
    return f"wizsock {__version__} ({framer}, Python {sys.version.split()[0]})"


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="wizsock", description=__doc__,
                                     epilog=EXIT_CODES)
    debug_help = f"on a failure, show the traceback too (env {DEBUG_ENV}=1)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    parser.add_argument("--version", action="version", version=version_line())
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (modname, help_) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_)
        p.set_defaults(_module=modname)
        try:
            importlib.import_module(modname).add_arguments(p)
        except ImportError:
            pass
        # (also after the subcommand's name; SUPPRESS: it never unsets the global one)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help=debug_help)
    args = parser.parse_args(argv)
    if args.debug:
        os.environ[DEBUG_ENV] = "1"     # (child processes of --isolate see it too)
    try:
        result: int = importlib.import_module(args._module).run(args)
        return result
    except SystemExit:
        raise
    except BaseException as exc:
        # whatever a subcommand lets out: one line and the documented exit code
        from wizsock.tools.explain import report
        return report(args.command, exc)
