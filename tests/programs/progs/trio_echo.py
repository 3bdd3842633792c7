import hashlib, json
import trio

async def main():
    data = bytes(range(256)) * 800
    stream = await trio.open_tcp_stream("echo.test", 7)
    back = bytearray()
    async with stream:
        async def reader():
            while len(back) < len(data):
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                back.extend(chunk)
        async with trio.open_nursery() as n:
            n.start_soon(reader)
            await stream.send_all(data)
    return {"sent": hashlib.sha256(data).hexdigest(), "back": hashlib.sha256(back).hexdigest()}

print("RESULT " + json.dumps(trio.run(main)))
