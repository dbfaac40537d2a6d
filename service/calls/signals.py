"""Neutral events for a live call that may be held by another process.

A carrier's callback (Twilio's async AMD verdict) lands on whichever replica the load
balancer picks, while the call's media stream — and its worker — live on one of them. The
edge publishes the neutral event on one Redis pub/sub channel; every process listens and
hands it to the call if it holds it. Pub/sub is fire-and-forget, which fits: a verdict for a
call that has ended (or a process that restarts) has nobody left to act on it, and the
verdict itself is also stored on the call record by the edge.

Memory: one subscription per process; a message is a few hundred bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import orjson
import structlog
from redis.asyncio import Redis

from service.telephony.events import AnswerDetected

__all__ = ["CallSignals"]

log = structlog.get_logger(__name__)
Handler = Callable[[str, AnswerDetected], Awaitable[None]]


class CallSignals:
    def __init__(self, redis: Redis, prefix: str, handler: Handler) -> None:
        self._redis = redis
        self.channel = f"{prefix}call-signals"
        self._handler = handler
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def publish(self, call_sid: str, event: AnswerDetected) -> None:
        message = {"call_sid": call_sid, "party": event.party,
                   "greeting_ended": event.greeting_ended, "verdict": event.verdict}  # fmt: skip
        await self._redis.publish(self.channel, orjson.dumps(message))

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen())

    async def wait_ready(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        failures = 0
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._ready.set()
                    failures = 0
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            await self._deliver(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away: resubscribe after a pause
                if failures == 0:
                    log.warning("call signals subscription lost", error=str(exc))
                failures += 1
                await asyncio.sleep(min(5.0, 0.5 * 2**failures))

    async def _deliver(self, data: bytes | str) -> None:
        try:
            message = orjson.loads(data)
            event = AnswerDetected(
                party=str(message["party"]),
                greeting_ended=bool(message.get("greeting_ended")),
                verdict=str(message.get("verdict", "")),
            )
            await self._handler(str(message["call_sid"]), event)
        except Exception:
            log.exception("call signal not delivered")
