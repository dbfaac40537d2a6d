"""The cross-replica call index (live, recent, feed) on a real Redis."""

from __future__ import annotations

import time

import pytest
import redis.asyncio as aioredis

from service.store import CallStore, StoreWriter, connect_redis
from service.store.call_index import CallIndex
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.network


def sid(n: int) -> str:
    return f"CA{n:032x}"


async def test_calls_enter_and_leave_the_index(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> None:
    redis, _ = connect_redis(redis_server.url)
    writer = StoreWriter(redis)
    writer.start()
    index = CallIndex(redis, "p:", recent_max=3)
    store = CallStore(redis, writer, prefix="p:", index=index)
    for n in range(5):
        store.call_started(sid(n), direction="inbound", from_="+1", to="+2", backend="none")
    store.call_ended(sid(0), end_reason="caller_hangup")
    assert await writer.flush(timeout=5)
    now_ms = int(time.time() * 1000)
    assert await index.active(now_ms) == [sid(n) for n in range(1, 5)]
    # Recent: newest first, capped at recent_max.
    assert len(await index.recent(0, 10)) == 3 == await index.recent_total()
    feed = await redis_client.xrange("p:calls:feed")
    assert [f["type"] for _, f in feed] == ["started"] * 5 + ["ended"]
    assert await index.feed_last_id() == feed[-1][0]
    # A call a crashed process never ended drops out after the live TTL.
    assert await index.active(now_ms + 86_400_000 + 60_000) == []
    await writer.close(timeout=1)
    await redis.aclose()


async def test_without_an_index_the_store_writes_only_call_keys(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> None:
    redis, _ = connect_redis(redis_server.url)
    writer = StoreWriter(redis)
    writer.start()
    store = CallStore(redis, writer, prefix="q:")
    store.call_started(sid(1), direction="inbound", from_="+1", to="+2", backend="none")
    store.call_ended(sid(1), end_reason="done")
    assert await writer.flush(timeout=5)
    assert not any(key.startswith("q:calls:") for key in await redis_client.keys("*"))
    await writer.close(timeout=1)
    await redis.aclose()
