import asyncio, hashlib, json
import aiohttp

async def main():
    body = bytes(range(256)) * 120
    async with aiohttp.ClientSession() as s:
        async with s.get("http://web.test/blob/50000") as r:
            got = await r.read()
        async with s.post("http://web.test/echo", data=body) as r:
            posted = await r.json()
        async with s.get("https://secure.test/blob/20000") as r:    # verified by host name
            tls = await r.read()
    return {"get": hashlib.sha256(got).hexdigest(), "post": posted,
            "post_sent": hashlib.sha256(body).hexdigest(), "https": hashlib.sha256(tls).hexdigest()}

print("RESULT " + json.dumps(asyncio.run(main())))
