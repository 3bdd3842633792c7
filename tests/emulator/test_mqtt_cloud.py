"""AT+AZSET/AZCON and AT+AWSPKSEND/CLICASEND/AWSCON against a local TLS mosquitto."""
import base64
import hashlib
import hmac
import shutil
import subprocess
import time
import urllib.parse

import pytest

from support.servers import mosquitto_broker, test_ca
from wizsock.emulator.core import load_world
from wizsock.emulator.mqtt import sas_token

from emulator.test_mqtt import Peer, at_port, join

mqtt = pytest.importorskip("paho.mqtt.client")

HUB, DEVICE = "wizhub", "dev1"
KEY = base64.b64encode(bytes(range(32))).decode()          # AAECAwQF...Hh8=
HOST = HUB + ".azure-devices.net"
USERNAME = f"{HOST}/{DEVICE}/?api-version=2018-06-30"


# ------------------------------------------------------------------ SAS token
def test_sas_token_known_vector():
    # computed independently with: printf 'wizhub.azure-devices.net%2Fdevices%2Fdev1\n1700000000' |
    #   openssl dgst -sha256 -mac HMAC -macopt hexkey:000102...1f -binary | base64
    assert sas_token(f"{HOST}/devices/{DEVICE}", KEY, 1700000000) == (
        "SharedAccessSignature sr=wizhub.azure-devices.net%2Fdevices%2Fdev1"
        "&sig=MHaQ3L7S6%2FuhHndWv638d7kRY8MJxpRJjW5zftkUkO8%3D&se=1700000000")
    assert sas_token("h/devices/d", KEY, 5, policy="iothubowner").endswith("&se=5&skn=iothubowner")
    with pytest.raises(ValueError):
        sas_token("h/devices/d", "-----", 5)     # the key must be base64


def test_sas_token_matches_openssl():
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI not installed")
    expiry = int(time.time()) + 77
    to_sign = urllib.parse.quote_plus(f"{HOST}/devices/{DEVICE}") + f"\n{expiry}"
    out = subprocess.run([openssl, "dgst", "-sha256", "-mac", "HMAC", "-macopt",
                          "hexkey:" + base64.b64decode(KEY).hex(), "-binary"],
                         input=to_sign.encode(), capture_output=True, check=True).stdout
    assert f"sig={urllib.parse.quote_plus(base64.b64encode(out).decode())}&se={expiry}" in \
        sas_token(f"{HOST}/devices/{DEVICE}", KEY, expiry)


def _expected_token(expiry):
    """The device's SAS token, written out here without the emulator's code."""
    sr = urllib.parse.quote_plus(f"{HOST}/devices/{DEVICE}")
    sig = hmac.new(base64.b64decode(KEY), f"{sr}\n{expiry}".encode(), hashlib.sha256).digest()
    return f"SharedAccessSignature sr={sr}&sig={urllib.parse.quote_plus(base64.b64encode(sig).decode())}&se={expiry}"


# ------------------------------------------------------------------ Azure
@pytest.fixture(scope="module")
def cloud_ca():
    with test_ca("wizsock cloud test CA") as ca:
        yield ca


@pytest.fixture
def azure_hub(cloud_ca):
    expiry = int(time.time()) + 3600
    with mosquitto_broker(ca=cloud_ca, server_names=[HOST, "localhost"],
                          users={USERNAME: _expected_token(expiry), "backend": "b"}) as b:
        b.expiry = expiry
        yield b


def azure_world(hub):
    w = load_world(None)
    w["endpoints"] = {"azure": f"127.0.0.1:{hub.tls_port}"}
    w["cloud"] = {"sas_expiry": hub.expiry}
    return w


def send_pem(at, cmd, pem: bytes):
    lines, result = at.command_with_data(cmd, pem)
    assert result == "OK", (lines, result)


def azure_setup(at, ca_pem):
    """Join, verify strictly against `ca_pem`, set the device and its topics (AZCON not sent)."""
    join(at)
    at.ok("AT+CIPSSLCONF=2")
    send_pem(at, "AT+CASEND=1", ca_pem)
    at.ok(f'AT+AZSET="{HUB}","{DEVICE}","{KEY}"')
    at.ok(f'AT+MQTTTOPIC="devices/{DEVICE}/messages/events/","devices/{DEVICE}/messages/devicebound/#"')


