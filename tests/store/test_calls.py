"""CallStore against a real Redis: what Redis holds after a call."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
import redis.asyncio as aioredis

from service.store import CallKeys, CallStore, StoreWriter, connect_redis
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.network  # real sockets on loopback (or a real Redis)

SID = "CA" + "0123456789abcdef" * 2
TTL = 600
LIVE_TTL = 3000


@pytest.fixture
async def store(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> AsyncIterator[CallStore]:
    redis, _ = connect_redis(redis_server.url)
    writer = StoreWriter(redis)
    writer.start()
    yield CallStore(redis, writer, prefix="va:", ttl_seconds=TTL, live_ttl_seconds=LIVE_TTL)
    await writer.close(timeout=2)
    await redis.aclose()


async def flushed(store: CallStore) -> None:
    assert await store.writer.flush(timeout=5)
    assert store.writer.failed == 0


def start(store: CallStore, sid: str = SID) -> None:
    assert store.call_started(
        sid,
        direction="inbound",
        from_="+15551230000",
        to="+15557650000",
        stream_sid="MZ42",
        backend="openai",
        account_sid="AC9",
        profile="hotline",
    )


def is_utc_iso(value: str) -> bool:
    return value.endswith("Z") and datetime.fromisoformat(value).utcoffset() is not None


async def test_full_lifecycle(store: CallStore) -> None:
    start(store)
    await store.record_status(SID, status="in-progress", sequence_number=2, fields={})
    await store.record_status(SID, status="ringing", sequence_number=1, fields={"x": None})
    store.append_event(SID, "dtmf", digit="5", track=None)
    store.append_event(SID, "barge_in", heard_ms=1234, truncated=True)
    store.update_call(SID, model="gpt-realtime", ignored=None)
    store.call_ended(SID, end_reason="caller_hangup")
    await store.record_status(
        SID, status="completed", sequence_number=3, fields={"CallDuration": 42}
    )
    await flushed(store)

    call = await store.get_call(SID)
    assert {k: call[k] for k in call if not k.endswith("_at")} == {
        "direction": "inbound",
        "from": "+15551230000",
        "to": "+15557650000",
        "stream_sid": "MZ42",
        "backend": "openai",
        "account_sid": "AC9",
        "profile": "hotline",
        "model": "gpt-realtime",
        "status": "completed",
        "status_seq": "3",
        "end_reason": "caller_hangup",
        "CallDuration": "42",
    }
    assert all(is_utc_iso(call[k]) for k in ("started_at", "ended_at", "status_at"))
    assert call["started_at"] <= call["ended_at"]

    events = await store.get_events(SID)
    assert [e["type"] for e in events] == [
        "started",
        "status",
        "status",
        "dtmf",
        "barge_in",
        "ended",
        "status",
    ]
    started, in_progress, ringing, dtmf, barge_in, ended, completed = events
    assert started["stream_sid"] == "MZ42" and started["from"] == "+15551230000"
    assert (in_progress["status"], in_progress["applied"]) == ("in-progress", "true")
    assert (ringing["sequence_number"], ringing["applied"]) == ("1", "false")
    assert dtmf["digit"] == "5" and "track" not in dtmf
    assert barge_in["heard_ms"] == "1234" and barge_in["truncated"] == "true"
    assert ended["end_reason"] == "caller_hangup" and ended["status"] == "completed"
    assert completed["applied"] == "true" and completed["CallDuration"] == "42"
    assert all(is_utc_iso(e["at"]) and e["id"] for e in events)
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)


async def test_out_of_order_status_keeps_the_newest(store: CallStore) -> None:
    await store.record_status(SID, status="in-progress", sequence_number=3, fields={"a": 1})
    await store.record_status(SID, status="ringing", sequence_number=2, fields={"a": 2})
    await flushed(store)
    call = await store.get_call(SID)
    assert (call["status"], call["status_seq"], call["a"]) == ("in-progress", "3", "1")
    events = await store.get_events(SID)
    assert [(e["status"], e["sequence_number"], e["applied"], e["a"]) for e in events] == [
        ("in-progress", "3", "true", "1"),
        ("ringing", "2", "false", "2"),
    ]


async def test_status_never_moves_back_from_terminal(store: CallStore) -> None:
    start(store)
    store.call_ended(SID, end_reason="stream_stopped")
    # A late non-terminal callback, even with a fresh sequence number, is recorded only.
    await store.record_status(SID, status="in-progress", sequence_number=2, fields={})
    await flushed(store)
    call = await store.get_call(SID)
    assert call["status"] == "completed" and "status_seq" not in call
    assert (await store.get_events(SID))[-1]["applied"] == "false"


async def test_call_ended_is_idempotent_and_keeps_terminal_status(store: CallStore) -> None:
    start(store)
    await store.record_status(SID, status="busy", sequence_number=4, fields={})
    store.call_ended(SID, end_reason="first")
    store.call_ended(SID, end_reason="second")
    await flushed(store)
    call = await store.get_call(SID)
    assert (call["status"], call["end_reason"]) == ("busy", "first")
    types = [e["type"] for e in await store.get_events(SID)]
    assert types == ["started", "status", "ended"]


async def test_live_safety_ttl_then_ended_ttl(
    store: CallStore, redis_client: aioredis.Redis
) -> None:
    keys = store.keys.both(SID)
    start(store)
    await flushed(store)
    for key in keys:
        assert TTL < await redis_client.ttl(key) <= LIVE_TTL  # live: safety TTL only

    store.append_event(SID, "transcript", text="hi")  # a live write must not shorten it
    await flushed(store)
    for key in keys:
        assert await redis_client.ttl(key) > TTL

    store.call_ended(SID, end_reason="caller_hangup")
    await flushed(store)
    for key in keys:
        assert 0 < await redis_client.ttl(key) <= TTL


async def test_late_writes_reapply_the_ended_ttl(
    store: CallStore, redis_client: aioredis.Redis, redis_server: RedisServer
) -> None:
    keys = store.keys.both(SID)
    start(store)
    store.call_ended(SID, end_reason="caller_hangup")
    await flushed(store)

    async def persist() -> None:
        for key in keys:
            assert await redis_client.persist(key)

    # This process knows the call ended: blind writes re-apply the short TTL.
    for late_write in (
        lambda: store.update_call(SID, note="late"),
        lambda: store.append_event(SID, "transcript", text="late"),
    ):
        await persist()
        late_write()
        await flushed(store)
        for key in keys:
            assert 0 < await redis_client.ttl(key) <= TTL

    # Another process (a fresh store) gets a late status callback: it reads ended_at.
    other_redis, _ = connect_redis(redis_server.url)
    other_writer = StoreWriter(other_redis)
    other_writer.start()
    other = CallStore(other_redis, other_writer, prefix="va:", ttl_seconds=TTL)
    await persist()
    await other.record_status(SID, status="completed", sequence_number=9, fields={})
    assert await other_writer.flush(timeout=5)
    for key in keys:
        assert 0 < await redis_client.ttl(key) <= TTL

    # …and a blind write to a call whose keys already expired leaves a TTL, never none.
    await redis_client.delete(*keys)
    other.append_event(SID, "transcript", text="very late")
    assert await other_writer.flush(timeout=5)
    assert 0 < await redis_client.ttl(keys[1]) <= 86_400
    await other_writer.close(timeout=1)
    await other_redis.aclose()


async def test_concurrent_status_callbacks_from_several_processes(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> None:
    # Each "process" has its own client, writer and store, so their WATCH/MULTI
    # transactions really race on the same hash.
    processes = []
    for _ in range(6):
        redis, _ = connect_redis(redis_server.url)
        writer = StoreWriter(redis)
        writer.start()
        processes.append((redis, writer, CallStore(redis, writer, prefix="va:")))
    seqs = list(range(120))
    random.Random(7).shuffle(seqs)

    async def deliver(store: CallStore, mine: list[int]) -> None:
        for seq in mine:
            await store.record_status(SID, status=f"st{seq}", sequence_number=seq, fields={})
            await asyncio.sleep(0)

    await asyncio.gather(
        *(deliver(store, seqs[i :: len(processes)]) for i, (_, _, store) in enumerate(processes))
    )
    for _, writer, _ in processes:
        assert await writer.flush(timeout=10)
        assert writer.failed == 0

    store = processes[0][2]
    call = await store.get_call(SID)
    assert (call["status"], call["status_seq"]) == ("st119", "119")
    events = await store.get_events(SID)
    assert sorted(int(e["sequence_number"]) for e in events) == list(range(120))
    # Stream order is commit order (the XADD is inside the MULTI), so the applied flags must
    # tell a consistent story: applied exactly when newer than everything applied before.
    highest = -1
    for event in events:
        seq = int(event["sequence_number"])
        assert event["applied"] == ("true" if seq > highest else "false"), event
        highest = max(highest, seq)
    for redis, writer, _ in processes:
        await writer.close(timeout=1)
        await redis.aclose()


async def test_prefix_applies_to_every_key(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> None:
    redis, _ = connect_redis(redis_server.url)
    writer = StoreWriter(redis)
    writer.start()
    store = CallStore(redis, writer, prefix="tenant-a:")
    start(store)
    store.append_event(SID, "dtmf", digit="1")
    store.update_call(SID, model="m")
    await store.record_status(SID, status="completed", sequence_number=1, fields={})
    store.call_ended(SID, end_reason="done")
    assert await writer.flush(timeout=5)
    assert sorted(await redis_client.keys("*")) == [
        f"tenant-a:call:{{{SID}}}",
        f"tenant-a:call:{{{SID}}}:events",
    ]
    await writer.close(timeout=1)
    await redis.aclose()


async def test_events_stream_is_capped(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> None:
    redis, _ = connect_redis(redis_server.url)
    writer = StoreWriter(redis)
    writer.start()
    store = CallStore(redis, writer, events_maxlen=50)
    for i in range(1000):
        store.append_event(SID, "transcript", n=i)
    assert await writer.flush(timeout=5)
    # Approximate trimming: whole 100-entry nodes go, so up to maxlen + 100 remain.
    length = await redis_client.xlen(store.keys.events(SID))
    assert 50 <= length <= 150
    events = await store.get_events(SID)
    assert events[-1]["n"] == "999"  # the newest survive
    await writer.close(timeout=1)
    await redis.aclose()


async def test_ping(store: CallStore, own_redis_server: RedisServer) -> None:
    assert await store.ping()
    redis, _ = connect_redis(own_redis_server.url)
    down = CallStore(redis, StoreWriter(redis))
    assert await down.ping()
    own_redis_server.stop()
    started = time.monotonic()
    assert await down.ping(timeout=0.5) is False
    assert time.monotonic() - started < 1.5
    await redis.aclose()


def test_keys_reject_braces_and_empty_sids() -> None:
    with pytest.raises(ValueError):
        CallKeys("va{x}:")
    with pytest.raises(ValueError):
        CallKeys("va:").call("")
    assert CallKeys("va:").both("CA1") == ("va:call:{CA1}", "va:call:{CA1}:events")


async def test_embedded_fakeredis_lifecycle() -> None:
    # The one test on fakeredis: the embedded mode (no REDIS_URL) must work end to end.
    redis, embedded = connect_redis(None)
    assert embedded
    writer = StoreWriter(redis)
    writer.start()
    store = CallStore(redis, writer, prefix="va:", ttl_seconds=TTL)
    start(store)
    await store.record_status(SID, status="in-progress", sequence_number=2, fields={})
    await store.record_status(SID, status="ringing", sequence_number=1, fields={})
    store.append_event(SID, "dtmf", digit="9")
    store.call_ended(SID, end_reason="caller_hangup")
    assert await writer.flush(timeout=5)
    assert writer.failed == 0
    call = await store.get_call(SID)
    assert (call["status"], call["status_seq"], call["end_reason"]) == (
        "completed",
        "2",
        "caller_hangup",
    )
    events = await store.get_events(SID)
    assert [e["type"] for e in events] == ["started", "status", "status", "dtmf", "ended"]
    assert [e.get("applied") for e in events[1:3]] == ["true", "false"]
    assert 0 < await redis.ttl(store.keys.call(SID)) <= TTL
    assert await store.ping()
    await writer.close(timeout=1)
    await redis.aclose()
