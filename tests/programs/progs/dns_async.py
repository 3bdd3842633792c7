import asyncio, json
import dns.asyncresolver

async def main():
    r = dns.asyncresolver.Resolver(configure=False)
    r.nameservers = ["198.51.100.53"]
    r.lifetime = 20
    names = ["alpha.zone.test", "beta.zone.test", "gamma.zone.test"]
    answers = await asyncio.gather(*(r.resolve(n, "A", tcp=False) for n in names))
    return {n: [a.address for a in ans] for n, ans in zip(names, answers)}

print("RESULT " + json.dumps(asyncio.run(main())))