def test_azure_iot_hub_flow(make_emu, azure_hub, cloud_ca):
    emu = make_emu(world=azure_world(azure_hub))
    backend = Peer(azure_hub.tls_port, topics=[f"devices/{DEVICE}/messages/events/#"], username="backend",
                   password="b", tls=cloud_ca.client_context())
    try:
        with at_port(emu) as at:
            azure_setup(at, cloud_ca.ca_pem)
            assert at.ok("AT+AZCON") == [b"CONNECT"]
            assert any(ln.startswith(b'+CIPSTATUS:0,"SSL","127.0.0.1"') for ln in at.ok("AT+CIPSTATUS"))
            # cloud -> device (C2D), with Azure's property bag in the topic
            topic = (f"devices/{DEVICE}/messages/devicebound/%24.mid=test1&%24.to=%2Fdevices%2F{DEVICE}"
                     "%2Fmessages%2FdeviceBound&iotHub-ack=full")
            backend.publish(topic, b"Hello Wiznet!")
            assert at.wait_line(rb".* -> Hello Wiznet!") == topic.encode() + b" -> Hello Wiznet!"
            # device -> cloud (D2C)
            at.ok('AT+MQTTPUB="{\\"temp\\":21}"')
            assert backend.wait(1)[0] == (f"devices/{DEVICE}/messages/events/", b'{"temp":21}')
            assert at.command("AT+MQTTDIS")[1] == "CLOSE"
    finally:
        backend.close()
    log = azure_hub.log()
    assert "New client connected from 127.0.0.1" in log and f"as {DEVICE} " in log
    assert "SharedAccessSignature" not in log


def test_azure_refuses_a_wrong_key_or_an_untrusted_hub(make_emu, azure_hub, cloud_ca):
    emu = make_emu(world=azure_world(azure_hub))
    with at_port(emu) as at, test_ca("another CA") as other:
        join(at)
        assert at.command("AT+AZCON")[1] == "ERROR"                  # AZSET and MQTTTOPIC first
        at.ok(f'AT+MQTTTOPIC="devices/{DEVICE}/messages/events/","devices/{DEVICE}/messages/devicebound/#"')
        at.ok("AT+CIPSSLCONF=2")
        send_pem(at, "AT+CASEND=1", cloud_ca.ca_pem)
        wrong = base64.b64encode(bytes(range(1, 33))).decode()
        at.ok(f'AT+AZSET="{HUB}","{DEVICE}","{wrong}"')
        assert at.command("AT+AZCON") == ([b"CONNECT FAIL"], "ERROR")  # the hub rejects the token
        at.ok(f'AT+AZSET="{HUB}","{DEVICE}","-----"')                   # the spec's placeholder key
        assert at.command("AT+AZCON") == ([b"CONNECT FAIL"], "ERROR")
        at.ok(f'AT+AZSET="{HUB}","{DEVICE}","{KEY}"')
        send_pem(at, "AT+CASEND=1", other.ca_pem)                       # CIPSSLCONF=2: must verify
        assert at.command("AT+AZCON") == ([b"CONNECT FAIL"], "ERROR")
        at.ok("AT+CIPSSLCONF=1")                                        # checks, connects anyway
        assert at.ok("AT+AZCON") == [b"CONNECT"]
        assert at.command("AT+MQTTDIS")[1] == "CLOSE"


def test_azure_checks_the_hub_name(make_emu, cloud_ca):
    """A broker whose certificate is not for <hub>.azure-devices.net is refused under CIPSSLCONF=2."""
    expiry = int(time.time()) + 3600
    with mosquitto_broker(ca=cloud_ca, server_names=["localhost", "127.0.0.1"],
                          users={USERNAME: _expected_token(expiry)}) as b:
        b.expiry = expiry
        emu = make_emu(world=azure_world(b))
        with at_port(emu) as at:
            azure_setup(at, cloud_ca.ca_pem)
            assert at.command("AT+AZCON") == ([b"CONNECT FAIL"], "ERROR")
            at.ok("AT+CIPSSLCONF=0")                               # no checking at all
            assert at.ok("AT+AZCON") == [b"CONNECT"]


# ------------------------------------------------------------------ AWS
@pytest.fixture
def aws_core(cloud_ca):
    with mosquitto_broker(ca=cloud_ca, tls=True, require_certificate=True) as b:
        yield b


def aws_world(broker):
    w = load_world(None)
    w["endpoints"] = {"aws": f"127.0.0.1:{broker.tls_port}"}
    return w


def thing_credentials(ca, name="thing1"):
    cert_path, key_path = ca.client_cert(name)
    with open(cert_path, "rb") as f:
        cert = f.read()
    with open(key_path, "rb") as f:
        key = f.read()
    return cert, key


