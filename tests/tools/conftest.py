"""Fixtures for the command-line tools: `wizsock ...` run as a user runs it (a subprocess)."""
import json
import os
import subprocess
import sys

import pytest

from support.fixtures import *  # noqa: F401,F403

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_WORLD = os.path.join(ROOT, "wizsock", "emulator", "default_world.json")

#: secrets that must never reach a trace, a log or a history file
CANARY_WIFI = "Canary-WiFi-Pa55"
CANARY_HTTP = "Canary-HTTP-pw"


def env(**extra):
    e = dict(os.environ)
    e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("WIZSOCK_PASSWORD", None)
    e.update(extra)
    return e


def wizsock(*argv, input=None, timeout=60, **env_extra):
    return subprocess.run([sys.executable, "-m", "wizsock", *argv], capture_output=True,
                          text=True, input=input, timeout=timeout, env=env(**env_extra), cwd=ROOT)


@pytest.fixture
def world(tmp_path):
    """A world file of our own, so the expected values are the file's, not the default's."""
    w = {
        "aps": [
            {"ssid": "canary-lab", "password": CANARY_WIFI, "ecn": 4, "rssi": -52,
             "mac": "02:11:22:33:44:01", "channel": 3, "wps": 0,
             "ip": "10.9.8.7", "gateway": "10.9.8.1", "netmask": "255.255.0.0"},
            {"ssid": "open-cafe", "password": "", "ecn": 0, "rssi": -71,
             "mac": "02:11:22:33:44:02", "channel": 9, "wps": 1, "ip": "172.16.5.5"},
        ],
        "dns": {"lab.wizsock.test": "127.0.0.1"},
    }
    path = tmp_path / "world.json"
    path.write_text(json.dumps(w))
    return w, f"wizemu://?world={path}&baud=921600"
