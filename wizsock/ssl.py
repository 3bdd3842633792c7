"""TLS over the module.

Default: host-side TLS.  The stdlib's ``ssl`` runs over the module's plain TCP
link (the facade socket's descriptor is a real one), with full certificate and
hostname verification, SNI, ALPN and any number of sessions.  The only hook is
``ssl.SSLContext.sslsocket_class`` (installed by :func:`wizsock.patch`):
:class:`SSLSocket` is ``ssl.SSLSocket`` mixed with the facade socket, so
``ctx.wrap_socket(socket.socket()).connect(addr)`` (wrap before connect) is
routed over the module too, and a wrapped connected socket keeps answering
``getpeername()`` from the link.  Nothing else in ``ssl`` is replaced.

Opt-in: :class:`ModuleSSLContext` uses the module's own TLS (AT+CIPSTART "SSL",
AT+CIPSSLCONF, AT+CASEND / CLICASEND / AWSPKSEND) for hosts too small for
``ssl``.  The module carries one SSL link at a time; a second raises
:class:`wizsock.errors.LinkLimitError`.  Certificate verification is on unless
``ModuleSSLContext(verify=False)`` says otherwise in so many words.
"""
from __future__ import annotations

import errno
import os
import socket as _stdsocket
import ssl as _stdssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Optional, Union

from wizsock import protocol as _proto
from wizsock import socket as _wsocket
from wizsock.facade import adoption as _adoption

if TYPE_CHECKING:
    from typing_extensions import Buffer, Self

#: a file name, as ``open()`` takes it
FilePath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

__all__ = ["SSLSocket", "ModuleSSLContext", "install_hook", "remove_hook"]


class SSLSocket(_stdssl.SSLSocket, _wsocket.socket):
    """``ssl.SSLSocket`` whose connect goes through the facade socket."""

    @classmethod
    def _create(cls, sock: _stdsocket.socket, *args: Any, **kwargs: Any) -> Self:
        if isinstance(sock, _wsocket.socket) and sock.wiz_listening:
            raise OSError(errno.EOPNOTSUPP, "TLS on a module server socket: wrap the accepted sockets")
        # ssl.SSLSocket._create builds the new object from sock.fileno(); the facade's
        # __init__ takes the routing state of ``sock`` over (same descriptor).
        with _adoption.adopting(sock if isinstance(sock, _wsocket.socket) else None):
            # ssl.SSLSocket's constructor (its __init__ refuses to be called): not in typeshed
            new: Self = super()._create(sock, *args, **kwargs)  # type: ignore[misc]
            return new


_saved_class: Optional[type[_stdssl.SSLSocket]] = None


def install_hook() -> None:
    """Make every SSLContext create :class:`SSLSocket` (wrap-before-connect over the module)."""
    global _saved_class
    if _stdssl.SSLContext.sslsocket_class is not SSLSocket:
        _saved_class = _stdssl.SSLContext.sslsocket_class
        _stdssl.SSLContext.sslsocket_class = SSLSocket


def remove_hook() -> None:
    """Undo :func:`install_hook`: SSLContext creates the class it created before."""
    global _saved_class
    if _stdssl.SSLContext.sslsocket_class is SSLSocket:
        _stdssl.SSLContext.sslsocket_class = _saved_class or _stdssl.SSLSocket
        _saved_class = None


# --------------------------------------------------------------------------------------
# The module's own TLS (opt-in)


