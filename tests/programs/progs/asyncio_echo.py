import asyncio, hashlib, json

async def one(i):
    data = bytes([i]) * 20000
    r, w = await asyncio.open_connection("echo.test", 7)
    w.write(data)
    await w.drain()
    back = await r.readexactly(len(data))
    w.close()
    await w.wait_closed()
    return hashlib.sha256(back).hexdigest() == hashlib.sha256(data).hexdigest()

async def main():
    return await asyncio.gather(*(one(i) for i in range(8)))   # more than the module's five links

print("RESULT " + json.dumps({"ok": asyncio.run(main())}))
