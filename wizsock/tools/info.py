"""``wizsock info``: firmware, MAC addresses, IP addresses and UART settings of the module."""
from __future__ import annotations

import argparse
from typing import Any, Dict

from . import common as C

__all__ = ["add_arguments", "run", "info"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Show the module's firmware, addresses and UART settings."
    C.add_module_arguments(parser)


def _uart(rec: Any) -> Any:
    return None if rec is None else C.as_data(rec)


def info(m: Any) -> Dict[str, Any]:
    v = m.aio.version
    addrs = m.net.addresses()
    return {
        "port": str(m.port), "host_baudrate": m.engine.baudrate,
        "firmware": m.firmware,
        "at_version": getattr(v, "at_version", None), "sdk_version": getattr(v, "sdk_version", None),
        "compile_time": getattr(v, "compile_time", None),
        "sta_mac": m.wifi.sta_mac().mac, "ap_mac": m.wifi.ap_mac().mac,
        "sta_ip": addrs.sta_ip, "ap_ip": addrs.ap_ip,
        "mode": m.wifi.mode().mode,
        "uart_cur": _uart(m.system.uart_cur()), "uart_def": _uart(m.system.uart_def()),
    }


def _uart_text(u: Any) -> str:
    if not u:
        return "-"
    parity = {0: "N", 1: "O", 2: "E"}.get(u["parity"], "?")
    return (f"{u['baudrate']} {u['databits']}{parity}{u['stopbits']}, flow control "
            + ("RTS/CTS" if u["flow_control"] else "off"))


def run(args: argparse.Namespace) -> int:
    def body(m: Any) -> int:
        d = info(m)
        C.emit(args, d, lambda: C.pairs([
            ("firmware", d["firmware"]), ("AT version", d["at_version"]),
            ("SDK version", d["sdk_version"]), ("compiled", d["compile_time"]),
            ("station MAC", d["sta_mac"]), ("SoftAP MAC", d["ap_mac"]),
            ("station IP", d["sta_ip"]), ("SoftAP IP", d["ap_ip"]),
            ("UART now", _uart_text(d["uart_cur"])), ("UART saved", _uart_text(d["uart_def"])),
            ("port", f"{d['port']} at {d['host_baudrate']} baud")]))
        return C.EXIT_OK
    return C.run_tool("info", args, body)
