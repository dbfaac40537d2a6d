"""A model session dropping mid-answer, through the whole service (issue 17).

The softphone, the service under uvicorn, a real Redis and the local OpenAI-Realtime server,
which aborts the TCP connection part-way through the agent's answer. The worker opens a fresh
session, replays the conversation, finishes the cut answer, and answers the caller's next
question with what was said before the drop.
"""

from __future__ import annotations

import asyncio

from service.demo import synthetic_caller
from service.modelserver.script import Turn
from service.peers.twilio import Softphone
from tests.conftest import TEST_AUTH_TOKEN
from tests.support.remembering import QUESTION, REMEMBERED, RESUMED, Remembering


def dropping_script() -> Remembering:
    return Remembering(
        greeting=Turn(text="Hello, order line", duration_ms=1200),
        replies=[Turn(text="Let me look that up for you now", duration_ms=3000, drop_after_ms=800)],
        user_transcripts=[QUESTION, "Did it ship?"],
    )


async def test_a_drop_mid_answer_the_call_carries_on_with_context(
    make_service, local_model
) -> None:
    model = await local_model(dropping_script())
    service = await make_service(
        realtime_backend="local",
        local_realtime_url=model.url,
        input_transcription_model="whisper-1",
    )
    phone = Softphone(
        service.base_url,
        auth_token=TEST_AUTH_TOKEN,
        public_url=service.services.settings.public_url,
        seconds=20.0,
    )
    await phone.dial()
    await phone.connect()

    async def say(text: str) -> None:
        ms = phone.speak(synthetic_caller(text), sample_rate=8000)
        await asyncio.sleep(ms / 1000 + 0.1)

    async def heard_more(ms: float) -> None:
        played = phone.playback.played_ms
        await phone.wait_for(lambda p: p.playback.played_ms > played + ms, 8)
        await phone.wait_for(lambda p: p.playback.buffered_ms == 0, 8)
        await asyncio.sleep(0.4)

    await heard_more(300)  # the greeting
    await say("My name is Ada and my order is forty two.")
    await model.wait_for_session(2)  # the first session dropped mid-answer; a fresh one opened
    await heard_more(300)  # the cut answer, then its finish from the fresh session
    await say("Did it ship?")
    await heard_more(300)
    phone.hangup()
    summary = await phone.finished()

    await service.services.writer.flush(timeout=5)
    store = service.services.store
    events = await store.get_events(summary.call_sid)
    [reconnected] = [e for e in events if e["type"] == "model_reconnected"]
    assert int(reconnected["gap_ms"]) < 2000 and reconnected["reason"].startswith("dropped")
    agent_lines = [e["text"] for e in events if e["type"] == "transcript" and e["role"] == "agent"]
    assert RESUMED.text in agent_lines and REMEMBERED.text in agent_lines
    # The fresh session was told the caller's words from before the drop.
    fresh = model.history[1]
    replayed = [e["item"] for e in fresh.received if e["type"] == "conversation.item.create"]
    assert any(
        part.get("text") == QUESTION for item in replayed for part in item.get("content", [])
    )
    record = await store.get_call(summary.call_sid)
    assert record["end_reason"] == "caller_hangup" and record["model_reconnects"] == "1"
    assert summary.closed_by == "softphone"


async def test_when_the_model_stays_away_the_call_ends_with_the_apology(
    make_service, local_model
) -> None:
    """The model server goes away for good: every fresh session is refused, and after the
    bounded attempts the service closes the stream (Twilio then speaks the fallback)."""
    model = await local_model(Remembering(greeting=Turn(text="Hello there", duration_ms=4000)))
    service = await make_service(
        realtime_backend="local",
        local_realtime_url=model.url,
        model_reconnect_backoff_seconds=0.05,
    )
    phone = Softphone(
        service.base_url,
        auth_token=TEST_AUTH_TOKEN,
        public_url=service.services.settings.public_url,
        seconds=10.0,
    )
    await phone.dial()
    await phone.connect()
    await phone.wait_for(lambda p: p.playback.played_ms > 300, 8)
    await model.stop()
    summary = await phone.finished()
    assert summary.closed_by == "server" and summary.fallback_would_run
    await service.services.writer.flush(timeout=5)
    record = await service.services.store.get_call(summary.call_sid)
    assert record["end_reason"] == "model_reconnect_failed"
    events = await service.services.store.get_events(summary.call_sid)
    [failed] = [e for e in events if e.get("reason") == "model_reconnect_failed"]
    assert "3 attempts" in failed["detail"]
