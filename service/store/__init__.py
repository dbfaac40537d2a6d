"""Redis store: per-call state and events, written through a bounded background writer.

``connect_redis`` makes the client; ``StoreWriter`` owns all writes (never blocks the audio
path); ``CallStore`` knows the call keys (see ``service.store.calls`` for the layout).
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from service.store.calls import TERMINAL_STATUSES, CallStore, utc_now_iso
from service.store.keys import CallKeys
from service.store.writer import TRANSIENT_ERRORS, StoreOp, StoreWriter

__all__ = [
    "TERMINAL_STATUSES",
    "TRANSIENT_ERRORS",
    "CallKeys",
    "CallStore",
    "StoreOp",
    "StoreWriter",
    "connect_redis",
    "utc_now_iso",
]


def connect_redis(
    url: str | None,
    *,
    connect_timeout: float = 1.0,
    socket_timeout: float = 2.0,
    health_check_interval: int = 30,
) -> tuple[Redis, bool]:
    """A redis.asyncio client for ``url`` (``decode_responses=True``), and whether it is
    the embedded in-process fakeredis (``url`` None/empty; the caller should log loudly:
    state then lives in this process only and dies with it).

    Timeouts are short so an outage fails fast, and redis-py's own retries are off: the
    StoreWriter retries (with backoff, in order), and a read on the API path should fail
    quickly rather than hang through redis-py's default retry schedule.
    """
    if not url:
        import fakeredis  # only needed for the embedded mode

        return fakeredis.FakeAsyncRedis(decode_responses=True), True
    client = Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=connect_timeout,
        socket_timeout=socket_timeout,
        health_check_interval=health_check_interval,
        retry=Retry(NoBackoff(), 0),
    )
    return client, False
