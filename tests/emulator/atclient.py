"""A plain AT client over any pyserial port: only pyserial and bytes, no wizsock host code."""
import re
import time

IPD = re.compile(rb"\+IPD,(?:(\d+),)?(\d+)(?:,\"([^\"]*)\",(\d+))?:")


class AT:
    def __init__(self, port):
        self.port = port
        self.buf = b""
        self.rx = {}          # link (None in single mode) -> received +IPD payload bytes
        self.remotes = []     # (ip, port) of +IPD frames that carried one

    def _take_ipd(self):
        while True:
            m = IPD.search(self.buf)
            if not m:
                return
            n = int(m.group(2))
            if len(self.buf) < m.end() + n:
                return
            link = None if m.group(1) is None else int(m.group(1))
            self.rx[link] = self.rx.get(link, b"") + self.buf[m.end():m.end() + n]
            if m.group(3) is not None:
                self.remotes.append((m.group(3).decode(), int(m.group(4))))
            self.buf = self.buf[:m.start()] + self.buf[m.end() + n:]

    def read_until(self, pred, timeout=10.0):
        end = time.monotonic() + timeout
        while True:
            self._take_ipd()
            partial = IPD.search(self.buf)  # an incomplete +IPD frame: its payload is not text
            m = pred(self.buf if partial is None else self.buf[:partial.start()])
            if m is not None and m is not False:
                return m
            if time.monotonic() > end:
                raise TimeoutError(f"timed out; have {self.buf[-400:]!r}")
            n = max(1, min(65536, self.port.in_waiting or 1))
            self.buf += self.port.read(n)

    def expect(self, token: bytes, timeout=10.0) -> bytes:
        """Consume and return everything up to and including `token`."""
        def pred(b):
            i = b.find(token)
            return i if i >= 0 else None
        i = self.read_until(pred, timeout)
        out, self.buf = self.buf[:i + len(token)], self.buf[i + len(token):]
        return out

    def cmd(self, line: bytes, timeout=10.0, final=(b"OK", b"ERROR", b"FAIL")) -> bytes:
        """Send a command, return the response up to its final line (inclusive)."""
        self.port.write(line + b"\r\n")
        pat = re.compile(rb"(?:^|\r\n)(" + b"|".join(re.escape(f) for f in final) + rb")\r\n")

        def pred(b):
            m = pat.search(b)
            return m.end() if m else None
        end = self.read_until(pred, timeout)
        out, self.buf = self.buf[:end], self.buf[end:]
        return out

    def ok(self, line: bytes, timeout=10.0) -> bytes:
        r = self.cmd(line, timeout)
        assert r.endswith(b"OK\r\n"), r
        return r

    def sync(self, tries=40):
        """Send AT until the module answers OK (after boot, or when the banner was missed)."""
        for _ in range(tries):
            try:
                self.cmd(b"AT", timeout=0.25)
                self.buf = b""
                return
            except TimeoutError:
                continue
        raise TimeoutError("module never answered AT")

    def wait_ready(self, timeout=10.0):
        self.expect(b"ready\r\n", timeout)

    def send(self, link, data: bytes, timeout=10.0) -> bytes:
        head = b"AT+CIPSEND=%d" % len(data) if link is None else b"AT+CIPSEND=%d,%d" % (link, len(data))
        self.port.write(head + b"\r\n")
        self.expect(b">", timeout)
        self.port.write(data)
        return self.expect(b"SEND OK\r\n", timeout)

    def ipd(self, nbytes: int, link=None, timeout=10.0) -> bytes:
        """Collect (and consume) `nbytes` of +IPD payload of `link`."""
        self.read_until(lambda b: len(self.rx.get(link, b"")) >= nbytes or None, timeout)
        data = self.rx[link]
        out, self.rx[link] = data[:nbytes], data[nbytes:]
        return out