class ModuleSSLContext:
    """TLS terminated on the module (AT+CIPSTART "SSL"), for hosts too small for ``ssl``.

    ``cafile``/``cadata``: the CA the module verifies the server against (sent with
    AT+CASEND).  ``certfile``/``keyfile``: a client certificate (CLICASEND / AWSPKSEND).
    Verification is on; ``verify=False`` turns it off explicitly.  ``wrap_socket``
    returns the facade socket itself, marked so that its ``connect`` opens an SSL link:
    the bytes on the descriptor are then the plaintext.
    """

    def __init__(self, cafile: Optional[FilePath] = None, cadata: Union[str, Buffer, None] = None, *,
                 certfile: Optional[FilePath] = None, keyfile: Optional[FilePath] = None,
                 verify: bool = True) -> None:
        if not isinstance(verify, bool):
            raise TypeError("verify must be True or False")
        self.verify = verify
        # Checked here, by the codec's one PEM path (wizsock.protocol.pem_upload), so a
        # bad file fails at construction with PemError (a ValueError), not at connect.
        self.ca_pem = self._checked("CASEND", self._read(cafile, cadata))
        cert = self._read(certfile, None)
        key = self._read(keyfile, None)
        if cert is not None and key is None:
            # like ssl.load_cert_chain: the key may sit in the certificate file
            cert, key = self._split_key(cert)
        self.cert_pem = self._checked("CLICASEND", cert)
        self.key_pem = self._checked("AWSPKSEND", key)
        if verify and self.ca_pem is None:
            raise ValueError("the module verifies the server against a CA you give it: pass "
                             "cafile= or cadata=, or verify=False to connect without verification")

    def __repr__(self) -> str:
        return (f"<ModuleSSLContext verify={self.verify} ca={self.ca_pem is not None} "
                f"cert={self.cert_pem is not None} key={self.key_pem is not None}>")

    @staticmethod
    def _read(path: Optional[FilePath], data: Union[str, Buffer, None]) -> Optional[bytes]:
        if data is not None:
            if isinstance(data, str):
                # (surrogatepass: never a UnicodeEncodeError whose args hold the whole
                # text, a key maybe; the codec then refuses non-ASCII without quoting it)
                return data.encode("utf-8", "surrogatepass")
            return bytes(data)
        if path is not None:
            with open(path, "rb") as f:
                # bounded: a device or a huge file must not hang or exhaust memory
                return f.read(_proto.PEM_MAX + 1)
        return None

    @staticmethod
    def _checked(name: str, pem: Optional[bytes]) -> Optional[bytes]:
        if pem is None:
            return None
        return _proto.pem_upload(name, pem)

    @staticmethod
    def _split_key(pem: bytes) -> "tuple[bytes, Optional[bytes]]":
        blocks = _proto.pem_blocks(pem)
        keys = [b for b in blocks if "PRIVATE KEY" in b[0]]
        if not keys or len(blocks) == 1:
            return pem, None
        others = [b for b in blocks if "PRIVATE KEY" not in b[0]]
        def join(bs: list[tuple[str, list[str]]]) -> bytes:
            return "".join(l + "\n" for _, lines in bs for l in lines).encode("ascii")
        return join(others), join(keys)

    def wrap_socket(self, sock: _stdsocket.socket, server_side: bool = False,
                    do_handshake_on_connect: bool = True, suppress_ragged_eofs: bool = True,
                    server_hostname: Optional[str] = None, session: object = None) -> _wsocket.socket:
        """``sock`` itself (a wizsock socket, not yet connected), marked so that its
        ``connect`` opens the module's SSL link (``server_hostname``: the host to ask for)."""
        if server_side:
            raise ValueError("the module's TLS is client-side only")
        if not isinstance(sock, _wsocket.socket) or sock.wiz_kernel_routed:
            raise ValueError("ModuleSSLContext wraps a wizsock socket that is not yet connected")
        if sock.wiz_connected:
            raise ValueError("wrap the socket before connecting it: the module's TLS starts with the link")
        if server_hostname is not None:
            # checked now, as ssl does (ValueError at wrap time): it becomes CIPSTART's host
            try:
                _proto.COMMANDS["CIPSTART"].set(link=0, type="SSL", remote=server_hostname,
                                                port=443)
            except ValueError as exc:
                raise ValueError(f"server_hostname: {exc}") from None
        sock.wiz_use_tls(self, server_hostname)
        return sock

    async def _configure(self, aio: Any) -> None:
        """Send the CA / client credentials and the verification level before CIPSTART."""
        if self.ca_pem is not None:
            await aio.net.set_ca(self.ca_pem)
        if self.cert_pem is not None:
            await aio.aws.set_client_cert(self.cert_pem)
        if self.key_pem is not None:
            await aio.aws.set_private_key(self.key_pem)
        # AT+CIPSSLCONF: 0 no verification, 1 verify but connect anyway, 2 verify
        await aio.net.set_ssl_conf(2 if self.verify else 0)

    def link_opener(self, aio: Any, ip: str, port: int,
                    hostname: Optional[str]) -> Callable[[], Awaitable[Any]]:
        """What a wrapped socket's connect runs: send the credentials, then open the
        module's SSL link to ``hostname`` (or ``ip``)."""
        async def open_ssl() -> Any:
            await self._configure(aio)
            return await aio.net.open_ssl(hostname or ip, port)
        return open_ssl
