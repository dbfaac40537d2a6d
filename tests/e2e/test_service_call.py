"""A whole call as Twilio would place it: the softphone against the real service and Redis."""

from __future__ import annotations

from service.peers.twilio import Softphone
from tests.conftest import TEST_AUTH_TOKEN
from tests.support.waiting import eventually


async def test_softphone_call_is_stored_complete(make_service, tmp_path) -> None:
    service = await make_service()
    store = service.services.store
    phone = Softphone(
        service.base_url,
        auth_token=TEST_AUTH_TOKEN,
        public_url=service.services.settings.public_url,
        seconds=1.5,
        dtmf=[(0.5, "12#")],
        record=tmp_path / "heard.wav",
        from_number="+15550001111",
        to_number="+15550002222",
    )
    summary = await phone.run()
    assert summary.closed_by == "softphone" and summary.invalid_messages == 0
    assert summary.frames_sent >= 70
    # Status callbacks arrive out of order: "completed" (seq 3) before "in-progress" (seq 1).
    assert (await phone.post_status("completed", 3, call_duration=2)).status_code == 204
    assert (await phone.post_status("in-progress", 1)).status_code == 204
    await service.services.writer.flush(timeout=5)

    record = await store.get_call(summary.call_sid)
    assert record["from"] == "+15550001111" and record["to"] == "+15550002222"
    assert record["direction"] == "inbound"
    assert record["stream_sid"] == summary.stream_sid
    assert record["end_reason"] == "caller_hangup"
    assert record["status"] == "completed" and record["status_seq"] == "3"
    assert record["call_duration_s"] == "2"
    assert int(record["frames_in"]) == summary.frames_sent
    assert record["started_at"] < record["ended_at"]

    events = await store.get_events(summary.call_sid)
    types = [e["type"] for e in events]
    assert types[:2] == ["webhook", "started"]
    assert [e["digit"] for e in events if e["type"] == "dtmf"] == ["1", "2", "#"]
    statuses = [(e["status"], e["applied"]) for e in events if e["type"] == "status"]
    assert statuses == [("completed", "true"), ("in-progress", "false")]
    assert "ended" in types

    ttl = await service.services.redis.ttl(store.keys.call(summary.call_sid))
    assert 0 < ttl <= service.services.settings.call_ttl_seconds


async def test_many_concurrent_calls_are_kept_apart(make_service) -> None:
    service = await make_service()
    phones = [
        Softphone(
            service.base_url,
            auth_token=TEST_AUTH_TOKEN,
            public_url=service.services.settings.public_url,
            seconds=1.0,
            dtmf=[(0.3, str(i % 10))],
        )
        for i in range(20)
    ]
    import asyncio

    summaries = await asyncio.gather(*(p.run() for p in phones))
    await eventually(lambda: len(service.services.calls) == 0)
    await service.services.writer.flush(timeout=5)
    for i, summary in enumerate(summaries):
        record = await service.services.store.get_call(summary.call_sid)
        assert record["end_reason"] == "caller_hangup"
        digits = [
            e["digit"]
            for e in await service.services.store.get_events(summary.call_sid)
            if e["type"] == "dtmf"
        ]
        assert digits == [str(i % 10)]
