"""`wizsock demo` (the README's first command) runs and reports the UART traffic."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_demo_runs():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-m", "wizsock", "demo", "--baud", "921600"],
                       capture_output=True, text=True, timeout=90, env=env, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    assert "-> 200 OK" in out and "TLS verified" in out
    assert "host -> module:" in out and "module -> host:" in out
    assert "AT+CIPSTART" in out
