"""Graceful drain on SIGTERM: stop taking calls, let live ones finish, then end the rest.

Sequence (issue "Operate it"):
1. ``draining`` is set: ``/readyz`` answers 503 (the load balancer stops routing), the voice
   webhook declines politely or redirects to ``DRAIN_FALLBACK_NUMBER``, new streams are refused.
2. Live calls go on for up to ``DRAIN_TIMEOUT_SECONDS``.
3. Calls still up then get a short spoken goodbye and are hung up (``end_reason=drain_timeout``).
4. The server exits; the lifespan flushes the store writer.

The first SIGTERM starts this; a second SIGTERM or a SIGINT exits at once.
"""

from __future__ import annotations

import asyncio
import signal
from types import FrameType

import structlog
import uvicorn

from service.app import Services

__all__ = ["DrainingServer", "drain"]

log = structlog.get_logger(__name__)


async def drain(services: Services, *, within: float, goodbye_limit: float = 8.0) -> int:
    """Run the drain; returns how many calls had to be ended by us."""
    services.draining = True
    log.warning("draining: no new calls", live_calls=len(services.calls), timeout_s=within)
    if await services.calls.wait_empty(within):
        log.info("drained: every call ended by itself")
        return 0
    remaining = services.calls.values()
    log.warning("drain timeout: ending the remaining calls politely", calls=len(remaining))
    await asyncio.gather(
        *(worker.end_politely("drain_timeout", limit_s=goodbye_limit) for worker in remaining),
        return_exceptions=True,
    )
    # The streams close as the hang-ups land; give them a moment to record their ends.
    await services.calls.wait_empty(5.0)
    return len(remaining)


class DrainingServer(uvicorn.Server):
    """uvicorn, but the first SIGTERM drains calls instead of closing the listener at once."""

    def __init__(self, config: uvicorn.Config, *, drain_timeout: float) -> None:
        super().__init__(config)
        self.drain_timeout = drain_timeout
        self._drain_task: asyncio.Task[int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self._drain_task is not None or self._loop is None:
            super().handle_exit(sig, frame)  # a second signal, or Ctrl-C: exit now
            return
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain_task is not None:
            return
        services: Services = self.config.app.state.services  # type: ignore[union-attr]
        self._drain_task = asyncio.create_task(drain(services, within=self.drain_timeout))
        self._drain_task.add_done_callback(lambda _t: setattr(self, "should_exit", True))
