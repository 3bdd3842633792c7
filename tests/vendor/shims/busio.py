"""CircuitPython's `busio.UART` over pyserial: only what the ESP-AT driver (PyPI) uses.

`tx` names the serial line (a pty path or pyserial URL); `rx` is ignored, as both
directions share one pyserial port. `read` returns None when nothing came, as
CircuitPython's does.
"""
from typing import Optional

import serial


class UART:
    def __init__(self, tx: str, rx: object = None, *, baudrate: int = 9600, timeout: float = 1.0,
                 receiver_buffer_size: int = 64, **_: object) -> None:
        self._port = serial.serial_for_url(tx, baudrate=baudrate, timeout=timeout)

    @property
    def baudrate(self) -> int:
        return self._port.baudrate

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        self._port.baudrate = value

    @property
    def in_waiting(self) -> int:
        return self._port.in_waiting

    def read(self, nbytes: Optional[int] = None) -> Optional[bytes]:
        data = self._port.read(nbytes if nbytes is not None else max(1, self._port.in_waiting))
        return data or None

    def write(self, buf: bytes) -> int:
        return self._port.write(buf)

    def reset_input_buffer(self) -> None:
        self._port.reset_input_buffer()

    def deinit(self) -> None:
        self._port.close()
