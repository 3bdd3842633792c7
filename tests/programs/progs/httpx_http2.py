import asyncio, hashlib, json, os, ssl
import httpx

SIZES = [1000 * (i + 1) + 37 * i for i in range(16)] + [120000]


async def main():
    ctx = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    async with httpx.AsyncClient(http2=True, verify=ctx, timeout=60) as c:
        # all streams multiplexed over one connection
        rs = await asyncio.gather(*(c.get(f"https://h2.test/blob/{n}") for n in SIZES))
        body = bytes(range(256)) * 200
        posted = (await c.post("https://h2.test/echo", content=body)).json()
    return {"versions": sorted({r.http_version for r in rs}),
            "digests": [hashlib.sha256(r.content).hexdigest() for r in rs],
            "post": posted, "post_sent": hashlib.sha256(body).hexdigest()}

print("RESULT " + json.dumps(asyncio.run(main())))