def test_pem_commands_store_in_flash(make_emu, cloud_ca):
    emu = make_emu()
    cert, key = thing_credentials(cloud_ca)
    with at_port(emu) as at:
        assert at.command("AT+CLICASEND?")[1] == "ERROR"           # nothing stored yet
        assert at.command("AT+AWSPKSEND?")[1] == "ERROR"
        assert at.command_with_data("AT+CLICASEND=1", b"garbage -----END CERTIFICATE-----")[1] == "ERROR"
        send_pem(at, "AT+CLICASEND=1", cert)
        send_pem(at, "AT+AWSPKSEND=1", key)
        first_cert = cert.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----"
        assert at.ok("AT+CLICASEND?") == first_cert.strip().splitlines()
        assert at.ok("AT+AWSPKSEND?") == key.strip().splitlines()
        at.write(b"AT+RST\r\n")
        at.wait_line(rb"ready")
        at.sync()
        assert at.ok("AT+AWSPKSEND?") == key.strip().splitlines()   # survives a reset: flash
        at.ok("AT+AWSPKSEND=0")
        assert at.command("AT+AWSPKSEND?")[1] == "ERROR"
        at.ok("AT+CLICASEND=0")
        assert at.command("AT+CLICASEND?")[1] == "ERROR"


def test_aws_iot_core_flow(make_emu, aws_core, cloud_ca):
    emu = make_emu(world=aws_world(aws_core))
    cert, key = thing_credentials(cloud_ca)
    shadow = "$aws/things/thing1/shadow/update"
    peer = Peer(aws_core.tls_port, topics=[shadow], tls=_peer_ctx(cloud_ca))
    try:
        with at_port(emu) as at:
            join(at)
            send_pem(at, "AT+CASEND=1", cloud_ca.ca_pem)
            send_pem(at, "AT+CLICASEND=1", cert)
            send_pem(at, "AT+AWSPKSEND=1", key)
            at.ok('AT+MQTTSET="","","thing1",60')
            at.ok(f'AT+MQTTTOPIC="{shadow}","{shadow}/accepted"')
            assert at.command("AT+AWSCON")[1] == "ERROR"          # needs CIPSSLCONF=2
            at.ok("AT+CIPSSLCONF=2")
            at.ok("AT+CIPMUX=1")
            assert at.command("AT+AWSCON")[1] == "ERROR"          # not with CIPMUX=1
            at.ok("AT+CIPMUX=0")
            assert at.ok("AT+AWSCON") == [b"CONNECT"]
            peer.publish(shadow + "/accepted", b"Hello Wiznet!")
            assert at.wait_line(rb".* -> Hello Wiznet!") == b"$aws/things/thing1/shadow/update/accepted -> Hello Wiznet!"
            at.ok('AT+MQTTPUB="{\\"state\\":{\\"reported\\":{\\"on\\":1}}}"')
            assert peer.wait(1)[0] == (shadow, b'{"state":{"reported":{"on":1}}}')
            assert at.command("AT+MQTTDIS")[1] == "CLOSE"
    finally:
        peer.close()


def _peer_ctx(ca):
    ctx = ca.client_context()
    ctx.load_cert_chain(*ca.client_cert("backend"))
    return ctx


def test_aws_needs_a_certificate_the_broker_trusts(make_emu, aws_core, cloud_ca):
    emu = make_emu(world=aws_world(aws_core))
    with at_port(emu) as at, test_ca("rogue CA") as rogue:
        join(at)
        at.ok("AT+CIPSSLCONF=2")
        send_pem(at, "AT+CASEND=1", cloud_ca.ca_pem)
        at.ok('AT+MQTTSET="","","thing1",60')
        at.ok('AT+MQTTTOPIC="t/out","t/in"')
        assert at.command("AT+AWSCON")[1] == "ERROR"              # no client certificate or key
        cert, key = thing_credentials(rogue)
        send_pem(at, "AT+CLICASEND=1", cert)
        send_pem(at, "AT+AWSPKSEND=1", key)
        assert at.command("AT+AWSCON") == ([b"CONNECT FAIL"], "ERROR")
        cert, key = thing_credentials(cloud_ca)
        send_pem(at, "AT+CLICASEND=1", cert)
        send_pem(at, "AT+AWSPKSEND=1", key)
        send_pem(at, "AT+CASEND=1", rogue.ca_pem)                  # the module cannot verify the broker
        assert at.command("AT+AWSCON") == ([b"CONNECT FAIL"], "ERROR")
        send_pem(at, "AT+CASEND=1", cloud_ca.ca_pem)
        assert at.ok("AT+AWSCON") == [b"CONNECT"]
