"""The seam between the facade and the engine: what the facade needs of a module, its
``net`` group, a link and a server, typed as Protocols.

The engine's classes (``wizsock.Module``, ``AsyncModule``, ``Net``, ``Link``,
``Server``) satisfy them structurally; the facade names no engine class, so the engine
may change anything the facade does not use.  What the facade reads only where an
engine offers it (a link's ``id``, ``module_closed``, ``shutdown_write``; ``Net.reserve_link``)
stays a ``getattr``/``hasattr`` and is not part of these.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Sized
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Optional, Protocol, TypeVar

_T = TypeVar("_T")

#: an IPv4 socket address
Address = tuple[str, int]


class FacadeLink(Protocol):
    """A module link (TCP, UDP or SSL) as a pump drives it."""

    @property
    def remote(self) -> Optional[Address]: ...
    @property
    def local(self) -> Optional[Address]: ...
    @property
    def closed(self) -> bool: ...
    @property
    def buffered(self) -> int: ...
    @property
    def unsent(self) -> int: ...
    async def send(self, data: bytes) -> None: ...
    async def receive(self, max_bytes: int = ...) -> bytes: ...
    async def send_to(self, data: bytes, addr: Address) -> None: ...
    async def receive_from(self, max_bytes: int = ...) -> tuple[bytes, Any]: ...
    async def aclose(self) -> None: ...


class FacadeServer(Protocol):
    """The module's server (AT+CIPSERVER) as a listening socket's pump drives it."""

    async def accept(self) -> FacadeLink: ...
    async def aclose(self) -> None: ...


class FacadeNet(Protocol):
    """The module's TCP/IP group (``aio.net``) as the facade uses it."""

    @property
    def links(self) -> Sized: ...
    async def resolve(self, name: str) -> str: ...
    async def reserve_link(self, kind: str = ..., wait: Optional[float] = ...) -> AbstractContextManager[object]: ...
    async def open_tcp(self, host: str, port: int) -> FacadeLink: ...
    async def open_ssl(self, host: str, port: int) -> FacadeLink: ...
    async def open_udp(self, host: str, port: int, local_port: Optional[int] = ...,
                       mode: int = ...) -> FacadeLink: ...
    async def listen(self, port: int, backlog: int = ...) -> FacadeServer: ...


class FacadeAsyncModule(Protocol):
    """The engine's async module object (what ``open_module`` yields)."""

    @property
    def net(self) -> FacadeNet: ...


class FacadeModule(Protocol):
    """A blocking module (``wizsock.Module``): the engine on a loop of its own."""

    @property
    def aio(self) -> FacadeAsyncModule: ...
    def run(self, async_fn: Callable[..., Awaitable[_T]], *args: Any) -> _T: ...
    def start_soon(self, async_fn: Callable[..., Awaitable[object]], *args: Any) -> None: ...


if TYPE_CHECKING:
    from wizsock.engine.api import AsyncModule, Net
    from wizsock.engine.links import Link, Server
    from wizsock.engine.sync import Module

    def _engine_fits(module: Module, aio: AsyncModule, net: Net, link: Link, server: Server) -> None:
        """mypy checks here (on the package) that the engine's classes fit the seam."""
        fits: tuple[FacadeModule, FacadeAsyncModule, FacadeNet, FacadeLink, FacadeServer]
        fits = (module, aio, net, link, server)
