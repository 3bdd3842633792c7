"""What the emulated module says about itself: its firmware's identity and boot output.

The module (core.py) and its command handlers (commands.py) both need these; a module of
their own so that the handlers do not import the module they are registered with.
"""
from __future__ import annotations

FIRMWARE = "1.1.1.7"
#: AT+GMR's answer: AT version, SDK version, build time
FIRMWARE_INFO = ("1.1.1.7(May  9 2022 10:22:13)", "3.0.0(a0ffff9f)", "May  9 2022 10:22:13")
#: what the ROM prints at 74880 baud on a reset, read at the host's rate
BOOT_NOISE = b"\x00\xfe\x1b\x8a ets Jan  8 2013,rst cause:2, boot mode:(3,7)\r\n\x92\x0c\xf1load 0x40100000\r\n"


def derive_ap_mac(sta_mac: str) -> str:
    """The soft-AP MAC the firmware derives from the station MAC (locally administered bit set)."""
    b = [int(x, 16) for x in sta_mac.split(":")]
    b[0] |= 0x02
    return ":".join("%02x" % x for x in b)
