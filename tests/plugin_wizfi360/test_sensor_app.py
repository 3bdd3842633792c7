"""The wizsock pytest plugin as a user meets it: this file uses only the plugin's
fixtures and marker (plus real peers from tests/support) to test sensor_app, a
small requests + paho-mqtt program, against an emulated WizFi360.

The plugin is not named anywhere here or in a conftest: pytest loads it from
wizsock's installed ``pytest11`` entry point.
"""
import json

import pytest

from support.fixtures import ca, mosquitto  # noqa: F401  (real peers on loopback)
from support.servers import DefaultHandler, https_server

from plugin_wizfi360 import sensor_app

SETTINGS = {"name": "greenhouse-3", "topic": "sensors/greenhouse-3"}


class SettingsHandler(DefaultHandler):
    def do_GET(self):
        if self.path == "/settings.json":
            self._record()
            return self._send(200, json.dumps(SETTINGS).encode(), "application/json")
        return super().do_GET()


@pytest.fixture
def settings_srv(ca):  # noqa: F811
    with https_server(ca, handler=SettingsHandler) as srv:
        yield srv


# Server fixtures come before wizsock_patched: they must be the host's own
# sockets, made before the patch, or this process would talk to itself directly.
@pytest.mark.wizfi360(rtt=0.01, log=True, world={"dns": {"broker.sensor.test": "127.0.0.1"}})
def test_sensor_app_over_the_module(settings_srv, mosquitto, wizsock_patched, wizfi360_emulator):  # noqa: F811
    echoed = sensor_app.main(settings_srv.url, settings_srv.ca.ca_pem_path,
                             "broker.sensor.test", mosquitto.port)

    assert json.loads(echoed) == {"sensor": "greenhouse-3", "celsius": 21.5}
    assert ("GET", "/settings.json") in settings_srv.requests
    # Both connections really crossed the emulated UART, and the broker's name was
    # resolved by the module (AT+CIPDOMAIN), not by the host.
    sent = b"".join(data for direction, data in wizfi360_emulator.transcript if direction == "<<")  # host -> module
    assert sent.count(b"AT+CIPSTART=") >= 2, sent[-2000:]
    assert b'AT+CIPDOMAIN="broker.sensor.test"' in sent


@pytest.mark.wizfi360(baud=115200, seed=7)
def test_marker_configures_the_module(wizfi360, wizfi360_emulator, wizfi360_url):
    assert wizfi360_url == wizfi360_emulator.url and wizfi360_url.startswith("wizemu://")
    assert wizfi360_emulator.baud == 115200
    uart = wizfi360.system.uart()
    assert uart.baudrate == 115200
    joined = wizfi360.wifi.joined()
    assert joined is not None and joined.ssid == "wizsock-lab"


@pytest.mark.wizfi360(join=False)
def test_join_false_leaves_the_module_unjoined(wizfi360):
    assert wizfi360.wifi.joined() is None


WORLD_FILE = {"aps": [{"ssid": "plant-floor", "password": "forklift42", "ecn": 3, "rssi": -50,
                       "mac": "00:08:dc:00:00:42", "channel": 3}],
              "dns": {"historian.plant.test": "127.0.0.1"}}


@pytest.fixture(scope="module")
def world_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("world") / "plant.json"
    path.write_text(json.dumps(WORLD_FILE))
    return path


def _world_marker(path):
    return pytest.mark.wizfi360(world=str(path), faults="chunk,urc:0.3", seed=5, rtt=0.005)


def test_world_file_and_faults(world_file, request):
    # a marker built at run time (the file's path is known only now) configures the module
    request.node.add_marker(_world_marker(world_file))
    module = request.getfixturevalue("wizfi360")
    assert module.wifi.joined().ssid == "plant-floor"   # the world's only AP, joined
    assert module.net.resolve("historian.plant.test") == "127.0.0.1"
    emulator = request.getfixturevalue("wizfi360_emulator")
    assert emulator.faults and emulator.seed == 5
