"""Wake-ups at an exact moment for the emulator's UART pacers.

A trio sleep ends on an epoll timeout, which the kernel counts in whole
milliseconds (rounded up): a byte due in 0.1 ms would be handed over a
millisecond late, and a command's answer (`> ` after AT+CIPSENDBUF) would cost
the host a tick of idle wire every time.  On Linux a timerfd armed for the
absolute moment fires within microseconds and costs one descriptor wait, as a
sleep does; elsewhere the last stretch before the moment is spun on trio
checkpoints (the pacer only asks for that while it has bytes queued, so an idle
emulator stays idle).
"""
from __future__ import annotations

import ctypes
import os
import sys
import time
from typing import Any, Callable, Optional, Tuple

import trio

#: a wait shorter than this is spun where there is no timerfd (epoll's ticks are 1 ms)
SPIN = 0.0015

_yield_cpu: Callable[[], None] = getattr(os, "sched_yield", lambda: None)

_CLOCK_MONOTONIC = 1        # time.monotonic()'s clock on Linux
_TFD_TIMER_ABSTIME = 1
_TFD_NONBLOCK = 0o4000
_TFD_CLOEXEC = 0o2000000


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc_timerfd() -> Optional[Tuple[Any, Any]]:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        create, settime = libc.timerfd_create, libc.timerfd_settime
    except (OSError, AttributeError):
        return None
    create.argtypes = [ctypes.c_int, ctypes.c_int]
    settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
    return create, settime


_LIBC: Any = None


def _open_timerfd() -> Optional[Tuple[int, Callable[[int, float], None]]]:
    """(fd, arm(fd, t)) for a non-blocking timerfd on CLOCK_MONOTONIC, or None."""
    os_create = getattr(os, "timerfd_create", None)        # Python 3.13+
    if os_create is not None:
        try:
            fd = os_create(time.CLOCK_MONOTONIC,
                           flags=getattr(os, "TFD_NONBLOCK") | getattr(os, "TFD_CLOEXEC"))
        except OSError:
            return None
        os_settime = getattr(os, "timerfd_settime")
        abstime = getattr(os, "TFD_TIMER_ABSTIME")

        def arm(fd: int, t: float) -> None:
            os_settime(fd, flags=abstime, initial=t)
        return fd, arm
    global _LIBC
    if _LIBC is None:
        _LIBC = _libc_timerfd() or False
    if not _LIBC:
        return None
    create, settime = _LIBC
    fd = create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
    if fd < 0:
        return None

    def arm_libc(fd: int, t: float) -> None:
        sec = int(t)
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(sec, max(1, int((t - sec) * 1e9))))
        if settime(fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    return fd, arm_libc


class PreciseClock:
    """`await clock.until(t)`: returns once ``time.monotonic() >= t``, late by the
    scheduler's wake-up latency only (not by a timer tick).  One per task; close()."""

    def __init__(self) -> None:
        opened = _open_timerfd()
        self._fd: Optional[int] = None
        self._arm: Optional[Callable[[int, float], None]] = None
        if opened is not None:
            self._fd, self._arm = opened

    @property
    def exact(self) -> bool:
        """True with a timerfd (no spinning)."""
        return self._fd is not None

    async def until(self, t: float, spin: float = 0.0) -> None:
        """Return at `t` (time.monotonic()).  The last `spin` seconds are spun on
        checkpoints rather than slept: a thread that slept wakes up on a cold CPU
        (code that then takes 20 us can take 150 on a virtual machine), and what
        the caller does next is on somebody's critical path."""
        fd = self._fd
        near = spin if fd is not None else max(spin, SPIN)
        while True:
            left = t - time.monotonic()
            if left <= 0:
                return
            if left <= near:
                _yield_cpu()         # whoever else wants this CPU (a tty worker) goes first
                await trio.lowlevel.checkpoint()
            elif fd is not None and self._arm is not None:
                # re-arming also clears an expiry a cancelled wait left behind
                self._arm(fd, t - spin)
                await trio.lowlevel.wait_readable(fd)
                try:
                    os.read(fd, 8)
                except BlockingIOError:
                    pass
            else:
                await trio.sleep(left - near)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                trio.lowlevel.notify_closing(fd)
            except RuntimeError:
                pass
            os.close(fd)

    def __enter__(self) -> "PreciseClock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
