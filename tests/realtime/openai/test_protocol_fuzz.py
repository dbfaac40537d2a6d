"""Property-based fuzzing of the OpenAI Realtime protocol core (issue 11, item 1).

Any JSON value in any field of any event the core reads: no exception escapes, and a value of
the wrong type is counted (a ``ModelError("malformed_event")`` and ``malformed_events``).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.realtime.config import SessionConfig
from service.realtime.events import ModelError, ModelEvent, SpeechStarted
from service.realtime.openai.protocol import MALFORMED, OpenAIRealtimeProtocol
from tests.support.fuzzing import get, json_values, mutations, put, wrong_type

# Modest counts keep the suite fast; derandomized so a run is reproducible.
FUZZ = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
FUZZ_LIGHT = settings(FUZZ, max_examples=60)

# One well-formed event of every type the core reads, with every field it reads.
TEMPLATES: list[dict[str, Any]] = [
    {
        "type": "response.output_audio.delta",
        "response_id": "resp_1",
        "item_id": "item_1",
        "delta": base64.b64encode(b"\x00\x01" * 8).decode(),
    },
    {"type": "input_audio_buffer.speech_started", "item_id": "item_2", "audio_start_ms": 120},
    {"type": "input_audio_buffer.speech_stopped", "item_id": "item_2", "audio_end_ms": 900},
    {
        "type": "response.created",
        "response": {"id": "resp_1", "metadata": {"purpose": "reply", "conversation": "none"}},
    },
    {
        "type": "response.done",
        "response": {
            "id": "resp_1",
            "status": "cancelled",
            "status_details": {"reason": "turn_detected"},
        },
    },
    {"type": "response.output_audio_transcript.done", "item_id": "item_1", "transcript": "Hi"},
    {
        "type": "conversation.item.input_audio_transcription.completed",
        "item_id": "item_2",
        "transcript": "Hello",
    },
    {
        "type": "response.function_call_arguments.done",
        "call_id": "call_1",
        "name": "lookup_order",
        "arguments": '{"order_number": "4217"}',
    },
    {"type": "conversation.item.truncated", "item_id": "item_1", "audio_end_ms": 640},
    {"type": "session.updated", "session": {"id": "sess_1"}},
    {
        "type": "error",
        "error": {"code": "server_error", "type": "server_error", "message": "m", "event_id": "e"},
    },
]


def ready_protocol() -> OpenAIRealtimeProtocol:
    protocol = OpenAIRealtimeProtocol(SessionConfig())
    protocol.receive(orjson.dumps({"type": "session.updated", "session": {"id": "sess_1"}}))
    protocol.create_response(purpose="reply")
    return protocol


def receive(protocol: OpenAIRealtimeProtocol, message: Any) -> list[ModelEvent]:
    events = protocol.receive(orjson.dumps(message))
    assert all(isinstance(event, ModelEvent) for event in events)
    return events


def test_every_template_is_well_formed() -> None:
    protocol = ready_protocol()
    for template in TEMPLATES:
        events = receive(protocol, template)
        assert events or template["type"] == "session.updated"
        assert not any(isinstance(e, ModelError) and e.code == MALFORMED for e in events)
    assert protocol.malformed_events == 0


@FUZZ
@given(mutations(TEMPLATES))
def test_any_value_in_any_field_is_handled_and_a_wrong_type_is_counted(
    mutation: tuple[dict[str, Any], tuple, Any],
) -> None:
    template, path, value = mutation
    protocol = ready_protocol()
    events = receive(protocol, put(template, path, value))
    if wrong_type(get(template, path), value):
        assert any(isinstance(e, ModelError) and e.code == MALFORMED for e in events)
        assert protocol.malformed_events == 1


@FUZZ
@given(
    st.sampled_from([t["type"] for t in TEMPLATES]),
    st.dictionaries(st.text(max_size=12), json_values, max_size=6),
)
def test_arbitrary_fields_under_a_known_type_never_raise(kind: str, fields: dict) -> None:
    receive(ready_protocol(), {**fields, "type": kind})


@FUZZ_LIGHT
@given(json_values | st.binary(max_size=64).map(lambda b: b.decode("latin-1")))
def test_any_frame_is_an_event_or_a_counted_error(value: Any) -> None:
    protocol = ready_protocol()
    frame = value if isinstance(value, str) else orjson.dumps(value)
    events = protocol.receive(frame)
    if not isinstance(value, dict):  # not JSON, or JSON but not an object
        assert [type(e) for e in events] == [ModelError] and protocol.malformed_events == 1


@FUZZ_LIGHT
@given(json_values, json_values)
def test_barge_in_survives_garbage_positions(item_id: Any, audio_start_ms: Any) -> None:
    message = {
        "type": "input_audio_buffer.speech_started",
        "item_id": item_id,
        "audio_start_ms": audio_start_ms,
    }
    events = receive(ready_protocol(), message)
    assert sum(isinstance(e, SpeechStarted) for e in events) == 1


def test_a_long_delta_is_passed_on_in_pieces_of_a_second() -> None:
    protocol = ready_protocol()  # 24 kHz PCM16: 48 000 bytes a second
    pcm = bytes(range(256)) * 500  # 128 000 bytes, 2.67 s
    delta = {"type": "response.output_audio.delta", "response_id": "r", "item_id": "i"}
    events = receive(protocol, {**delta, "delta": base64.b64encode(pcm).decode()})
    assert [len(e.audio) for e in events] == [48_000, 48_000, 32_000]  # type: ignore[union-attr]
    assert b"".join(e.audio for e in events) == pcm  # type: ignore[union-attr]
