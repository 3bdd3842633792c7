"""engine/groups.py: which one exception a public entry point raises for a trio group."""
import sys

import pytest
import trio

from wizsock import errors as E
from wizsock.engine.groups import call_collapsed, collapse

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup


def _raised(exc, cause=None):
    try:
        raise exc from cause
    except BaseException as e:
        return e


def test_a_group_of_one_gives_the_exception_itself():
    cause = _raised(FileNotFoundError(2, "No such file or directory"))
    inner = _raised(E.PortNotFound(2, "cannot open x: no such device", port="x"), cause)
    tb = inner.__traceback__
    got = collapse(ExceptionGroup("outer", [ExceptionGroup("inner", [inner])]))
    assert got is inner and got.__cause__ is cause and got.__traceback__ is tb
    assert not getattr(got, "__notes__", None)


async def _failing_nursery():
    async def fail():
        raise E.ModuleUnresponsive("no answer", rates=[115200])
    async with trio.open_nursery() as n:
        n.start_soon(fail)


def test_a_real_nursery_through_call_collapsed():
    with pytest.raises(E.ModuleUnresponsive) as ei:
        call_collapsed(trio.run, _failing_nursery)
    assert ei.value.rates == (115200,)
    # re-raised outside the except clause: the group is not its context
    assert not isinstance(ei.value.__context__, BaseExceptionGroup)


def test_several_at_once_the_callers_own_first_the_others_noted(caplog):
    caplog.set_level("DEBUG", logger="wizsock.engine")
    own = _raised(ValueError("the caller's"))
    port = _raised(E.WizError("serial port failed: EOF"))
    got = collapse(ExceptionGroup("g", [port, own]), own=own)
    assert got is own
    assert got.__notes__ == ["also, at the same time: WizError: serial port failed: EOF"]
    assert "serial port failed" in caplog.text


def test_several_at_once_an_interruption_then_the_first():
    first, second = E.CommandError("a"), E.LinkClosed("b")
    kbd = KeyboardInterrupt()
    assert collapse(BaseExceptionGroup("g", [first, kbd, second])) is kbd
    assert collapse(ExceptionGroup("g", [first, second])) is first


def test_cancelled_only_when_nothing_else():
    async def main():
        with trio.CancelScope() as cs:
            cs.cancel()
            try:
                await trio.sleep(1)
            except trio.Cancelled as c:
                cancelled = c
                error = E.ModuleReset()
                assert collapse(BaseExceptionGroup("g", [cancelled, error])) is error
                assert collapse(BaseExceptionGroup("g", [cancelled])) is cancelled
                raise
    trio.run(main)


def test_the_callers_own_group_comes_back_whole():
    """A group the caller's block raised (its own nursery's) is its own: it comes back
    as it is, not flattened to one of its members."""
    import wizsock

    async def main():
        async with wizsock.open_module("wizemu://", baudrate=921600):
            async with trio.open_nursery() as n:
                async def fail(e):
                    raise e
                n.start_soon(fail, KeyError("a"))
                n.start_soon(fail, ValueError("b"))

    with pytest.raises(ExceptionGroup) as ei:
        trio.run(main)
    assert sorted(type(e).__name__ for e in ei.value.exceptions) == ["KeyError", "ValueError"]
