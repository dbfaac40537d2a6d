"""A sideband connection: our server driving a call whose audio OpenAI carries itself.

A SIP (or WebRTC) call's media runs between the caller and OpenAI; we attach to the call's
session with the same GA protocol over ``wss://…/v1/realtime?call_id=…`` (sip-and-outbound.md
1.4: bearer API key, no ``model`` parameter). Everything but the transport is
``RealtimeConnection``'s; what differs is what a dropped socket means. The call goes on
without us at OpenAI, so a socket that breaks (no close frame, or any code but 1000) is
reattached by ``call_id`` a bounded number of times before the worker is told the model has
gone (then it hangs the call up: a call is never left without its owner). A clean close
(1000) is the server ending the session: the call is over.

Memory: ``RealtimeConnection``'s, plus a counter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import quote

import structlog

from service.realtime.events import ModelClosed, ModelEvent, SessionResumed
from service.realtime.openai.connection import RealtimeConnection
from service.realtime.openai.protocol import OpenAIRealtimeProtocol
from service.realtime.session import ModelUnavailable

__all__ = ["SidebandConnection", "sideband_url"]

log = structlog.get_logger(__name__)
NORMAL_CLOSURE = 1000  # RFC 6455 7.4.1


def sideband_url(base: str, call_id: str) -> str:
    """1.4: the call is chosen by ``call_id``; a ``model`` parameter is not used."""
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}call_id={quote(call_id, safe='')}"


class SidebandConnection(RealtimeConnection):
    # The session is the SIP call's at OpenAI: it is reattached by call_id (below, reported as
    # SessionResumed), never replaced by a fresh one from the worker.
    can_reopen = False

    def __init__(
        self,
        base_url: str,
        call_id: str,
        headers: dict[str, str],
        protocol: OpenAIRealtimeProtocol,
        *,
        ready_timeout: float = 5.0,
        reattach_attempts: int = 2,
        reattach_delay: float = 0.5,
    ) -> None:
        super().__init__(
            sideband_url(base_url, call_id), headers, protocol, ready_timeout=ready_timeout
        )
        self.call_id = call_id
        self.reattach_attempts = reattach_attempts
        self.reattach_delay = reattach_delay
        self.reattached = 0
        self._closing = False

    async def events(self) -> AsyncIterator[ModelEvent]:
        """``RealtimeConnection.events``, reattaching by ``call_id`` when the socket breaks
        (reported as ``SessionResumed``); the last event is still always ``ModelClosed``."""
        while True:
            closed: ModelClosed | None = None
            async for event in super().events():
                if isinstance(event, ModelClosed):
                    closed = event
                    break
                yield event
            assert closed is not None  # the parent always ends with ModelClosed
            code = self._ws.close_code if self._ws is not None else None
            if code == NORMAL_CLOSURE and not self._closing:
                yield ModelClosed(closed.reason, call_over=True)  # the server ended the call
                return
            if self._closing or self._ws is None:
                yield closed
                return
            lost_at = time.monotonic()
            if not await self._reattach():
                yield ModelClosed(f"{closed.reason}; reattaching by call_id failed")
                return
            gap_ms = round((time.monotonic() - lost_at) * 1000)
            yield SessionResumed(f"sideband reattached after {closed.reason}", gap_ms)

    async def _reattach(self) -> bool:
        for attempt in range(1, self.reattach_attempts + 1):
            await asyncio.sleep(self.reattach_delay * attempt)
            if self._closing:
                return False
            try:
                await self._connect()
            except ModelUnavailable as exc:
                log.warning("sideband reattach failed", attempt=attempt, error=str(exc))
                continue
            self.reattached += 1
            return True
        return False

    async def close(self) -> None:
        self._closing = True
        await super().close()
