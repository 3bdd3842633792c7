"""An asyncio HTTP/1.0 server (asyncio.start_server), run on the module:
``asyncio_http_server.py PORT SIZE``.  Each connection: read the request head, answer
SIZE deterministic bytes with ``Connection: close``, close."""
import asyncio
import hashlib
import sys

PORT, SIZE = int(sys.argv[1]), int(sys.argv[2])


def blob(n):
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"wizsock-lab-%d" % i).digest()
        i += 1
    return bytes(out[:n])


BODY = blob(SIZE)
HEAD = (b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % SIZE)


async def serve(reader, writer):
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(HEAD + BODY)
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def main():
    server = await asyncio.start_server(serve, "0.0.0.0", PORT)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
