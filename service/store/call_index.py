"""An index of calls across replicas, for the operator's dashboard (``service/ui/``).

Each call's own keys (``service.store.calls``) say everything about one call, but nothing lists
the calls: a dashboard watching every replica needs that. Three small keys, written by
:class:`~service.store.calls.CallStore` at call start and end (``P`` is ``REDIS_KEY_PREFIX``)::

    P calls:active    sorted set   CallSid → start time (epoch ms); removed at call end
    P calls:recent    sorted set   CallSid → start time (epoch ms); the newest ``recent_max``
    P calls:feed      stream       one entry per start/end (``type``, ``call_sid``), capped at
                                   about ``feed_maxlen``: the dashboard's live list blocks on it

Bounds: ``calls:recent`` holds at most ``recent_max`` members (~100 bytes each: 10 000 ≈ 1 MB);
``calls:feed`` about ``feed_maxlen`` + 100 entries. ``calls:active`` holds the live calls, plus
any a crashed process never ended: readers drop members older than ``live_ttl_seconds`` (the
call keys' own safety TTL), and members whose hash has ``ended_at`` or has expired.

These keys live outside the call's hash-tag slot, so on Redis Cluster they are written by their
own op next to the call's (never in its MULTI); the index may briefly lag the call's hash.
"""

from __future__ import annotations

from datetime import datetime

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from service.store.writer import StoreOp

__all__ = ["CallIndex"]


def _epoch_ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class CallIndex:
    """Writes (through the shared writer) and reads the cross-replica call index."""

    def __init__(
        self,
        redis: Redis,
        prefix: str = "",
        *,
        recent_max: int = 10_000,
        feed_maxlen: int = 1000,
        live_ttl_seconds: int = 86_400,
    ) -> None:
        if recent_max < 1 or feed_maxlen < 1:
            raise ValueError("recent_max and feed_maxlen must be positive")
        self._redis = redis
        self.active_key = f"{prefix}calls:active"
        self.recent_key = f"{prefix}calls:recent"
        self.feed_key = f"{prefix}calls:feed"
        self._recent_max = recent_max
        self._feed_maxlen = feed_maxlen
        self._live_ttl_ms = live_ttl_seconds * 1000

    # -- writes: queued on the writer after the call's own op -------------------------------

    def started_op(self, call_sid: str, started_at: str) -> StoreOp:
        score = _epoch_ms(started_at)

        def build(pipe: Pipeline) -> None:
            pipe.zadd(self.active_key, {call_sid: score})
            pipe.zadd(self.recent_key, {call_sid: score})
            # Invariant: at most recent_max members (the oldest go first).
            pipe.zremrangebyrank(self.recent_key, 0, -(self._recent_max + 1))
            self._feed(pipe, "started", call_sid)

        return StoreOp.batched("index_started", build, call_sid=call_sid)

    def ended_op(self, call_sid: str) -> StoreOp:
        def build(pipe: Pipeline) -> None:
            pipe.zrem(self.active_key, call_sid)
            self._feed(pipe, "ended", call_sid)

        return StoreOp.batched("index_ended", build, call_sid=call_sid)

    def _feed(self, pipe: Pipeline, kind: str, call_sid: str) -> None:
        fields = {"type": kind, "call_sid": call_sid}
        pipe.xadd(self.feed_key, fields, maxlen=self._feed_maxlen, approximate=True)

    # -- reads -----------------------------------------------------------------------------

    async def active(self, now_ms: int, limit: int = 500) -> list[str]:
        """Live calls' sids, oldest first; members past the live TTL are dropped on the way."""
        await self._redis.zremrangebyscore(self.active_key, "-inf", now_ms - self._live_ttl_ms)
        sids = await self._redis.zrange(self.active_key, 0, limit - 1)
        return [_text(sid) for sid in sids]

    async def recent(self, offset: int, count: int) -> list[str]:
        """Sids of calls by start time, newest first."""
        sids = await self._redis.zrevrange(self.recent_key, offset, offset + count - 1)
        return [_text(sid) for sid in sids]

    async def recent_total(self) -> int:
        return int(await self._redis.zcard(self.recent_key))

    async def feed_last_id(self) -> str:
        """The feed's newest entry id ("0-0" when empty): where a live reader starts."""
        entries = await self._redis.xrevrange(self.feed_key, count=1)
        return _text(entries[0][0]) if entries else "0-0"
