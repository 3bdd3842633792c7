"""pyserial URL handler `wizemu://[name][?baud=N&rtt=MS&world=F&flash=F&faults=SPEC&seed=N&boot=S&pace_input=0&jitter=MS&segment_limit=N]`.

`wizemu://` starts a private emulator for this port (stopped at close);
`wizemu://<name>` attaches to a running `wizsock.emulator.Emulator` of that name.
The port models a UART: if the host's `baudrate` differs from the module's
current rate, both directions turn to garbage; `rts=False` stops the module's
output while AT+UART_CUR flow control is on.
"""
from __future__ import annotations

import threading
import time
import urllib.parse

import serial
from serial import PortNotOpenError, SerialBase, SerialException

from wizsock.emulator.transports import garble


class Serial(SerialBase):
    def __init__(self, *args, **kwargs):
        self._emu = None
        self._own = False
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._cancel_read = False
        super().__init__(*args, **kwargs)

    # ---------------------------------------------------------------- open
    def open(self):
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise SerialException("Port is already open.")
        from wizsock.emulator import core

        url = urllib.parse.urlsplit(self._port)
        if url.scheme != "wizemu":
            raise SerialException(f"expected a wizemu:// URL, got {self._port!r}")
        name = url.netloc + url.path.strip("/")
        opts = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        known = {"baud", "rtt", "world", "flash", "faults", "seed", "boot", "log", "pace_input", "jitter", "segment_limit"}
        unknown = set(opts) - known
        if unknown:
            raise SerialException(f"unknown wizemu option(s): {', '.join(sorted(unknown))}")
        if name:
            emu = core.find(name)
            if emu is None:
                raise SerialException(f"no running emulator named {name!r}")
            self._own = False
        else:
            emu = core.Emulator(
                world=opts.get("world"), flash=opts.get("flash"),
                rtt=float(opts.get("rtt", 0)) / 1000.0,
                baudrate=int(opts.get("baud", self._baudrate)),
                faults=opts.get("faults"),
                seed=int(opts["seed"]) if "seed" in opts else None,
                boot_delay=float(opts.get("boot", 0.05)),
                log_traffic=opts.get("log") in ("1", "true", "yes"),
                pace_input=opts.get("pace_input", "1") not in ("0", "false", "no"),
                jitter=float(opts.get("jitter", 0)) / 1000.0, segment_limit=int(opts.get("segment_limit", 65535)),
            )
            emu.start()
            self._own = True
        self._emu = emu
        emu.attach(self._sink)
        self.is_open = True
        self._update_rts_state()

    def _reconfigure_port(self, force_update=False):
        pass  # a baud rate change is seen by _sink/write through self._baudrate

    def close(self):
        if not self.is_open:
            return
        self.is_open = False
        emu, self._emu = self._emu, None
        if emu is not None:
            emu.detach(self._sink)
            if self._own:
                emu.stop()
        with self._cond:
            self._cond.notify_all()

    @property
    def emulator(self):
        return self._emu

    # ------------------------------------------------------------ the wire
    def _sink(self, data: bytes, baud: int):  # emulator thread
        if baud != self._baudrate:
            data = garble(data, baud, self._baudrate)
        with self._cond:
            self._buf += data
            self._cond.notify_all()

    @property
    def in_waiting(self):
        if not self.is_open:
            raise PortNotOpenError()
        with self._cond:
            return len(self._buf)

    def read(self, size=1):
        if not self.is_open:
            raise PortNotOpenError()
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        with self._cond:
            self._cancel_read = False
            while len(self._buf) < size and self.is_open and not self._cancel_read:
                if deadline is None:
                    self._cond.wait()
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            self._cancel_read = False
            out = bytes(self._buf[:size])
            del self._buf[:size]
            return out

    def write(self, data):
        if not self.is_open:
            raise PortNotOpenError()
        data = serial.to_bytes(data)
        emu = self._emu
        if data:
            # At the wrong baud rate the module receives garbage, but the host still
            # sent every byte it was given: the count is the caller's, as on a real UART.
            emu.feed(data if emu.baud == self._baudrate else garble(data, self._baudrate, emu.baud))
        return len(data)

    def flush(self):
        pass

    def reset_input_buffer(self):
        with self._cond:
            self._buf.clear()

    def reset_output_buffer(self):
        pass

    def cancel_read(self):
        with self._cond:
            self._cancel_read = True
            self._cond.notify_all()

    def cancel_write(self):
        pass

    def _update_rts_state(self):
        if self._emu is not None:
            self._emu.set_rts(self._rts_state)

    def _update_dtr_state(self):
        pass

    def _update_break_state(self):
        pass

    @property
    def cts(self):
        return True

    @property
    def dsr(self):
        return True

    @property
    def ri(self):
        return False

    @property
    def cd(self):
        return True
