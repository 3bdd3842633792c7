"""``wizsock status``: is the module on a network, with which address, which links."""
from __future__ import annotations

import argparse
from typing import Any, Dict, List

from wizsock.protocol import CIPSTATUS_STATES

from . import common as C

__all__ = ["add_arguments", "run", "status"]

MODES = {1: "station", 2: "SoftAP", 3: "SoftAP+station"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Show the WiFi connection, the station address and the open links. "
                          "Exit code 0 when joined with an IP address, 5 when not.")
    C.add_module_arguments(parser)


def status(m: Any) -> Dict[str, Any]:
    mode = m.wifi.mode().mode
    ap = m.wifi.joined() if mode in (1, 3) else None
    ip = m.wifi.sta_ip() if mode in (1, 3) else None
    st = m.net.status()
    sta_ip = getattr(ip, "ip", None)
    return {
        "connected": ap is not None and sta_ip not in (None, "0.0.0.0"),
        "mode": mode, "mode_name": MODES.get(mode, str(mode)),
        "ssid": getattr(ap, "ssid", None), "bssid": getattr(ap, "bssid", None),
        "channel": getattr(ap, "channel", None), "rssi": getattr(ap, "rssi", None),
        "ip": sta_ip, "gateway": getattr(ip, "gateway", None),
        "netmask": getattr(ip, "netmask", None),
        "status": st.status, "status_meaning": CIPSTATUS_STATES.get(st.status),
        "links": _links(m, st.links),
    }


def _links(m: Any, rows: Any) -> List[Dict[str, Any]]:
    """The module's AT+CIPSTATUS rows, each with the host's view of it: its lifecycle
    state and idle time when this process's engine holds it; ``state`` says so when
    only the module knows it (a link of another program); links the engine still holds
    that the module no longer lists (closing, closed by the peer) are added."""
    held = dict(getattr(m.net, "links", {}) or {})
    out = []
    for row in rows:
        d = C.as_data(row)
        link = held.pop(d.get("link"), None)
        d["state"] = link.state.value if link is not None else "open on the module (no handle here)"
        d["idle"] = round(link.idle, 1) if link is not None else None
        out.append(d)
    for lid, link in sorted(held.items()):
        remote = link.remote or (None, None)
        out.append({"link": lid, "type": link.kind, "remote_ip": remote[0],
                    "remote_port": remote[1], "local_port": (link.local or (None, None))[1],
                    "tcp_type": int(link.accepted), "state": link.state.value,
                    "idle": round(link.idle, 1)})
    return out


def render(s: Dict[str, Any]) -> str:
    head = (f"connected to {s['ssid']!r}" if s["connected"]
            else "not connected" + (f" (joined {s['ssid']!r}, no IP yet)" if s["ssid"] else ""))
    text = head + "\n" + C.pairs([
        ("mode", s["mode_name"]), ("bssid", s["bssid"]), ("channel", s["channel"]),
        ("rssi", s["rssi"]), ("ip", s["ip"]), ("gateway", s["gateway"]),
        ("netmask", s["netmask"]), ("status", f"{s['status']} ({s['status_meaning']})")])
    if s["links"]:
        text += "\n\n" + C.table([(l["link"], l["type"], f"{l['remote_ip']}:{l['remote_port']}",
                                   l["local_port"], "server" if l["tcp_type"] else "client",
                                   l["state"], "-" if l["idle"] is None else f"{l['idle']:.1f} s")
                                  for l in s["links"]],
                                 ("LINK", "TYPE", "REMOTE", "LOCAL PORT", "ROLE", "STATE", "IDLE"))
    return text


def run(args: argparse.Namespace) -> int:
    def body(m: Any) -> int:
        s = status(m)
        C.emit(args, s, lambda: render(s))
        return C.EXIT_OK if s["connected"] else C.EXIT_OFFLINE
    return C.run_tool("status", args, body)
