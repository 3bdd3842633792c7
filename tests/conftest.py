import ipaddress
import os
import socket

import pytest

# Under CI a missing component (mosquitto, the compiled framer, ...) is a failure, never a skip.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition, what):
    """Skip locally, fail under CI, when a test's real component is missing."""
    if not condition:
        if IN_CI:
            pytest.fail(f"required component missing under CI: {what}")
        pytest.skip(f"missing: {what}")


# Tests talk to loopback only. The host's resolver is a server off this machine, so a
# name lookup that reaches it is already traffic to a forbidden address. The guard
# wraps the real functions before wizsock (whose _orig saves them) is imported, answers
# such lookups as "name unknown" and fails the test that made them.
_foreign_lookups = []


def _is_local(host):
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = host.rstrip(".").lower()
    if host in ("", "localhost") or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host.split("%")[0])
        return True
    except ValueError:
        return False


def _guard(real):
    def guarded(host, *args, **kwargs):
        # AI_NUMERICHOST never queries a resolver (trio and asyncio probe with it first).
        flags = kwargs.get("flags", args[4] if len(args) > 4 else 0)
        if not _is_local(host) and not flags & socket.AI_NUMERICHOST:
            _foreign_lookups.append(host)
            raise socket.gaierror(socket.EAI_NONAME, f"test guard: no lookups of {host!r} off this machine")
        return real(host, *args, **kwargs)

    guarded.__wrapped__ = real
    return guarded


# (once: test modules that `from conftest import require` import this file a second
# time, as a module of its own; wrapping again would leave socket.getaddrinfo a guard
# that wizsock._orig never saw, and wizsock.unpatch() restore another one)
if not hasattr(socket.getaddrinfo, "__wrapped__"):
    socket.getaddrinfo = _guard(socket.getaddrinfo)
    socket.gethostbyname = _guard(socket.gethostbyname)


@pytest.fixture(autouse=True)
def _no_lookups_off_this_machine():
    del _foreign_lookups[:]
    yield
    if _foreign_lookups:
        names = sorted(set(map(str, _foreign_lookups)))
        del _foreign_lookups[:]
        pytest.fail(f"name lookups would have left the machine: {names}")
