"""The framer the rest of wizsock uses: compiled if built, else the pure-Python twin.

``WIZSOCK_NO_EXTENSIONS=1`` forces the twin (the aiohttp/yarl/multidict
convention), e.g. to check that both behave the same.  ``COMPILED`` says which
one is in use.  See docs/design.md section 1 for the events.
"""
import os
from types import ModuleType
from typing import TYPE_CHECKING, Any, Tuple, Union

_impl: ModuleType
if os.environ.get("WIZSOCK_NO_EXTENSIONS"):
    from wizsock import _framer_py as _impl
else:
    try:
        from wizsock import _framer as _impl
    except ImportError:  # not built (no compiler at install time): the twin serves
        from wizsock import _framer_py as _impl

COMPILED = _impl.__name__ == "wizsock._framer"

if TYPE_CHECKING:
    # Both implementations keep to the stub (_framer.pyi); a checker reads the names there.
    from wizsock._framer import (RESULT_CODES, Busy, Data, Echo, Framer, Garbage, Info, LinkEvent, Prompt, Ready,
                                 Recv, Result, SendBufAck, Subscription, Text, Wifi)
else:
    Framer = _impl.Framer
    Data = _impl.Data
    Prompt = _impl.Prompt
    Result = _impl.Result
    Busy = _impl.Busy
    Recv = _impl.Recv
    SendBufAck = _impl.SendBufAck
    Ready = _impl.Ready
    LinkEvent = _impl.LinkEvent
    Wifi = _impl.Wifi
    Info = _impl.Info
    Subscription = _impl.Subscription
    Text = _impl.Text
    Echo = _impl.Echo
    Garbage = _impl.Garbage
    RESULT_CODES = _impl.RESULT_CODES

#: any event `Framer.feed` returns
Event = Union[Data, Prompt, Result, Busy, Recv, SendBufAck, Ready, LinkEvent, Wifi, Info, Subscription, Text, Echo,
              Garbage]


def astuple(ev: Event) -> Tuple[Any, ...]:
    """(classname, *fields): compares events across the two implementations."""
    return (type(ev).__name__,) + tuple(getattr(ev, name) for name in ev._fields)


__all__ = [
    "Framer", "COMPILED", "Event", "astuple", "RESULT_CODES", "Data", "Prompt", "Result", "Busy",
    "Recv", "SendBufAck", "Ready", "LinkEvent", "Wifi", "Info", "Subscription", "Text",
    "Echo", "Garbage",
]
