"""Progress on long work: a status line on a terminal, nothing when stderr is not one."""
import json
import os
import re
import sys
import threading

import pytest

import wizsock
from conftest import require
from tools.conftest import ROOT, env, wizsock as run_wizsock
from wizsock.tools.progress import Progress

try:
    import pexpect
except ImportError:
    pexpect = None


class PtyCapture:
    """A real terminal for the status line: the slave end is the stream, the master is read."""

    def __init__(self):
        self.master, slave = os.openpty()
        self.stream = os.fdopen(slave, "w", encoding="utf-8")
        self.data = bytearray()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while True:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            if not chunk:
                return
            self.data += chunk

    def text(self):
        self.stream.close()
        self.thread.join(5)
        os.close(self.master)
        return self.data.decode("utf-8", "replace")


@pytest.fixture
def slow_world(tmp_path):
    w = {"aps": [{"ssid": "slow-ap", "password": "slowpass1", "ecn": 3, "rssi": -60,
                  "mac": "02:00:00:00:00:07", "channel": 1, "join_time": 1.5, "ip": "10.1.1.9"}]}
    path = tmp_path / "world.json"
    path.write_text(json.dumps(w))
    return f"wizemu://?world={path}&baud=921600"


def test_join_shows_progress_on_a_terminal(slow_world, tmp_path):
    require(pexpect is not None, "pexpect")
    child = pexpect.spawn(sys.executable, ["-m", "wizsock", "join", "slow-ap", "--port", slow_world,
                                           "--baudrate", "921600"],
                          env=env(WIZSOCK_PASSWORD="slowpass1"), cwd=ROOT, encoding="utf-8",
                          timeout=30)
    child.expect(r"joining 'slow-ap'\.\.\. \d\.\d s")
    child.expect(r"joined 'slow-ap' in 1\.\d+ s")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_no_progress_when_stderr_is_not_a_terminal(slow_world):
    p = run_wizsock("join", "slow-ap", "--port", slow_world, "--baudrate", "921600",
                    WIZSOCK_PASSWORD="slowpass1")
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert "joined 'slow-ap'" in p.stdout


def test_certificate_upload_progress(ca):
    pem = ca.ca_pem.decode("ascii")
    # 9600 baud with paced input: the certificate takes about a second on the wire
    with wizsock.Module("wizemu://?baud=9600&pace_input=1", baudrate=9600) as m:
        cap = PtyCapture()
        with Progress(m, stream=cap.stream) as p:
            assert p.enabled
            m.net.set_ca(pem)
        text = cap.text()
    n = len(pem.replace("\r\n", "\n").strip().replace("\n", "\r\n")) + 2
    assert "uploading the CA certificate..." in text
    shares = [int(x) for x in re.findall(rf"(\d+)/{n} bytes", text)]
    assert shares and shares == sorted(shares) and 0 < shares[0] < n


def test_firmware_update_progress_shows_the_stages(http_srv):
    url = f"{http_srv.ip_url}/slow/1.2"
    with wizsock.Module("wizemu://?baud=921600", baudrate=921600) as m:
        m.wifi.set_mode(1)
        m.wifi.join("wizsock-lab", "wizsock123")
        cap = PtyCapture()
        with Progress(m, stream=cap.stream):
            m.net.update(url)
        text = cap.text()
    assert "updating the firmware..." in text
    assert "stage 2/4: connect to server" in text
