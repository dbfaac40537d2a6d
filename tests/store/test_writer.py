"""StoreWriter against a real Redis: order, bounds, outages, bad ops, close."""

from __future__ import annotations

import asyncio
import inspect
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from structlog.testing import capture_logs

from service.store import CallStore, StoreOp, StoreWriter, connect_redis
from tests.support.redis_server import RedisServer, free_port

pytestmark = pytest.mark.network  # real sockets on loopback (or a real Redis)

LIST = "writer:test"


def push(value: object) -> StoreOp:
    """A batchable op: RPUSH value onto the test list."""

    def build(pipe: Pipeline) -> None:
        pipe.rpush(LIST, str(value))

    return StoreOp.batched(f"push:{value}", build)


def push_exclusive(value: object) -> StoreOp:
    """The same write as an exclusive op (own round trip, ends the batch before it)."""

    async def run(redis: aioredis.Redis) -> None:
        await redis.rpush(LIST, str(value))

    return StoreOp.exclusive(f"xpush:{value}", run)


async def wait_until(predicate: Callable[[], bool]) -> None:
    # Polls a counter the writer bumps; there is no event to wait on, by design.
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not met within 5 s")


@pytest.fixture
async def client(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> AsyncIterator[aioredis.Redis]:
    # redis_client (already flushed) is only used for the flush; the writer gets a client
    # configured the way the service makes it.
    redis, embedded = connect_redis(redis_server.url)
    assert not embedded
    yield redis
    await redis.aclose()


@pytest.fixture
async def own_client(own_redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    redis, _ = connect_redis(own_redis_server.url, connect_timeout=0.5, socket_timeout=0.5)
    yield redis
    await redis.aclose()


async def test_ops_apply_in_submission_order(client: aioredis.Redis) -> None:
    writer = StoreWriter(client, batch_size=64)
    writer.start()
    n = 3000
    for i in range(n):
        # Exclusive ops sprinkled in split batches; order must hold across both kinds.
        assert writer.submit(push_exclusive(i) if i % 97 == 0 else push(i))
    assert await writer.flush(timeout=10)
    assert await client.lrange(LIST, 0, -1) == [str(i) for i in range(n)]
    assert (writer.written, writer.dropped, writer.failed, writer.pending) == (n, 0, 0, 0)
    assert await writer.close(timeout=1) == 0


async def test_full_queue_drops_newest_counts_and_logs_once(client: aioredis.Redis) -> None:
    writer = StoreWriter(client, max_pending=5, drop_log_interval=60)
    with capture_logs() as logs:
        accepted = [writer.submit(push(i)) for i in range(12)]
    assert accepted == [True] * 5 + [False] * 7
    assert (writer.pending, writer.dropped) == (5, 7)
    drop_lines = [e for e in logs if e["event"] == "store_op_dropped"]
    assert len(drop_lines) == 1  # rate-limited, not one line per drop
    assert drop_lines[0]["log_level"] == "warning"

    writer.start()
    assert await writer.flush(timeout=5)
    # The queued (oldest) ops survived; the refused ones never arrive.
    assert await client.lrange(LIST, 0, -1) == ["0", "1", "2", "3", "4"]
    await writer.close(timeout=1)


async def test_outage_loses_nothing_and_keeps_order(
    own_redis_server: RedisServer, own_client: aioredis.Redis
) -> None:
    writer = StoreWriter(own_client, backoff_initial=0.01, backoff_max=0.1)
    writer.start()
    assert writer.submit(push("warmup"))
    assert await writer.flush(timeout=5)

    own_redis_server.stop()  # data is not persisted: the list starts empty after restart
    with capture_logs() as logs:
        for i in range(100):
            assert writer.submit(push_exclusive(i) if i % 10 == 0 else push(i))
            await asyncio.sleep(0)
        await wait_until(lambda: writer.retries >= 3)
        assert writer.redis_down
        assert writer.pending == 100  # nothing applied, nothing dropped while down

        # Keep submitting while the server comes back (start() blocks, so off the loop).
        restart = asyncio.create_task(asyncio.to_thread(own_redis_server.start))
        for i in range(100, 200):
            assert writer.submit(push(i))
            await asyncio.sleep(0.001)
        await restart
        assert await writer.flush(timeout=10)

    assert await own_client.lrange(LIST, 0, -1) == [str(i) for i in range(200)]
    assert (writer.dropped, writer.failed, writer.pending) == (0, 0, 0)
    assert writer.written == 201
    assert writer.retries >= 3
    assert not writer.redis_down
    events = [e["event"] for e in logs]
    assert events.count("redis_unavailable") == 1  # once per outage, not per retry
    assert events.count("redis_recovered") == 1
    recovered = next(e for e in logs if e["event"] == "redis_recovered")
    assert recovered["outage_s"] > 0
    await writer.close(timeout=1)


async def test_bad_ops_are_skipped_and_counted_without_wedging(
    client: aioredis.Redis,
) -> None:
    await client.set("a-string", "x")

    def wrongtype(pipe: Pipeline) -> None:
        pipe.hset("a-string", "f", "v")

    def raises(pipe: Pipeline) -> None:
        pipe.rpush(LIST, "must-not-appear")  # queued, then taken back when build raises
        raise TypeError("bug in a builder")

    def unencodable(pipe: Pipeline) -> None:
        # The encoder rejects this at execute time, breaking the whole pipeline: the writer
        # must isolate the culprit and still write its neighbours.
        pipe.rpush(LIST, object())  # type: ignore[arg-type]

    async def wrongtype_exclusive(redis: aioredis.Redis) -> None:
        await redis.lpush("a-string", "v")

    writer = StoreWriter(client)
    ops = [
        push(1),
        StoreOp.batched("wrongtype", wrongtype),
        push(2),
        StoreOp.batched("raises", raises),
        push(3),
        StoreOp.exclusive("wrongtype_exclusive", wrongtype_exclusive),
        push(4),
        StoreOp.batched("unencodable", unencodable),
        push(5),
    ]
    for op in ops:
        assert writer.submit(op)  # all queued before start: they go out as batches
    with capture_logs() as logs:
        writer.start()
        assert await writer.flush(timeout=5)
    assert await client.lrange(LIST, 0, -1) == ["1", "2", "3", "4", "5"]
    assert (writer.written, writer.failed, writer.retries) == (5, 4, 0)
    failed = sorted(e["op"] for e in logs if e["event"] == "store_op_failed")
    assert failed == ["raises", "unencodable", "wrongtype", "wrongtype_exclusive"]
    await writer.close(timeout=1)


async def test_close_flushes_pending_then_refuses(client: aioredis.Redis) -> None:
    writer = StoreWriter(client)
    writer.start()
    for i in range(1000):
        writer.submit(push(i))
    assert await writer.close(timeout=5) == 0
    assert await client.llen(LIST) == 1000
    assert writer.submit(push("late")) is False
    assert writer.dropped == 1


async def test_close_with_redis_down_reports_unwritten(
    own_redis_server: RedisServer, own_client: aioredis.Redis
) -> None:
    writer = StoreWriter(own_client, backoff_initial=0.01, backoff_max=0.05)
    writer.start()
    own_redis_server.stop()
    for i in range(7):
        writer.submit(push(i))
    started = time.monotonic()
    with capture_logs() as logs:
        assert await writer.close(timeout=0.3) == 7
    assert time.monotonic() - started < 2
    closed = next(e for e in logs if e["event"] == "store_writer_closed_with_unwritten_ops")
    assert closed["unwritten"] == 7


async def test_submit_is_sync_and_never_waits_for_redis() -> None:
    # Nothing listens on this port: any wait on Redis would show up as connect failures.
    redis, _ = connect_redis(f"redis://127.0.0.1:{free_port()}/0")
    writer = StoreWriter(redis, max_pending=20_000, backoff_initial=0.01)
    assert not inspect.iscoroutinefunction(writer.submit)
    writer.start()
    await asyncio.sleep(0.05)  # let the writer hit the dead server first
    started = time.perf_counter()
    results = [writer.submit(push(i)) for i in range(20_000)]
    elapsed = time.perf_counter() - started
    assert all(results)
    assert elapsed < 1.0  # ~µs each; generous bound, this is not a benchmark
    assert await writer.close(timeout=0.1) > 0
    await redis.aclose()


async def test_queued_op_memory_matches_documented_bound(client: aioredis.Redis) -> None:
    # writer.py documents ~1–1.5 KB per queued op (→ 10k ops ≈ 10–15 MB). Keep it honest.
    writer = StoreWriter(client, max_pending=5000)
    store = CallStore(client, writer, prefix="va:")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(2000):
            store.append_event(f"CA{i:032x}", "transcript", role="user", text="hello " * 5)
            store.update_call(f"CA{i:032x}", profile="hotline")
        per_op = (tracemalloc.get_traced_memory()[0] - before) / writer.pending
    finally:
        tracemalloc.stop()
    assert writer.pending == 4000
    assert per_op < 2000, per_op
