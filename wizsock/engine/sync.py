"""``wizsock.Module``: the engine on its own trio loop in a background thread.

Blocking calls go to that loop through ``trio.from_thread``.  The API is the
async one with every coroutine method made blocking; ``run``/``start_soon``
let other layers (the socket facade's pumps) run async code on the engine's
loop, where ``module.aio`` is the async module object.
"""
from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, Optional, TypeVar, Union

import serial
import trio
from .api import AsyncModule
from .groups import call_collapsed
from .links import Link, Server
from .passthrough import Passthrough

if TYPE_CHECKING:
    from .api import MqttMessage
    from typing_extensions import Unpack

    from .core import Engine, Response
    from .options import EngineOptions

log = logging.getLogger("wizsock.engine")

_T = TypeVar("_T")


class _SyncProxy:
    """Blocking view of an async object living on the engine's loop."""

    __slots__ = ("_obj", "_module")

    _obj: Any
    _module: Module

    def __init__(self, obj: object, module: Module) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_module", module)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._obj, name)
        if inspect.iscoroutinefunction(value):
            module = self._module

            @functools.wraps(value)
            def blocking(*args: Any, **kw: Any) -> Any:
                return module.wrap(module.run(value, *args, **kw))
            return blocking
        if name == "passthrough" and isinstance(self._obj, Net):
            module = self._module
            opener = self._obj.open_passthrough

            @functools.wraps(value)
            def passthrough(*args: Any, **kw: Any) -> Any:
                # blocking: `with m.net.passthrough(host, port) as stream:`; the
                # stream's send_all/receive_some block, leaving the with closes it
                return module.wrap(module.run(opener, *args, **kw))
            return passthrough
        if name == "messages" and callable(value):
            module = self._module

            def messages(*args: Any, **kw: Any) -> _SyncIterator:
                recv = module.call_sync(value, *args, **kw)
                return _SyncIterator(recv, module)
            return messages
        if isinstance(value, (Link, Server, Passthrough)) or isinstance(value, _GROUP_TYPES):
            return _SyncProxy(value, self._module)
        return value

    def __setattr__(self, name: str, value: object) -> None:
        setattr(self._obj, name, value)

    def __repr__(self) -> str:
        return f"<blocking {self._obj!r}>"

    def __enter__(self) -> _SyncProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        close = getattr(self._obj, "aclose", None)
        if close is not None:
            self._module.run(close)


class _SyncIterator:
    def __init__(self, recv: trio.MemoryReceiveChannel[MqttMessage], module: Module) -> None:
        self._recv = recv
        self._module = module

    def __iter__(self) -> _SyncIterator:
        return self

    def __next__(self) -> MqttMessage:
        try:
            return self._module.run(self._recv.receive)
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopIteration from None

    def receive(self, timeout: Optional[float] = None) -> MqttMessage:
        async def get() -> MqttMessage:
            with trio.fail_after(timeout) if timeout else _null():
                return await self._recv.receive()
        return self._module.run(get)

    def close(self) -> None:
        self._module.call_sync(self._recv.close)


class _null:
    def __enter__(self) -> _null:
        return self

    def __exit__(self, *a: object) -> Literal[False]:
        return False


from .api import Aws, Azure, Mqtt, Net, System, Wifi  # noqa: E402

_GROUP_TYPES = (System, Wifi, Net, Mqtt, Azure, Aws)


