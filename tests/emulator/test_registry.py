"""The §5a seam: a plug-in handler registered with @handler runs with the documented ctx."""
import threading

from emulator.conftest import open_at
from wizsock.emulator import registry
from wizsock.emulator.registry import CommandFailed, handler


def test_plugin_handler_sees_the_documented_context(make_emu):
    seen = {}
    emu = make_emu()  # the core imports its plug-ins at start; ours replaces theirs after
    old = registry.HANDLERS.get("MQTTSET")

    @handler("MQTTSET")
    async def fake(ctx, req):
        seen["name"], seen["form"] = req.name, req.form
        seen["params"] = dict(req.params)
        seen["mode"] = ctx.state.mode
        seen["dns"] = ctx.resolve("lab.wizsock.test")
        ctx.state.flash["test.key"] = "kept"
        if req.form == "query":
            raise CommandFailed("ERROR", [b"nothing here"])
        await ctx.send_line(b"+MQTTSET:seen")
        await ctx.prompt()
        seen["data"] = await ctx.read_data(until=b"END")
        threading.Thread(target=ctx.urc, args=(b"topic -> from a thread",)).start()
        await ctx.sleep(0.05)
        return "OK"

    try:
        at = open_at(emu)
        at.port.write(b'AT+MQTTSET="u","p","c",60\r\n')
        out = at.expect(b">")
        at.port.write(b"payload END")
        out += at.expect(b"\r\nOK\r\n")
        assert b"+MQTTSET:seen" in out
        at.read_until(lambda b: b"topic -> from a thread\r\n" in (out + b) or None, 3)
        assert seen["name"] == "MQTTSET" and seen["form"] == "set"
        assert 60 in seen["params"].values()
        assert seen["data"] == b"payload END" and seen["dns"] == "127.0.0.1"
        assert seen["mode"] == 2
        r = at.cmd(b"AT+MQTTSET?")
        assert r.endswith(b"nothing here\r\n\r\nERROR\r\n")
        assert emu.state.flash["test.key"] == "kept"
    finally:
        if old is not None:
            registry.HANDLERS["MQTTSET"] = old
