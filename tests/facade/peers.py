"""Tiny real servers on loopback that tests/support does not have: SMTP with
STARTTLS and a WebSocket echo server.  Their threads mark themselves internal, so
they stay on the host's network even while a test has wizsock patched."""
import base64
import hashlib
import socket
import struct
import threading

from wizsock import _orig


class _Server:
    def __init__(self):
        self.lsock = _orig.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.threads = []
        self._stop = False
        t = threading.Thread(target=self._accept_loop, daemon=True, name="peer-accept")
        t.start()
        self.threads.append(t)

    def _accept_loop(self):
        _orig.mark_internal()
        while not self._stop:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True, name="peer-conn")
            t.start()
            self.threads.append(t)

    def _serve(self, conn):
        _orig.mark_internal()
        try:
            conn.settimeout(20)
            self.handle(conn)
        except (OSError, ValueError):
            pass
        finally:
            conn.close()

    def close(self):
        self._stop = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        for t in self.threads:
            t.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SMTPServer(_Server):
    """ESMTP with STARTTLS (TLS from ``ssl_context``); records delivered messages."""

    def __init__(self, ssl_context):
        self.ctx = ssl_context
        self.messages = []        # (mail_from, [rcpt], data bytes, was_tls)
        super().__init__()

    def handle(self, conn):
        f = conn.makefile("rb")
        tls = False

        def send(line):
            conn.sendall(line.encode() + b"\r\n")

        send("220 localhost wizsock-test ESMTP")
        mail_from, rcpts = None, []
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.decode().strip()
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                if tls:
                    send("250-localhost\r\n250-8BITMIME\r\n250 SIZE 1000000")
                else:
                    send("250-localhost\r\n250-STARTTLS\r\n250 SIZE 1000000")
            elif verb == "STARTTLS" and not tls:
                send("220 2.0.0 Ready to start TLS")
                f.close()
                conn = self.ctx.wrap_socket(conn, server_side=True)
                f = conn.makefile("rb")
                tls = True
            elif verb == "MAIL":
                if not tls:
                    send("530 5.7.0 Must issue a STARTTLS command first")
                    continue
                mail_from = cmd.split(":", 1)[1].strip()
                rcpts = []
                send("250 2.1.0 Ok")
            elif verb == "RCPT":
                rcpts.append(cmd.split(":", 1)[1].strip())
                send("250 2.1.5 Ok")
            elif verb == "DATA":
                send("354 End data with <CR><LF>.<CR><LF>")
                data = b""
                while True:
                    l = f.readline()
                    if not l or l == b".\r\n":
                        break
                    data += l[1:] if l.startswith(b"..") else l
                self.messages.append((mail_from, rcpts, data, tls))
                send("250 2.0.0 Ok: queued")
            elif verb == "RSET":
                send("250 Ok")
            elif verb == "NOOP":
                send("250 Ok")
            elif verb == "QUIT":
                send("221 2.0.0 Bye")
                return
            else:
                send("502 5.5.2 Error: command not recognized")


_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class WebSocketEchoServer(_Server):
    """RFC 6455 echo: text and binary frames come back; close is answered."""

    def __init__(self):
        self.received = []
        super().__init__()

    @staticmethod
    def _recv_exact(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise OSError("eof")
            buf += chunk
        return buf

    def handle(self, conn):
        req = b""
        while b"\r\n\r\n" not in req:
            chunk = conn.recv(4096)
            if not chunk:
                return
            req += chunk
        headers = {}
        for line in req.split(b"\r\n")[1:]:
            if b":" in line:
                k, v = line.split(b":", 1)
                headers[k.strip().lower()] = v.strip()
        accept = base64.b64encode(hashlib.sha1(headers[b"sec-websocket-key"] + _WS_GUID).digest())
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        while True:
            b0, b1 = self._recv_exact(conn, 2)
            opcode = b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._recv_exact(conn, 2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._recv_exact(conn, 8))[0]
            mask = self._recv_exact(conn, 4) if b1 & 0x80 else b"\0\0\0\0"
            payload = bytes(c ^ mask[i % 4] for i, c in enumerate(self._recv_exact(conn, n)))
            if opcode == 8:
                conn.sendall(b"\x88" + bytes([len(payload)]) + payload)
                return
            if opcode == 9:  # ping -> pong
                conn.sendall(b"\x8a" + bytes([len(payload)]) + payload)
                continue
            self.received.append(payload)
            head = bytes([0x80 | opcode])
            if n < 126:
                head += bytes([n])
            elif n < 65536:
                head += b"\x7e" + struct.pack("!H", n)
            else:
                head += b"\x7f" + struct.pack("!Q", n)
            conn.sendall(head + payload)