class Module:
    """A module driven from blocking code.

    ::

        with wizsock.Module("wizemu://") as m:
            m.wifi.join("ssid", "pw")
            m.run(async_fn, *args)        # on the engine's loop
            m.start_soon(async_fn, *args) # a task there (socket pumps)

    Opening raises what ``open_module`` raises (``errors.PortError`` and its
    subclasses, ``errors.ModuleUnresponsive``), and no call raises an exception
    group (docs/design.md 3c).
    """

    def __init__(self, port: Union[str, serial.SerialBase], baudrate: int = 115200,
                 **options: Unpack[EngineOptions]) -> None:
        self.port = port
        self._options = options
        self._baudrate = baudrate
        self._token: Optional[trio.lowlevel.TrioToken] = None
        self._tasks: Optional[trio.Nursery] = None
        self._stop: Optional[trio.Event] = None
        self._error: Optional[BaseException] = None
        self._closed = False
        # set by the engine's thread before __init__ returns (or raises)
        self.aio: AsyncModule = None  # type: ignore[assignment]
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"wizsock-engine {port}",
                                        daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            err, self._error = self._error, None
            self._thread.join(5)
            raise err

    def _main(self) -> None:
        from .. import _orig
        _orig.mark_internal()
        try:
            trio.run(self._amain)
        except BaseException as exc:  # pragma: no cover - reported through _ready
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()
            else:
                log.exception("wizsock engine thread ended with an error")

    async def _amain(self) -> None:
        from .core import Engine  # noqa: F401
        from . import open_module
        try:
            async with open_module(self.port, self._baudrate, **self._options) as m:
                self.aio = m
                self._token = trio.lowlevel.current_trio_token()
                self._stop = trio.Event()
                async with trio.open_nursery() as tasks:
                    self._tasks = tasks
                    self._ready.set()
                    await self._stop.wait()
                    tasks.cancel_scope.cancel()
        except BaseException as exc:
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()
                return
            raise

    # -- bridging
    def run(self, async_fn: Callable[..., Awaitable[_T]], *args: Any, **kw: Any) -> _T:
        """Run ``async_fn(*args, **kw)`` on the engine's loop and return its result."""
        if self._closed:
            raise RuntimeError("module is closed")
        if kw:
            async_fn = functools.partial(async_fn, **kw)
        # (a nursery inside async_fn: never a group out)
        result: _T = call_collapsed(functools.partial(trio.from_thread.run, trio_token=self._token),
                                    async_fn, *args)
        return result

    def call_sync(self, fn: Callable[..., _T], *args: Any, **kw: Any) -> _T:
        """Run the plain function ``fn(*args, **kw)`` on the engine's loop; its result."""
        if kw:
            fn = functools.partial(fn, **kw)
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def start_soon(self, async_fn: Callable[..., Awaitable[object]], *args: Any, name: object = None) -> None:
        """Spawn ``async_fn(*args)`` as a task on the engine's loop (lives until close)."""
        if self._closed:
            raise RuntimeError("module is closed")
        # run_sync_soon is the one thread-safe entry that never blocks, so this also
        # works from a thread running another trio loop (a non-blocking connect from
        # trio code); a failure inside the callback must not take the engine loop down.
        tasks, token = self._tasks, self._token
        assert tasks is not None and token is not None   # set before __init__ returned

        def spawn() -> None:
            try:
                tasks.start_soon(async_fn, *args, name=name)
            except RuntimeError:   # closing: the task nursery is gone
                log.debug("%s: not started, module closing", name or async_fn)
        token.run_sync_soon(spawn)

    def wrap(self, value: Any) -> Any:
        """A blocking view of a Link, Server or Passthrough; anything else as it is."""
        if isinstance(value, (Link, Server, Passthrough)):
            return _SyncProxy(value, self)
        return value

    # -- API groups
    # the groups' methods, made blocking (Any: a blocking view has no static type of its own)
    @property
    def system(self) -> Any:
        return _SyncProxy(self.aio.system, self)

    @property
    def wifi(self) -> Any:
        return _SyncProxy(self.aio.wifi, self)

    @property
    def net(self) -> Any:
        return _SyncProxy(self.aio.net, self)

    @property
    def mqtt(self) -> Any:
        return _SyncProxy(self.aio.mqtt, self)

    @property
    def azure(self) -> Any:
        return _SyncProxy(self.aio.azure, self)

    @property
    def aws(self) -> Any:
        return _SyncProxy(self.aio.aws, self)

    @property
    def engine(self) -> Engine:
        return self.aio.engine

    @property
    def firmware(self) -> Optional[str]:
        return self.aio.engine.firmware

    def command(self, request: Any, **kw: Any) -> Response:
        return self.run(self.aio.command, request, **kw)

    # -- lifetime
    def close(self) -> None:
        if self._closed:
            return
        try:
            assert self._stop is not None   # set before __init__ returned
            self.call_sync(self._stop.set)
        except (trio.RunFinishedError, RuntimeError):
            pass
        self._closed = True
        self._thread.join(15)

    def __enter__(self) -> Module:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<wizsock.Module {self.port!r}{' closed' if self._closed else ''}>"
