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

import structlog

from service.services import Services

__all__ = ["drain"]

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
