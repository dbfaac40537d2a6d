"""Bad model events through the whole service (issue 11, items 1, 3 and 5).

The local OpenAI-Realtime server sends what a broken or hostile model might: fields of the
wrong type, huge events, refused or lost response requests. The phone call must carry on (or,
for a message over the connection's limit, end cleanly with a recorded reason).
"""

from __future__ import annotations

import base64
import dataclasses

import orjson

from service.modelserver.hotline_script import HotlineScript
from service.modelserver.script import ErrorSpec, ResponseRequest, Script, Turn
from service.peers.twilio import Softphone
from service.realtime.wire import MAX_MESSAGE_BYTES, MAX_MESSAGE_CHARS, MAX_TEXT_CHARS
from tests.conftest import TEST_AUTH_TOKEN
from tests.e2e.test_call_tools import ask, audit_of, caller, hotline_service, states
from tests.support.waiting import eventually


def phone_for(service, seconds: float) -> Softphone:
    return Softphone(
        service.base_url,
        auth_token=TEST_AUTH_TOKEN,
        public_url=service.services.settings.public_url,
        seconds=seconds,
    )


def metric(service, name: str, **labels: str) -> float:
    value = service.services.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def events_of(service, call_sid: str) -> list[dict[str, str]]:
    await service.services.writer.flush(timeout=5)
    return await service.services.store.get_events(call_sid)


@dataclasses.dataclass
class RefusesFirstToolAnswer(HotlineScript):
    """The first ``response.create`` after the order lookup's output is refused (or lost); the
    retry is answered as usual. (Test-only state: one server, one call.)"""

    fault: Turn = dataclasses.field(default_factory=Turn)
    faults_left: int = 1

    def turn_for(self, request: ResponseRequest) -> Turn:
        item = request.last_user_item or {}
        output = orjson.loads(item.get("output") or "{}") if "output" in item else {}
        if request.trigger == "client" and "found" in output and self.faults_left:
            self.faults_left -= 1
            return self.fault
        return super().turn_for(request)


async def test_a_refused_tool_answer_request_is_asked_again_and_heard(
    make_service, local_model
) -> None:
    # (A request never acknowledged takes the same retry path after response_ack_timeout;
    # that case is covered socket-free in tests/calls/test_worker.py, to spare a 10 s call.)
    fault = Turn(refuse=ErrorSpec("The server had an error while processing your request."))
    model, service = await hotline_service(
        make_service,
        local_model,
        RefusesFirstToolAnswer(fault=fault),
        response_ack_timeout_seconds=1.0,
    )
    phone = caller(service, seconds=14.0)
    await phone.dial()
    await phone.connect()
    await phone.wait_for(lambda p: p.playback.played_ms > 500 and p.playback.buffered_ms == 0, 8)
    ask(phone)

    async def answer_spoken() -> bool:
        entries = await audit_of(service, phone.call_sid)
        return "spoken" in states(entries, "lookup_order")

    await eventually(answer_spoken, 12)
    phone.hangup()
    summary = await phone.finished()

    assert model.script.faults_left == 0  # the fault happened
    creates = [e for e in model.history[0].received if e["type"] == "response.create"]
    events = await events_of(service, summary.call_sid)
    said = [e["text"] for e in events if e["type"] == "transcript" and e["role"] == "agent"]
    assert any("UPS" in line for line in said), said  # the caller heard the answer
    entries = await audit_of(service, summary.call_sid)
    assert states(entries, "lookup_order")[-1] == "spoken"
    assert any(e["type"] == "model_error" and e["code"] == "server_error" for e in events)
    assert len(creates) >= 3  # greeting, the failed request, its retry


BAD_EVENTS: list[dict | str] = [
    {"type": "input_audio_buffer.speech_stopped", "item_id": "i", "audio_end_ms": "²"},
    {"type": "response.created", "response": {"id": 1.5, "metadata": "x"}},
    {"type": "response.created", "response": "not an object"},
    {"type": "session.updated", "session": []},
    {"type": "error", "error": "not an object"},
    {"type": ["a", "list"]},
    {"type": {"a": "dict"}},
    {"type": "response.output_audio.delta", "response_id": "r", "item_id": "i", "delta": 7},
    {"type": "response.done", "response": {"id": "r", "status_details": "x"}},
    {"type": "response.done", "response": 3},
    {"type": "conversation.item.truncated", "item_id": None, "audio_end_ms": [1]},
    {"type": "response.function_call_arguments.done", "call_id": {}, "name": 1},
    "[1, 2, 3]",
    "{not json",
]


