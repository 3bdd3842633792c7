"""`wizsock` command line: each subcommand lives with the part it drives."""
import argparse
import importlib
import sys

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


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="wizsock", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (modname, help_) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_)
        p.set_defaults(_module=modname)
        try:
            importlib.import_module(modname).add_arguments(p)
        except ImportError:
            pass
    args = parser.parse_args(argv)
    return importlib.import_module(args._module).run(args)
