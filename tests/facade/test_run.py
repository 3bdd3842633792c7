"""`wizsock run -- python script.py`: an unmodified program over the in-process emulator."""
import os
import subprocess
import sys

import pytest

from conftest import require
from support.servers import mosquitto_available
from wizsock import run as wrun

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "fetch_and_publish.py")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_wizsock_run_python_script(https_srv, mosquitto):
    require(mosquitto_available(), "the mosquitto binary")
    cmd = [sys.executable, "-m", "wizsock", "run", "--", "python", SCRIPT,
           https_srv.url + "/bytes/5000", https_srv.ca.ca_pem_path, str(mosquitto.port)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=_env(), cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "socket class: wizsock.socket.socket" in p.stdout
    assert "fetched 5000 bytes" in p.stdout
    assert "mqtt: hello from wizsock run" in p.stdout
    assert https_srv.requests == [("GET", "/bytes/5000")]


def test_wizsock_run_module_and_exit_code():
    code = "import socket, sys; print(socket.getaddrinfo('lab.wizsock.test', 80)[0][4]); sys.exit(3)"
    p = subprocess.run([sys.executable, "-m", "wizsock", "run", "--", "-c", code],
                       capture_output=True, text=True, timeout=60, env=_env(), cwd=ROOT)
    assert p.returncode == 3, p.stderr
    assert "('127.0.0.1', 80)" in p.stdout


@pytest.mark.parametrize("argv, expected", [
    (["--", "python", "x.py", "-v"], ("script", "x.py", ["x.py", "-v"])),
    (["python3", "-m", "http.server", "8000"], ("module", "http.server", ["http.server", "8000"])),
    (["--", sys.executable, "-u", "-c", "pass", "a"], ("code", "pass", ["-c", "a"])),
    (["x.py"], ("script", "x.py", ["x.py"])),
])
def test_parse_program(argv, expected):
    assert wrun.parse_program(argv) == expected
