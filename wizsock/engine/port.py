"""Opening the module's port, and what a failure to open it means (docs/design.md 3c).

A failed open raises a :class:`wizsock.errors.PortError` (an ``OSError``) whose
``errno`` says why and whose ``__cause__`` is the operating system's own error, in
place of pyserial's ``SerialException`` (whose text and errno vary by cause, and
whose cause is only an implicit ``__context__``).
"""
from __future__ import annotations

import errno
import os
from typing import Any, Dict, List, Optional, Tuple, Type

import serial

from .. import errors as E

__all__ = ["open_port", "port_error", "holders", "is_device_path"]

#: errno of a failed open -> (error class, the words for it)
_REASONS: Dict[int, Tuple[Type[E.PortError], str]] = {
    errno.ENOENT: (E.PortNotFound, "no such device"),
    errno.ENODEV: (E.PortNotFound, "no such device"),
    errno.ENXIO: (E.PortNotFound, "no such device (nothing is behind it)"),
    errno.EACCES: (E.PortAccessDenied, "permission denied"),
    errno.EPERM: (E.PortAccessDenied, "permission denied"),
    errno.EBUSY: (E.PortBusy, "busy: another program holds it"),
    # pyserial's exclusive lock (flock LOCK_NB) held by someone else
    errno.EWOULDBLOCK: (E.PortBusy, "busy: another program holds it locked"),
    errno.ENOTTY: (E.PortError, "not a serial device"),
    errno.EISDIR: (E.PortError, "a directory, not a serial device"),
    errno.EINVAL: (E.PortError, "invalid port or setting"),
}


def is_device_path(port: Any) -> bool:
    """A local device path (``/dev/ttyUSB0``), not a pyserial URL (``socket://``, ``spy://``)."""
    return isinstance(port, str) and "://" not in port


def open_port(url: str, **kw: Any) -> serial.SerialBase:
    """``serial.serial_for_url(url, **kw)``, blocking; a failure raises PortError.

    On POSIX a device is opened with pyserial's ``exclusive=True`` (an ``flock``
    lock, unless ``kw`` says otherwise): a second program that opens the same
    port the same way -- another wizsock, pyserial's miniterm with ``--exclusive``
    -- gets ``PortBusy`` at once instead of both reading half of every answer."""
    if os.name == "posix" and is_device_path(url):
        kw.setdefault("exclusive", True)
    try:
        return serial.serial_for_url(url, **kw)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise port_error(url, exc) from root_cause(exc)


def root_cause(exc: BaseException) -> BaseException:
    """The operating system's error under pyserial's (its implicit ``__context__``)."""
    seen: List[BaseException] = []
    e: Optional[BaseException] = exc
    while e is not None and e not in seen:
        seen.append(e)
        if e is not exc and _errno_of(e) is not None:
            return e
        e = e.__cause__ or e.__context__
    return exc


def _errno_of(exc: BaseException) -> Optional[int]:
    code = getattr(exc, "errno", None)
    if isinstance(code, int):
        return code
    # termios.error (not an OSError) carries (errno, text) in its args
    if type(exc).__name__ == "error" and exc.args and isinstance(exc.args[0], int):
        return int(exc.args[0])
    return None


def port_error(url: Any, exc: BaseException) -> E.PortError:
    """The PortError for a failed open of ``url`` (``exc``: what pyserial raised)."""
    root = root_cause(exc)
    code = _errno_of(exc)
    if code is None:
        code = _errno_of(root)
    if code is None:
        code = errno.EINVAL if isinstance(exc, ValueError) else errno.EIO
    cls, words = _REASONS.get(code, (E.PortError, os.strerror(code).lower()))
    detail = _strip_errno(str(root))
    if code in (errno.EINVAL, errno.EIO) and detail and detail.lower() != words:
        # (the words alone say too little: which setting, what the URL handler said)
        words = f"{words} ({detail})"
    port = url if isinstance(url, str) else str(getattr(url, "port", url))
    if cls is E.PortBusy:
        found = holders(port)
        if found:
            words += " (open in " + ", ".join(found) + ")"
        return E.PortBusy(errno.EBUSY, f"cannot open {port}: {words}", port=port, holders=found)
    return cls(code, f"cannot open {port}: {words}", port=port)


def _strip_errno(text: str) -> str:
    # "[Errno 22] Invalid argument" / "(25, 'Inappropriate ioctl for device')" -> the words
    if text.startswith("[Errno") and "] " in text:
        return text.split("] ", 1)[1]
    if text.startswith("(") and ", '" in text:
        return text.split(", '", 1)[1].rstrip("')")
    return text


def holders(path: str) -> List[str]:
    """The processes with ``path`` open, as ``"pid N (name)"``: those whose descriptors
    this user may list in /proc (Linux; elsewhere, or for a URL, none)."""
    if not is_device_path(path) or not os.path.isdir("/proc/self/fd"):
        return []
    try:
        target = os.path.realpath(path)
        os.stat(target)
    except OSError:
        return []
    found: List[str] = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:          # gone, or another user's
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") == target:
                    break
            except OSError:
                continue
        else:
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                name = f.read().strip()
        except OSError:
            name = "?"
        found.append(f"pid {pid} ({name})" + (" (this process)" if int(pid) == os.getpid() else ""))
    return found
