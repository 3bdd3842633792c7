"""``wizsock scan``: the access points the module sees (AT+CWLAP)."""
from __future__ import annotations

import argparse
from typing import Any, List, Optional

from wizsock.protocol import ECN

from . import common as C

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "List the WiFi networks the module sees (AT+CWLAP), strongest first."
    C.add_module_arguments(parser)
    parser.add_argument("--ssid", default=None, help="only this network")


def scan(m: Any, ssid: Optional[str] = None) -> List[Any]:
    """Scan in station mode (a SoftAP-only module is switched to SoftAP+station, not saved)."""
    if m.wifi.mode().mode == 2:
        m.wifi.set_mode(3)
    aps = m.wifi.scan(ssid=ssid)
    return sorted(aps, key=lambda ap: -(ap.rssi if ap.rssi is not None else -999))


def run(args: argparse.Namespace) -> int:
    def body(m: Any) -> int:
        with C.progress_for(m, "scanning"):
            aps = scan(m, args.ssid)
        C.emit(args, aps, lambda: C.table(
            [(ap.ssid, ap.mac, ap.channel, ap.rssi, C.names_of(ECN, ap.ecn),
              "" if ap.wps is None else ("yes" if ap.wps else "no")) for ap in aps],
            ("SSID", "BSSID", "CHANNEL", "RSSI", "SECURITY", "WPS"))
            if aps else "no networks found")
        return C.EXIT_OK
    return C.run_tool("scan", args, body, join_emulator=False)
