"""The facade's name cache keeps only what one TTL resolved (issue 21): a gateway
that resolves ever new names (rotating CDN hosts) for months must not keep them all."""
import json
import time

from wizsock import socket as wsocket
from wizsock.facade import dns_cache
from wizsock.patch import EMULATOR_AP

from facade.helpers import open_module


def test_expired_names_leave_the_cache(tmp_path, monkeypatch):
    names = [f"host{i}.lab.wizsock.test" for i in range(6)]
    world = tmp_path / "world.json"
    world.write_text(json.dumps({"aps": [{"ssid": EMULATOR_AP[0], "password": EMULATOR_AP[1]}],
                                 "dns": {n: "127.0.0.1" for n in names}}))
    module = open_module(query=f"&world={world}")
    monkeypatch.setattr(dns_cache, "_DNS_TTL", 0.2)
    try:
        wsocket.set_module(module)
        wsocket.clear_dns_cache()
        for name in names:
            assert wsocket.gethostbyname(name) == "127.0.0.1"
            time.sleep(0.25)      # the name before this one has expired by now
        assert set(dns_cache.cached_names()) == {names[-1]}
    finally:
        wsocket.set_module(None)
        module.close()
