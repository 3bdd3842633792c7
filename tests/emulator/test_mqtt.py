"""AT+MQTT* against a real mosquitto, driven by a plain pyserial AT script (no wizsock host code)."""
import re
import threading
import time

import pytest

from support.atport import AtPort
from support.servers import mosquitto_broker

mqtt = pytest.importorskip("paho.mqtt.client")


def at_port(emu):
    at = AtPort(emu.url, baudrate=emu.baud)
    at.sync()
    return at


def join(at):
    at.ok("AT+CWMODE_CUR=1")
    assert b"WIFI GOT IP" in at.ok('AT+CWJAP_CUR="wizsock-lab","wizsock123"')


def connected(at, broker, prefix, client_id=""):
    """Join, set `<prefix>/out` to publish and `<prefix>/in` to subscribe, MQTTCON to `broker`."""
    join(at)
    at.ok(f'AT+MQTTSET="","","{client_id}",60')
    at.ok(f'AT+MQTTTOPIC="{prefix}/out","{prefix}/in"')
    assert at.ok(f'AT+MQTTCON=0,"127.0.0.1",{broker.port}') == [b"CONNECT"]


class Peer:
    """A paho client on the broker: the other side of the module's MQTT session."""

    def __init__(self, port, topics=(), username=None, password=None, tls=None, tls_port=None):
        self.got = []
        self.cond = threading.Condition()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"peer{time.monotonic_ns()}")
        if username is not None:
            self.c.username_pw_set(username, password)
        if tls is not None:
            self.c.tls_set_context(tls)
        subscribed = threading.Event()
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.connect("127.0.0.1" if tls is None else "localhost", port)
        self.c.loop_start()
        if topics:
            self.c.subscribe([(t, 1) for t in topics])
            assert subscribed.wait(10)

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.got.append((msg.topic, msg.payload))
            self.cond.notify_all()

    def publish(self, topic, payload):
        self.c.publish(topic, payload, qos=1).wait_for_publish(10)

    def wait(self, n=1, timeout=10):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.got) >= n, timeout), self.got
            return list(self.got)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def broker():
    with mosquitto_broker() as b:
        yield b


def test_settings_and_their_query_forms(make_emu):
    emu = make_emu()
    with at_port(emu) as at:
        assert at.ok("AT+MQTTSET?") == [b'"","","",60']
        at.ok('AT+MQTTSET="wiznet","12345678","wiznet-01",60')
        assert at.ok("AT+MQTTSET?") == [b'"wiznet","12345678","wiznet-01",60']
        assert at.ok("AT+MQTTSET=?") == [b'"wiznet","12345678","wiznet-01",60']   # the spec's example form
        assert at.command('AT+MQTTSET="a","b","c",29')[1] == "ERROR"           # alive time 30..300
        assert at.command('AT+MQTTSET="a","b","c",301')[1] == "ERROR"
        assert at.command('AT+MQTTSET="%s","b","c",60' % ("x" * 51))[1] == "ERROR"   # 50 bytes at most
        assert at.command("AT+MQTTTOPIC?")[1] == "ERROR"                       # nothing set yet
        at.ok('AT+MQTTTOPIC="pubTopic","subTopic"')
        assert at.ok("AT+MQTTTOPIC?") == [b'"pubTopic","subTopic"']
        at.ok('AT+MQTTTOPIC="pubTopic","subTopic1","SubTopic2","SubTopic3"')
        assert at.ok("AT+MQTTTOPIC?") == [b'"pubTopic","subTopic1","SubTopic2","SubTopic3"']
        assert at.command('AT+MQTTTOPIC="p"')[1] == "ERROR"                     # a subscribe topic is required
        assert at.command('AT+MQTTTOPIC="p","a","b","c","d"')[1] == "ERROR"     # three at most
        assert at.command('AT+MQTTPUB="x"')[1] == "ERROR"                       # not connected
        assert at.command("AT+MQTTDIS")[1] == "ERROR"
        assert at.command("AT+MQTTCON?")[1] == "ERROR"


