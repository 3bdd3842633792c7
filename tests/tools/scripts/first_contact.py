"""Open a module the way a new user's program does; print what happened as JSON.

    python first_contact.py ENTRY PORT BAUDRATE [SSID]     (password: WIZSOCK_PASSWORD)

ENTRY is ``Module`` (blocking), ``open_module`` (trio) or ``patch`` (the facade). With
an SSID the module joins it. Run as its own process, so that tests/tools/
test_first_contact.py can run it as an unprivileged user.
"""
import json
import os
import sys

import trio

import wizsock
from wizsock import errors as E

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup


def via_module(port, baud, ssid, password):
    with wizsock.Module(port, baudrate=baud) as m:
        if ssid:
            m.wifi.set_mode(1)
            m.wifi.join(ssid, password)
        return m.system.uart_cur().baudrate


def via_open_module(port, baud, ssid, password):
    async def main():
        async with wizsock.open_module(port, baudrate=baud) as m:
            if ssid:
                await m.wifi.set_mode(1)
                await m.wifi.join(ssid, password)
            return (await m.system.uart_cur()).baudrate
    return trio.run(main)


def via_patch(port, baud, ssid, password):
    with wizsock.patched(port, baudrate=baud, ssid=ssid, password=password) as m:
        return m.system.uart_cur().baudrate


ENTRIES = {"Module": via_module, "open_module": via_open_module, "patch": via_patch}


def main():
    entry, port, baud = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ssid = sys.argv[4] if len(sys.argv) > 4 else None
    try:
        uart = ENTRIES[entry](port, baud, ssid, os.environ.get("WIZSOCK_PASSWORD", ""))
    except BaseException as exc:
        out = {"type": type(exc).__name__, "group": isinstance(exc, BaseExceptionGroup),
               "oserror": isinstance(exc, OSError), "wizerror": isinstance(exc, E.WizError),
               "families": [c.__name__ for c in type(exc).__mro__],
               "errno": getattr(exc, "errno", None), "message": str(exc),
               "cause": type(exc.__cause__).__name__ if exc.__cause__ else None}
        for field in ("rates", "holders", "code", "networks", "port"):
            if hasattr(exc, field):
                value = getattr(exc, field)
                out[field] = list(value) if isinstance(value, tuple) else value
    else:
        out = {"type": None, "uart": uart}
    print(json.dumps(out), flush=True)


main()
