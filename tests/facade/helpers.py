"""Helpers shared by the facade tests (import as `from facade.helpers import ...`)."""
import gc
import logging
import os
import threading
import time

from wizsock import patch as wpatch

BAUD = 2_000_000


def open_module(baud=BAUD, query=""):
    return wpatch.open_default_module(f"wizemu://?baud={baud}&pace_input=0{query}", baudrate=baud,
                                      ssid=wpatch.EMULATOR_AP[0], password=wpatch.EMULATOR_AP[1])


class ATLog(logging.Handler):
    """The AT commands the engine wrote (from the `wizsock.engine.at` debug log)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        msg = record.getMessage()
        if " -> " in msg:
            self.lines.append(msg.split(" -> ", 1)[1])

    def count(self, command):
        return sum(1 for line in self.lines if command in line)


def wait_links_free(module, timeout=5.0):
    """Wait until the engine holds no link; return what it still holds."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        links = dict(module.aio.net.links)
        if not links or time.monotonic() > deadline:
            return links
        time.sleep(0.05)


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def thread_names():
    """Long-lived threads (not the test servers' per-connection threads, not trio's
    bounded cache of idle worker threads)."""
    return sorted(t.name for t in threading.enumerate()
                  if not t.name.startswith(("test-", "Trio thread")) and " from " not in t.name)


def read_to_eof(sock, chunk=65536):
    """Everything the peer sends until it closes."""
    data = b""
    while True:
        part = sock.recv(chunk)
        if not part:
            return data
        data += part
