"""`wizsock scan | join | status | ping | info` against the emulator: values from its world file."""
import json

from tools.conftest import CANARY_WIFI, DEFAULT_WORLD, wizsock


def _default_world():
    with open(DEFAULT_WORLD) as f:
        return json.load(f)


def test_scan_json_lists_the_world_strongest_first(world):
    w, url = world
    p = wizsock("scan", "--json", "--port", url, "--baudrate", "921600")
    assert p.returncode == 0, p.stderr
    aps = json.loads(p.stdout)
    assert [(a["ssid"], a["mac"], a["channel"], a["rssi"], a["ecn"], a["wps"]) for a in aps] == [
        (ap["ssid"], ap["mac"], ap["channel"], ap["rssi"], ap["ecn"], ap["wps"])
        for ap in sorted(w["aps"], key=lambda ap: -ap["rssi"])]


def test_scan_table_on_the_default_emulator():
    p = wizsock("scan")
    assert p.returncode == 0, p.stderr
    head, *rows = p.stdout.splitlines()
    assert head.split() == ["SSID", "BSSID", "CHANNEL", "RSSI", "SECURITY", "WPS"]
    visible = [ap for ap in _default_world()["aps"] if not ap.get("hidden")]
    assert len(rows) == len(visible)
    assert rows[0].split()[:4] == ["wizsock-lab", "00:08:dc:5a:1a:01", "6", "-45"]
    assert "WPA2_PSK" in rows[0]


def test_join_with_password_on_stdin(world):
    w, url = world
    ap = w["aps"][0]
    p = wizsock("join", ap["ssid"], "--password-stdin", "--json", "--port", url,
                "--baudrate", "921600", input=CANARY_WIFI + "\n")
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout)
    assert (got["ssid"], got["bssid"], got["ip"], got["gateway"], got["netmask"]) == (
        ap["ssid"], ap["mac"], ap["ip"], ap["gateway"], ap["netmask"])
    assert CANARY_WIFI not in p.stdout + p.stderr


def test_join_wrong_password_exit_code_4(world):
    w, url = world
    p = wizsock("join", w["aps"][0]["ssid"], "--password-stdin", "--port", url,
                "--baudrate", "921600", input="not-the-password\n")
    assert p.returncode == 4, (p.returncode, p.stderr)
    assert "wrong password" in p.stderr
    assert "not-the-password" not in p.stderr


def test_join_unknown_network_exit_code_4(world):
    _, url = world
    p = wizsock("join", "no-such-net", "--port", url, "--baudrate", "921600")
    assert p.returncode == 4, (p.returncode, p.stderr)


def test_status_json_joined_default_emulator():
    ap = _default_world()["aps"][0]
    p = wizsock("status", "--json")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["connected"] is True
    assert (s["ssid"], s["bssid"], s["channel"], s["rssi"]) == (ap["ssid"], ap["mac"],
                                                                  ap["channel"], ap["rssi"])
    assert (s["ip"], s["gateway"], s["netmask"]) == (ap["ip"], ap["gateway"], ap["netmask"])
    assert s["status"] == 2 and s["links"] == []


def test_status_not_joined_exit_code_5(world):
    _, url = world
    p = wizsock("status", "--json", "--port", url, "--baudrate", "921600")
    assert p.returncode == 5, (p.returncode, p.stderr)
    assert json.loads(p.stdout)["connected"] is False


def test_ping_a_world_name():
    # lab.wizsock.test resolves (world dns) to loopback, which the emulator really pings
    p = wizsock("ping", "lab.wizsock.test", "-c", "2", "-i", "0.1", "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert (r["sent"], r["received"]) == (2, 2)
    assert all(isinstance(t, int) and t >= 0 for t in r["times_ms"])
    text = wizsock("ping", "127.0.0.1", "-c", "1")
    assert text.returncode == 0 and "127.0.0.1: reply, time=" in text.stdout


def test_ping_not_joined_exit_code_5(world):
    _, url = world
    p = wizsock("ping", "127.0.0.1", "-c", "1", "--port", url, "--baudrate", "921600")
    assert p.returncode == 5, (p.returncode, p.stderr)


def test_info_json():
    ap = _default_world()["aps"][0]
    p = wizsock("info", "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["firmware"] == "1.1.1.7"
    assert d["at_version"].startswith("1.1.1.7")
    assert d["sta_ip"] == ap["ip"]
    for key in ("sta_mac", "ap_mac"):
        assert len(d[key].split(":")) == 6
    assert d["uart_cur"] == {"baudrate": 921600, "databits": 8, "stopbits": 1, "parity": 0,
                             "flow_control": 0}
    assert d["host_baudrate"] == 921600


def test_no_module_exit_code_3(tmp_path):
    p = wizsock("info", "--port", str(tmp_path / "no-such-tty"))
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert "cannot open" in p.stderr
