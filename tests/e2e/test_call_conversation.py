"""A real conversation through the whole service (DESIGN.md "Barge-in, precisely").

The softphone (Twilio's side), the service under uvicorn, a real Redis and the local
OpenAI-Realtime server, all on 127.0.0.1. Every client event the service sends the model is
checked against the openai SDK's GA types by the ``local_model`` fixture.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from service.demo import DEMO_SCRIPT, converse
from service.modelserver.script import Script, Turn
from service.peers.twilio import Softphone
from tests.conftest import TEST_AUTH_TOKEN
from tests.support.waiting import eventually


def mark_parts(name: str) -> tuple[int, str, int]:
    generation, item_id, ms = name.split(":")
    return int(generation), item_id, int(ms)


@pytest.mark.parametrize("audio_mode", ["transcode", "passthrough"])
async def test_barge_in_truncates_at_what_the_caller_heard(
    make_service, local_model, audio_mode: str
) -> None:
    model = await local_model(DEMO_SCRIPT)
    service = await make_service(
        realtime_backend="local", local_realtime_url=model.url, audio_mode=audio_mode
    )
    messages: list[dict[str, Any]] = []

    async def keep(message: dict[str, Any]) -> None:
        messages.append(message)

    result = await converse(service, TEST_AUTH_TOKEN, on_server_message=keep)
    await service.services.writer.flush(timeout=5)
    store = service.services.store
    events = await store.get_events(result.summary.call_sid)
    [barge_in] = [e for e in events if e["type"] == "barge_in"]
    item_id = barge_in["item_id"]
    audio_end_ms = int(barge_in["audio_end_ms"])

    # The model received exactly that truncate and accepted it (conversation.item.truncated).
    session = model.history[0]
    truncates = [e for e in session.received if e["type"] == "conversation.item.truncate"]
    assert [(t["item_id"], t["audio_end_ms"]) for t in truncates] == [(item_id, audio_end_ms)]
    assert any(e["type"] == "truncated" and e["item_id"] == item_id for e in events)
    assert not any(e["type"] == "model_error" and e["benign"] == "false" for e in events)

    # What the softphone played of that item, from its own mark records.
    records = [r for r in result.phone.playback.mark_records if mark_parts(r.name)[1] == item_id]
    first_played = next(r for r in records if not r.cleared)
    item_start = first_played.played_ms_at_echo - mark_parts(first_played.name)[2]
    cleared = [r for r in records if r.cleared]
    assert cleared, "the barge-in came while the item was still queued at the carrier"
    heard_ms = cleared[0].played_ms_at_echo - item_start
    assert abs(heard_ms - audio_end_ms) <= 40, (heard_ms, audio_end_ms)
    assert int(barge_in["sent_ms"]) == 4000 and audio_end_ms < 4000

    # After the clear, nothing of the interrupted item reached the caller.
    clear_at = next(i for i, m in enumerate(messages) if m["event"] == "clear")
    later_marks = [m["mark"]["name"] for m in messages[clear_at:] if m["event"] == "mark"]
    assert later_marks, "the agent answered the interruption"
    assert all(mark_parts(name)[1] != item_id for name in later_marks)
    assert all(mark_parts(name)[0] == 1 for name in later_marks)  # a new generation

    # The model was asked for the audio format of the mode.
    update = next(e for e in session.received if e["type"] == "session.update")
    expected = "audio/pcmu" if audio_mode == "passthrough" else "audio/pcm"
    assert update["session"]["audio"]["output"]["format"]["type"] == expected

    # The session was opened at the voice webhook (pre-warm) and claimed by the stream.
    assert service.services.factory.prewarmed.claimed == 1

    # The greeting was heard whole, and the call is on record.
    record = await store.get_call(result.summary.call_sid)
    assert record["backend"] == "local" and record["barge_ins"] == "1"
    assert record["end_reason"] == "caller_hangup"
    transcripts = [e["text"] for e in events if e["type"] == "transcript"]
    assert transcripts[0].startswith("Hello, thanks for calling")


async def call_until_ended(service, **options: Any) -> Softphone:
    phone = Softphone(
        service.base_url,
        auth_token=TEST_AUTH_TOKEN,
        public_url=service.services.settings.public_url,
        seconds=8.0,
        **options,
    )
    await phone.run()
    return phone


async def test_model_drops_the_socket_mid_call_ends_cleanly(make_service, local_model) -> None:
    """With reconnecting off (MODEL_RECONNECT_ATTEMPTS=0) a drop ends the call cleanly; with
    it on, see test_model_reconnect.py."""
    script = dataclasses.replace(
        DEMO_SCRIPT, greeting=Turn(text="Hello there", duration_ms=2000, drop_after_ms=500)
    )
    model = await local_model(script)
    service = await make_service(
        realtime_backend="local", local_realtime_url=model.url, model_reconnect_attempts=0
    )
    phone = await call_until_ended(service)
    summary = phone.summary()
    # The service closed the stream itself, so Twilio would now play the apology.
    assert summary.closed_by == "server" and summary.fallback_would_run
    assert summary.duration_s < 5
    await eventually(lambda: store_field(service, summary.call_sid, "end_reason"))
    record = await service.services.store.get_call(summary.call_sid)
    assert record["end_reason"] == "model_disconnected"


async def store_field(service, call_sid: str, field: str) -> str:
    return (await service.services.store.get_call(call_sid)).get(field, "")


async def test_model_that_never_answers_session_update(make_service, local_model) -> None:
    model = await local_model(Script(answer_session_update=False))
    service = await make_service(
        realtime_backend="local", local_realtime_url=model.url, model_ready_timeout_seconds=0.5
    )
    phone = await call_until_ended(service)
    summary = phone.summary()
    assert summary.closed_by == "server" and summary.duration_s < 4
    await eventually(lambda: store_field(service, summary.call_sid, "end_reason"))
    assert await store_field(service, summary.call_sid, "end_reason") == "model_unavailable"


async def test_unreachable_model_ends_the_call_politely(make_service) -> None:
    from service.serving import free_port

    service = await make_service(
        realtime_backend="local", local_realtime_url=f"ws://127.0.0.1:{free_port()}/v1/realtime"
    )
    phone = await call_until_ended(service)
    summary = phone.summary()
    assert summary.closed_by == "server" and summary.fallback_would_run
    await eventually(lambda: store_field(service, summary.call_sid, "end_reason"))
    assert await store_field(service, summary.call_sid, "end_reason") == "model_unavailable"


async def test_model_error_events_are_recorded_and_the_call_goes_on(
    make_service, local_model
) -> None:
    from service.modelserver.script import ErrorSpec

    script = dataclasses.replace(
        DEMO_SCRIPT,
        greeting=Turn(
            text="Hello",
            duration_ms=800,
            error_event=ErrorSpec("The server had an error", code="server_error"),
        ),
    )
    model = await local_model(script)
    service = await make_service(realtime_backend="local", local_realtime_url=model.url)
    phone = Softphone(
        service.base_url,
        auth_token=TEST_AUTH_TOKEN,
        public_url=service.services.settings.public_url,
        seconds=2.0,
    )
    summary = await phone.run()
    assert summary.closed_by == "softphone"  # the call carried on to its natural end
    assert summary.ms_played >= 700
    await service.services.writer.flush(timeout=5)
    events = await service.services.store.get_events(summary.call_sid)
    errors = [e for e in events if e["type"] == "model_error"]
    assert errors and errors[0]["code"] == "server_error"
    await asyncio.sleep(0)


async def test_prewarmed_session_nobody_claims_is_closed(make_service, local_model) -> None:
    from tests.support.twilio_peer import inbound_params, post_webhook

    model = await local_model(DEMO_SCRIPT)
    service = await make_service(
        realtime_backend="local", local_realtime_url=model.url, prewarm_timeout_seconds=0.3
    )
    response = await post_webhook(
        service.base_url, TEST_AUTH_TOKEN, "/twilio/voice", inbound_params("CA" + "7" * 32)
    )
    assert response.status_code == 200
    await model.wait_for_session()
    await eventually(lambda: service.services.factory.prewarmed.expired == 1)
    await eventually(lambda: not model.sessions)  # the model connection was closed


async def test_azure_backend_speaks_the_same_protocol(make_service, local_model) -> None:
    """E: /openai/v1/realtime?model=<deployment> with the api-key header."""
    model = await local_model(DEMO_SCRIPT)
    service = await make_service(
        realtime_backend="azure",
        azure_openai_endpoint=f"http://127.0.0.1:{model.port}",
        azure_openai_api_key="azure-key-0123456789",
        azure_openai_deployment="my-realtime",
    )
    model.api_key = "azure-key-0123456789"  # the model now refuses any other key
    phone = Softphone(
        service.base_url,
        auth_token=TEST_AUTH_TOKEN,
        public_url=service.services.settings.public_url,
        seconds=2.5,
    )
    summary = await phone.run()
    assert summary.closed_by == "softphone" and summary.ms_played >= 1500  # the greeting
    session = model.history[0]
    assert session.config["model"] == "my-realtime"
