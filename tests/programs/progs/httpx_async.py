import asyncio, hashlib, json
import httpx

async def main():
    async with httpx.AsyncClient(timeout=60) as c:
        rs = await asyncio.gather(*(c.get(f"http://web.test/blob/{3000 + 100 * i}") for i in range(12)))
    return [hashlib.sha256(r.content).hexdigest() for r in rs]

print("RESULT " + json.dumps({"digests": asyncio.run(main())}))
