"""The sender: the task that drains the links' send queues round-robin.

Owns the order in which links send (a round-robin over link ids, one command's worth
of bytes each, AT+CIPSENDBUF for TCP, AT+CIPSEND otherwise: links.Link.send_some)
and its wake-up.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from .. import errors as E
from .base import log
from .runner import CommandRunner
from .session import MAX_LINKS

if TYPE_CHECKING:
    from .links import Link


class Sender(CommandRunner):
    """The round-robin sender (see the module docstring)."""


    # ------------------------------------------------------------------ sending
    def wake_sender(self) -> None:
        self._tx_wakeup.set()

    async def _sender(self) -> None:
        while not self._closing:
            await self._tx_wakeup.wait()
            self._tx_wakeup = trio.Event()
            while not self._closing:
                ready = [l for l in self.session.links.values() if l.tx_ready()]
                if not ready:
                    break
                ready.sort(key=lambda l: (l.id - self._rr) % MAX_LINKS)
                # (in a call of its own: a local here would keep the last link served,
                # closed or not, alive until the next send)
                await self._send_some(ready[0])

    async def _send_some(self, link: Link) -> None:
        self._rr = (link.id + 1) % MAX_LINKS
        try:
            await link.send_some()
        except E.WizError as exc:
            log.debug("%s: send on link %d: %r", self.name, link.id, exc)
        except Exception:
            log.exception("%s: sender failed on link %d", self.name, link.id)
            link.fail(E.SendFailed("internal error while sending", link=link.id))