def test_receive_and_publish_through_a_real_broker(make_emu, broker):
    emu = make_emu()
    peer = Peer(broker.port, topics=["dev/out"])
    try:
        with at_port(emu) as at:
            join(at)
            at.ok('AT+MQTTSET="","","wizfi-1",60')
            at.ok('AT+MQTTTOPIC="dev/out","dev/in","dev/cmd/#","dev/x"')
            assert at.ok(f'AT+MQTTCON=0,"127.0.0.1",{broker.port}') == [b"CONNECT"]
            status = at.ok("AT+CIPSTATUS")
            assert status[0] == b"STATUS:3"
            assert status[1].startswith(b'+CIPSTATUS:0,"TCP","127.0.0.1",%d,' % broker.port)
            # broker -> module: every subscribed topic arrives as "<topic> -> <data>"
            peer.publish("dev/in", b"hello module")
            assert at.wait_line(rb"dev/in -> hello module") == b"dev/in -> hello module"
            peer.publish("dev/cmd/led", b"on")
            at.wait_line(rb"dev/cmd/led -> on")
            peer.publish("dev/x", b"3rd topic")
            at.wait_line(rb"dev/x -> 3rd topic")
            peer.publish("dev/other", b"not subscribed")
            # module -> broker
            at.ok('AT+MQTTPUB="publish data, with a comma"')
            assert peer.wait(1)[0] == ("dev/out", b"publish data, with a comma")
            assert not any(b"not subscribed" in ln for ln in at.transcript + at.pending)
            assert at.command("AT+MQTTDIS") == ([], "CLOSE")
            assert at.ok("AT+CIPSTATUS") == [b"STATUS:4"]
            assert "wizfi-1" in broker.log()
            assert at.command('AT+MQTTPUB="after"')[1] == "ERROR"
    finally:
        peer.close()
    assert "Client wizfi-1 disconnected." in broker.log()   # MQTTDIS sent a DISCONNECT


def test_authentication(make_emu):
    with mosquitto_broker(username="wiznet", password="12345678") as b:
        emu = make_emu()
        with at_port(emu) as at:
            join(at)
            at.ok('AT+MQTTSET="wiznet","12345678","wiznet-01",60')
            at.ok('AT+MQTTTOPIC="pubTopic","subTopic"')
            # <enable>=0: no credentials sent, the broker refuses
            assert at.command(f'AT+MQTTCON=0,"127.0.0.1",{b.port}') == ([b"CONNECT FAIL"], "ERROR")
            assert at.ok(f'AT+MQTTCON=1,"127.0.0.1",{b.port}') == [b"CONNECT"]
            assert at.command("AT+MQTTDIS")[1] == "CLOSE"
            at.ok('AT+MQTTSET="wiznet","wrong","wiznet-01",60')
            assert at.command(f'AT+MQTTCON=1,"127.0.0.1",{b.port}') == ([b"CONNECT FAIL"], "ERROR")
        assert "12345678" not in b.log()


def test_connect_fail_when_nothing_listens(make_emu, broker):
    emu = make_emu()
    with at_port(emu) as at:
        join(at)
        at.ok('AT+MQTTTOPIC="a","b"')
        port = broker.port
        broker.stop()
        assert at.command(f'AT+MQTTCON=0,"127.0.0.1",{port}') == ([b"CONNECT FAIL"], "ERROR")
        assert at.command('AT+MQTTCON=0,"no-such-host.invalid",1883')[1] == "ERROR"
        assert at.ok("AT+CIPSTATUS") == [b"STATUS:2"]


def test_multi_connection_form_holds_its_link(make_emu, broker):
    emu = make_emu()
    with at_port(emu) as at:
        join(at)
        at.ok("AT+CIPMUX=1")
        at.ok('AT+MQTTTOPIC="m/out","m/in"')
        assert at.command(f'AT+MQTTCON=0,"127.0.0.1",{broker.port}')[1] == "ERROR"   # link id required
        assert at.ok(f'AT+MQTTCON=2,0,"127.0.0.1",{broker.port}') == [b"CONNECT"]
        assert any(ln.startswith(b'+CIPSTATUS:2,"TCP","127.0.0.1"') for ln in at.ok("AT+CIPSTATUS"))
        lines, result = at.command(f'AT+CIPSTART=2,"TCP","127.0.0.1",{broker.port}')
        assert result == "ERROR" and b"ALREADY CONNECTED" in lines
        assert at.command(f'AT+MQTTCON=3,0,"127.0.0.1",{broker.port}') == ([b"ALREADY CONNECTED"], "ERROR")
        peer = Peer(broker.port)
        try:
            peer.publish("m/in", b"to link 2")
            at.wait_line(rb"m/in -> to link 2")
        finally:
            peer.close()
        at.ok("AT+CIPCLOSE=2")                        # closing the link ends the session
        assert at.command('AT+MQTTPUB="x"')[1] == "ERROR"
        assert at.ok(f'AT+MQTTCON=2,0,"127.0.0.1",{broker.port}') == [b"CONNECT"]


