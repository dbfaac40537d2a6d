"""ToolAudit against a real Redis: what the audit streams hold, through the shared writer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as aioredis

from service.store import StoreWriter, connect_redis
from service.store.audit import REDACTED, ToolAudit
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.network  # real sockets on loopback (or a real Redis)

SID = "CA" + "0123456789abcdef" * 2
OTHER = "CA" + "fedcba9876543210" * 2
TTL = 600
LIVE_TTL = 3000
TOOLS_KEY = f"va:call:{{{SID}}}:tools"
GLOBAL_KEY = "va:audit:tools"


@pytest.fixture
async def writer(
    redis_client: aioredis.Redis, redis_server: RedisServer
) -> AsyncIterator[StoreWriter]:
    redis, _ = connect_redis(redis_server.url)
    writer = StoreWriter(redis)
    writer.start()
    yield writer
    await writer.close(timeout=2)
    await redis.aclose()


def make_audit(writer: StoreWriter, **options: int) -> ToolAudit:
    return ToolAudit(
        writer, prefix="va:", call_ttl_seconds=TTL, live_ttl_seconds=LIVE_TTL, **options
    )


async def flushed(writer: StoreWriter) -> None:
    assert await writer.flush(timeout=10)
    assert writer.failed == 0


def one_tool_call(audit: ToolAudit, sid: str, call_id: str) -> None:
    """What the worker records for one tool call whose answer was spoken."""
    name = "lookup_order"
    assert audit.record(sid, call_id, name, "requested", arguments={"order_id": "A123"})
    assert audit.record(sid, call_id, name, "started")
    assert audit.record(
        sid,
        call_id,
        name,
        "finished",
        status="ok",
        result={"status": "shipped", "eta": None},
        duration_ms=41.5,
        error=None,
    )
    assert audit.record(sid, call_id, name, "spoken", heard_ms=2300, sent_ms=2400)


async def test_entries_land_in_both_streams_in_order(
    writer: StoreWriter, redis_client: aioredis.Redis
) -> None:
    audit = make_audit(writer)
    one_tool_call(audit, SID, "call_1")
    one_tool_call(audit, OTHER, "call_2")
    assert audit.record(SID, "call_3", "end_call", "cancelled", reason="barge_in")
    await flushed(writer)

    mine = await audit.call_entries(redis_client, SID)
    assert [(e["call_id"], e["state"]) for e in mine] == [
        ("call_1", "requested"),
        ("call_1", "started"),
        ("call_1", "finished"),
        ("call_1", "spoken"),
        ("call_3", "cancelled"),
    ]
    requested, _started, finished, spoken, cancelled = mine
    assert orjson.loads(requested["arguments"]) == {"order_id": "A123"}
    assert orjson.loads(finished["result"]) == {"status": "shipped", "eta": None}
    assert (finished["status"], finished["duration_ms"]) == ("ok", "41.5")
    assert "error" not in finished  # None means "not given"
    assert (spoken["heard_ms"], spoken["sent_ms"]) == ("2300", "2400")
    assert cancelled["reason"] == "barge_in"
    for entry in mine:
        assert entry["call_sid"] == SID and entry["name"] in ("lookup_order", "end_call")
        assert entry["at"].endswith("Z") and entry["id"]

    everything = await audit.recent(redis_client, count=100)
    assert len(everything) == 9
    assert [e["call_sid"] for e in everything] == [SID] * 4 + [OTHER] * 4 + [SID]
    # Same entry in both streams (only the stream ids may differ).
    strip = lambda e: {k: v for k, v in e.items() if k != "id"}  # noqa: E731
    assert [strip(e) for e in everything if e["call_sid"] == SID] == [strip(e) for e in mine]
    last_two = await audit.recent(redis_client, count=2)
    assert [e["state"] for e in last_two] == ["spoken", "cancelled"]


async def test_reserved_fields_win(writer: StoreWriter, redis_client: aioredis.Redis) -> None:
    audit = make_audit(writer)
    # call_sid/call_id/name/state are parameters (a clash is a TypeError); "at" is ours too.
    audit.record(SID, "c1", "t", "started", **{"at": "z", "detail": "d"})
    await flushed(writer)
    [entry] = await audit.call_entries(redis_client, SID)
    assert (entry["state"], entry["name"], entry["detail"]) == ("started", "t", "d")
    assert entry["at"].endswith("Z")


async def test_global_and_per_call_streams_are_capped(
    writer: StoreWriter, redis_client: aioredis.Redis
) -> None:
    audit = make_audit(writer, global_maxlen=200, call_maxlen=100)
    for i in range(1500):
        audit.record(SID if i % 2 else OTHER, f"c{i}", "t", "started", n=i)
    await flushed(writer)
    # MAXLEN ~ trims whole nodes (100 entries), so up to one node more than the cap remains.
    assert 200 <= await redis_client.xlen(GLOBAL_KEY) <= 300
    assert 100 <= await redis_client.xlen(TOOLS_KEY) <= 200
    newest = await audit.recent(redis_client, count=1)
    assert newest[0]["n"] == "1499"  # the oldest go first


async def test_sensitive_keys_are_redacted_at_any_depth(
    writer: StoreWriter, redis_client: aioredis.Redis
) -> None:
    audit = make_audit(writer)
    audit.record(
        SID,
        "c1",
        "verify",
        "requested",
        sensitive={"zip_code", "Card"},
        arguments={"order_id": "A1", "ZIP_CODE": "94107", "nested": [{"card": "4111"}]},
        raw_arguments='{"zip_code": "94107", "order_id": "A1"}',
        broken_json='{"zip_code": "941',
        card="4111",
    )
    audit.record(SID, "c1", "verify", "finished", result={"zip_code": "94107"})  # no net
    await flushed(writer)
    first, second = await audit.call_entries(redis_client, SID)
    assert orjson.loads(first["arguments"]) == {
        "order_id": "A1",
        "ZIP_CODE": REDACTED,
        "nested": [{"card": REDACTED}],
    }
    assert orjson.loads(first["raw_arguments"]) == {"zip_code": REDACTED, "order_id": "A1"}
    assert first["broken_json"] == '{"zip_code": "941'  # not JSON: cannot be redacted by key
    assert first["card"] == REDACTED
    assert orjson.loads(second["result"]) == {"zip_code": "94107"}


async def test_long_values_are_cut(writer: StoreWriter, redis_client: aioredis.Redis) -> None:
    audit = make_audit(writer, max_value_chars=100)
    audit.record(SID, "c1", "t", "finished", result={"text": "x" * 5000}, note="short")
    await flushed(writer)
    [entry] = await audit.call_entries(redis_client, SID)
    assert entry["result"].startswith('{"text":"xxx')
    assert entry["result"].endswith("…[4911 chars cut]")
    assert len(entry["result"]) < 130
    assert entry["note"] == "short"


async def test_ttl_follows_the_call(writer: StoreWriter, redis_client: aioredis.Redis) -> None:
    audit = make_audit(writer)
    audit.record(SID, "c1", "t", "started")
    await flushed(writer)
    assert LIVE_TTL - 5 <= await redis_client.ttl(TOOLS_KEY) <= LIVE_TTL
    assert await redis_client.ttl(GLOBAL_KEY) == -1  # bounded by MAXLEN, not by time

    assert audit.call_ended(SID)
    await flushed(writer)
    assert TTL - 5 <= await redis_client.ttl(TOOLS_KEY) <= TTL

    # A late entry (e.g. the hang-up's own "finished") keeps the short TTL.
    await redis_client.expire(TOOLS_KEY, 10)
    audit.record(SID, "c1", "t", "finished", status="ok")
    await flushed(writer)
    assert TTL - 5 <= await redis_client.ttl(TOOLS_KEY) <= TTL

    # Another process's audit does not know the call ended: the live TTL is not re-extended.
    audit_elsewhere = make_audit(writer)
    audit_elsewhere.record(SID, "c2", "t", "started")
    await flushed(writer)
    assert await redis_client.ttl(TOOLS_KEY) <= TTL


async def test_reads_drop_at_least_once_repeats(
    writer: StoreWriter, redis_client: aioredis.Redis
) -> None:
    audit = make_audit(writer)
    audit.record(SID, "c1", "t", "started")
    await flushed(writer)
    [entry] = await audit.call_entries(redis_client, SID)
    fields = {k: v for k, v in entry.items() if k != "id"}
    # What a batch resent after a lost reply leaves behind: the same fields, a later id.
    await redis_client.xadd(TOOLS_KEY, fields)
    await redis_client.xadd(GLOBAL_KEY, fields)
    assert await redis_client.xlen(TOOLS_KEY) == 2
    assert [e["id"] for e in await audit.call_entries(redis_client, SID)] == [entry["id"]]
    assert len(await audit.recent(redis_client)) == 1


async def test_bad_arguments() -> None:
    writer = StoreWriter(aioredis.Redis())  # never started: nothing is sent
    audit = make_audit(writer)
    with pytest.raises(ValueError):
        audit.record("", "c1", "t", "started")
    with pytest.raises(ValueError):
        ToolAudit(writer, prefix="{bad}", call_ttl_seconds=1)
    with pytest.raises(ValueError):
        ToolAudit(writer, call_ttl_seconds=0)
    assert writer.pending == 0


async def test_redis_outage_delays_entries_and_loses_none(
    own_redis_server: RedisServer,
) -> None:
    redis, _ = connect_redis(own_redis_server.url, connect_timeout=0.5, socket_timeout=0.5)
    writer = StoreWriter(redis, backoff_initial=0.01, backoff_max=0.1)
    writer.start()
    audit = make_audit(writer)
    try:
        audit.record(SID, "warmup", "t", "started")
        assert await writer.flush(timeout=5)

        own_redis_server.stop()  # not persisted: the streams start empty after the restart
        for i in range(60):
            assert audit.record(SID if i % 3 else OTHER, f"c{i}", "t", "finished", n=i)
            await asyncio.sleep(0)
        await eventually(lambda: writer.retries >= 3)
        assert writer.redis_down
        assert writer.pending == 60  # held, in order, none applied, none dropped

        # Keep recording while the server comes back (start() blocks, so off the loop).
        restart = asyncio.create_task(asyncio.to_thread(own_redis_server.start))
        for i in range(60, 120):
            assert audit.record(SID if i % 3 else OTHER, f"c{i}", "t", "finished", n=i)
            await asyncio.sleep(0.001)
        await restart
        assert await writer.flush(timeout=10)

        assert (writer.dropped, writer.failed, writer.pending) == (0, 0, 0)
        # Raw XRANGE, not the de-duplicating reader: exactly once each, in order.
        everything = await redis.xrange(GLOBAL_KEY)
        assert [int(fields["n"]) for _id, fields in everything] == list(range(120))
        mine = await redis.xrange(TOOLS_KEY)
        assert [int(fields["n"]) for _id, fields in mine] == [i for i in range(120) if i % 3]
        assert LIVE_TTL - 5 <= await redis.ttl(TOOLS_KEY) <= LIVE_TTL
    finally:
        await writer.close(timeout=2)
        await redis.aclose()


async def test_memory_per_entry(writer: StoreWriter, redis_client: aioredis.Redis) -> None:
    """Guards the module doc's bound: ~200 bytes an entry for a realistic mix."""
    audit = make_audit(writer)
    calls = 500
    for i in range(calls):
        one_tool_call(audit, "CA" + f"{i // 5:032x}", f"call_{i:020d}")
    await flushed(writer)
    used = await redis_client.memory_usage(GLOBAL_KEY, samples=0)
    per_entry = used / (calls * 4)
    assert 50 < per_entry < 300, per_entry