async def test_malformed_model_events_are_counted_and_the_call_carries_on(
    make_service, local_model
) -> None:
    model = await local_model(Script(greeting=Turn(text="Hello there", duration_ms=6000)))
    service = await make_service(realtime_backend="local", local_realtime_url=model.url)
    phone = phone_for(service, 4.0)
    await phone.dial()
    await phone.connect()
    await phone.wait_for(lambda p: p.playback.played_ms > 400, 8)
    session = model.history[0]
    for event in BAD_EVENTS:
        await model.push_raw(session, event if isinstance(event, str) else orjson.dumps(event))
    # Garbage positions in the barge-in trigger: the barge-in still happens.
    await model.push_raw(
        session,
        orjson.dumps(
            {"type": "input_audio_buffer.speech_started", "item_id": "x", "audio_start_ms": "x"}
        ),
    )
    summary = await phone.finished()

    assert summary.closed_by == "softphone"  # the call carried on to its natural end
    events = await events_of(service, summary.call_sid)
    malformed = [e for e in events if e["type"] == "model_error" and e["code"] == "malformed_event"]
    assert len(malformed) == len(BAD_EVENTS) + 1
    assert any(e["type"] == "barge_in" for e in events)
    assert not any(e["type"] == "ended" and e["end_reason"] == "internal_error" for e in events)
    assert metric(service, "voice_model_errors_total", code="malformed_event") == len(malformed)


async def test_huge_model_events_are_bounded(make_service, local_model) -> None:
    model = await local_model(Script(greeting=Turn(text="Hi", duration_ms=500)))
    # Reconnecting off: this test is about the bound, and ends the call on the 1009 close
    # (with reconnecting on, the worker opens a fresh session instead: test_model_reconnect).
    service = await make_service(
        realtime_backend="local", local_realtime_url=model.url, model_reconnect_attempts=0
    )
    phone = phone_for(service, 8.0)
    await phone.dial()
    await phone.connect()
    await phone.wait_for(lambda p: p.playback.played_ms >= 400, 8)
    session = model.history[0]
    played_before = phone.playback.played_ms
    # Just under the limit: 5 s of 24 kHz PCM16 in one delta, played in pieces.
    pcm = b"\x00\x10" * 120_000
    delta = {"type": "response.output_audio.delta", "response_id": "r_big", "item_id": "i_big"}
    await model.push_raw(session, orjson.dumps({**delta, "delta": base64.b64encode(pcm).decode()}))
    # Long texts are cut before they are stored.
    await model.push_raw(
        session,
        orjson.dumps(
            {
                "type": "response.output_audio_transcript.done",
                "item_id": "i_big",
                "transcript": "word " * 100_000,
            }
        ),
    )
    await model.push_raw(
        session,
        orjson.dumps({"type": "error", "error": {"code": "x", "message": "m" * 500_000}}),
    )
    await phone.wait_for(lambda p: p.playback.played_ms - played_before >= 4000, 8)
    # Over the connection's limit: the model session is closed (1009) and the call ends cleanly.
    await model.push_raw(session, orjson.dumps({**delta, "delta": "A" * (MAX_MESSAGE_BYTES + 10)}))
    summary = await phone.finished()

    assert summary.closed_by == "server"
    events = await events_of(service, summary.call_sid)
    [line] = [e for e in events if e["type"] == "transcript" and e["item_id"] == "i_big"]
    assert len(line["text"]) == MAX_TEXT_CHARS
    [error] = [e for e in events if e["type"] == "model_error" and e["code"] == "x"]
    assert len(error["message"]) == MAX_MESSAGE_CHARS
    closed = [e for e in events if e["type"] == "error" and e["reason"] == "model_closed"]
    assert closed and "1009" in closed[0]["detail"]
    record = await service.services.store.get_call(summary.call_sid)
    assert record["end_reason"] == "model_disconnected"
    await eventually(lambda: not service.services.calls.values(), 5)