def test_broker_restart_closes_the_link(make_emu, broker):
    emu = make_emu()
    with at_port(emu) as at:
        connected(at, broker, "r")
        broker.restart()
        at.wait_line(rb"CLOSED", timeout=10)
        assert at.ok("AT+CIPSTATUS") == [b"STATUS:4"]
        assert at.command('AT+MQTTPUB="x"')[1] == "ERROR"
        # the host reconnects by itself, as with the real module
        assert at.ok(f'AT+MQTTCON=0,"127.0.0.1",{broker.port}') == [b"CONNECT"]
        at.ok('AT+MQTTPUB="back"')


def test_reset_ends_the_session_and_its_threads(make_emu, broker):
    emu = make_emu()
    with at_port(emu) as at:
        connected(at, broker, "z", client_id="reset-me")
        at.write(b"AT+RST\r\n")
        at.wait_line(rb"ready", timeout=10)
        at.sync()
        deadline = time.monotonic() + 10
        while not re.search(r"(Client reset-me closed its connection|Socket error on client reset-me)",
                            broker.log()):
            assert time.monotonic() < deadline, broker.log()
            time.sleep(0.05)
        join(at)
        assert at.ok(f'AT+MQTTCON=0,"127.0.0.1",{broker.port}') == [b"CONNECT"]   # no stale session
        assert any(t.name.startswith("paho-mqtt") for t in threading.enumerate())
    emu.stop()    # with the session still up

    def ours():   # paho's loop threads and the emulator's; trio's idle worker cache is not ours
        return [t.name for t in threading.enumerate() if t.name.startswith(("paho-mqtt", "wizemu"))]
    deadline = time.monotonic() + 5
    while ours() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ours() == []


@pytest.mark.parametrize("key", ["endpoints", "nat"])
def test_the_spec_example_reaches_a_local_broker(make_emu, broker, key):
    """AT+MQTTCON=0,0,"192.168.1.20",1883 (spec 3.3.31) with the world pointing that address here."""
    from wizsock.emulator.core import load_world
    w = load_world(None)
    w[key] = {"192.168.1.20:1883": f"127.0.0.1:{broker.port}"}
    emu = make_emu(world=w)
    with at_port(emu) as at:
        join(at)
        at.ok('AT+MQTTTOPIC="pubTopic","subTopic"')
        assert at.ok('AT+MQTTCON=0,0,"192.168.1.20",1883') == [b"CONNECT"]
        assert at.ok("AT+CIPSTATUS")[1].startswith(b'+CIPSTATUS:0,"TCP","192.168.1.20",1883,')
        at.ok('AT+MQTTPUB="publish data"')
        assert at.command("AT+MQTTDIS")[1] == "CLOSE"


def test_a_burst_of_messages_interleaves_with_commands(make_emu, broker):
    """200 incoming messages while the host publishes 20: every line whole, in order, none lost."""
    emu = make_emu()
    peer = Peer(broker.port, topics=["b/out"])
    try:
        with at_port(emu) as at:
            connected(at, broker, "b")
            sender = threading.Thread(target=lambda: [peer.publish("b/in", b"msg %03d" % i) for i in range(200)])
            sender.start()
            for i in range(20):
                assert at.command(f'AT+MQTTPUB="up {i:02d}"')[1] == "OK"
            sender.join(30)
            got = [at.wait_line(rb"b/in -> msg %03d" % i, timeout=10) for i in range(200)]
            assert len(got) == 200
            urcs = [ln for ln in at.transcript if b" -> " in ln]
            assert urcs == [b"b/in -> msg %03d" % i for i in range(200)]      # in order, none torn
            assert [p for _, p in peer.wait(20)] == [b"up %02d" % i for i in range(20)]
    finally:
        peer.close()
