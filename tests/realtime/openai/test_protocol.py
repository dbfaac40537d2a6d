"""The OpenAI Realtime GA protocol without sockets (protocols.md B)."""

from __future__ import annotations

import base64
import json

import pytest

from service.realtime.config import SessionConfig, VadSettings
from service.realtime.events import (
    PCM16_24K,
    ULAW_8K,
    AgentAudio,
    ItemTruncated,
    ModelError,
    ReplayItem,
    ResponseDone,
    ResponseStarted,
    SessionReady,
    SpeechStarted,
    ToolCallRequested,
    Transcript,
    TranscriptDelta,
)
from service.realtime.openai.protocol import OpenAIRealtimeProtocol, realtime_url
from tests.support.conformance import check_openai_client_event


@pytest.mark.parametrize("mode", ["transcode", "passthrough"])
def test_every_client_event_conforms_to_the_sdk(mode: str) -> None:
    config = SessionConfig(
        audio_mode=mode,  # type: ignore[arg-type]
        vad=VadSettings(threshold=0.6, idle_timeout_ms=8000),
        transcription_model="gpt-4o-mini-transcribe",
        tools=(
            {
                "type": "function",
                "name": "lookup_order",
                "description": "Look up an order",
                "parameters": {"type": "object", "properties": {}},
            },
        ),
    )
    protocol = OpenAIRealtimeProtocol(config)
    events = [
        protocol.session_update(),
        protocol.append_audio(b"\x00" * 480),
        protocol.create_response("Say hello"),
        protocol.create_response(),
        protocol.truncate("item_1", 1234),
        protocol.cancel_response(),
        protocol.function_output("call_1", '{"ok": true}'),
    ]
    for event in events:
        check_openai_client_event(event)
    session = events[0]["session"]
    assert session["type"] == "realtime"
    fmt = session["audio"]["input"]["format"]
    assert fmt == (
        {"type": "audio/pcmu"} if mode == "passthrough" else {"type": "audio/pcm", "rate": 24000}
    )
    assert protocol.audio_format == (ULAW_8K if mode == "passthrough" else PCM16_24K)


def test_a_beta_shaped_event_would_be_caught() -> None:
    with pytest.raises(AssertionError):
        check_openai_client_event({"type": "session.update", "session": {"modalities": ["audio"]}})
    with pytest.raises(AssertionError):
        check_openai_client_event(
            {"type": "session.update", "session": {"type": "realtime", "voice": "marin"}}
        )


def test_server_events_become_neutral_events() -> None:
    p = OpenAIRealtimeProtocol(SessionConfig())

    def feed(event: dict) -> list:
        return p.receive(json.dumps(event), now=12.5)

    assert feed({"type": "session.updated", "session": {"id": "sess_1"}}) == [
        SessionReady("sess_1")
    ]
    assert feed({"type": "session.updated", "session": {"id": "sess_1"}}) == []
    assert feed({"type": "response.created", "response": {"id": "resp_1"}}) == [
        ResponseStarted("resp_1")
    ]
    assert p.active_response_id == "resp_1"
    delta = base64.b64encode(b"\x01\x02").decode()
    assert feed(
        {
            "type": "response.output_audio.delta",
            "response_id": "resp_1",
            "item_id": "item_1",
            "delta": delta,
        }
    ) == [AgentAudio("resp_1", "item_1", b"\x01\x02", 12.5)]
    assert feed(
        {"type": "input_audio_buffer.speech_started", "item_id": "item_2", "audio_start_ms": 900}
    ) == [SpeechStarted("item_2", 900, 12.5)]
    assert feed(
        {
            "type": "response.done",
            "response": {
                "id": "resp_1",
                "status": "cancelled",
                "status_details": {"type": "cancelled", "reason": "turn_detected"},
            },
        }
    ) == [ResponseDone("resp_1", "cancelled", "turn_detected")]
    assert p.active_response_id is None
    assert feed(
        {
            "type": "conversation.item.truncated",
            "item_id": "item_1",
            "content_index": 0,
            "audio_end_ms": 640,
        }
    ) == [ItemTruncated("item_1", 640)]
    assert feed(
        {
            "type": "response.output_audio_transcript.done",
            "item_id": "item_1",
            "transcript": "Hello",
        }
    ) == [Transcript("agent", "item_1", "Hello")]
    assert feed(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": "item_2",
            "transcript": "Hi",
        }
    ) == [Transcript("caller", "item_2", "Hi")]
    assert feed(
        {
            "type": "response.function_call_arguments.done",
            "call_id": "c1",
            "name": "f",
            "arguments": "{}",
        }
    ) == [ToolCallRequested("c1", "f", "{}")]
    assert feed(
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "code": "invalid_value",
                "message": "Audio content of 100ms is already shorter than 200ms",
                "event_id": "evt_3",
            },
        }
    ) == [
        ModelError("invalid_value", "Audio content of 100ms is already shorter than 200ms", "evt_3")
    ]


def test_bad_server_frames_are_errors_not_exceptions() -> None:
    p = OpenAIRealtimeProtocol(SessionConfig())
    assert isinstance(p.receive("{nope")[0], ModelError)
    assert isinstance(p.receive("[]")[0], ModelError)
    bad = p.receive(json.dumps({"type": "response.output_audio.delta", "delta": "***"}))
    assert isinstance(bad[0], ModelError)
    assert p.receive(json.dumps({"type": "brand.new.event"})) == []
    assert p.unknown_events == 1


def test_model_goes_in_the_url() -> None:
    assert realtime_url("wss://api.openai.com/v1/realtime", "gpt-realtime") == (
        "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    )
    assert realtime_url("wss://x/v1/realtime?model=a", "b") == "wss://x/v1/realtime?model=a"


def test_replayed_conversation_items_conform_to_the_sdk() -> None:
    """A fresh session is told the old one's conversation as GA items (B.3)."""
    protocol = OpenAIRealtimeProtocol(SessionConfig())
    items = [
        ReplayItem("caller", "My order is 42"),
        ReplayItem("agent", "Let me check"),
        ReplayItem("tool_call", '{"order_number": "42"}', call_id="call_1", name="lookup"),
        ReplayItem("tool_output", '{"status": "shipped"}', call_id="call_1"),
    ]
    events = [protocol.replay_item(item) for item in items]
    for event in events:
        check_openai_client_event(event)
    created = [event["item"] for event in events]
    assert created[0]["content"] == [{"type": "input_text", "text": "My order is 42"}]
    assert created[1]["role"] == "assistant"
    assert created[1]["content"] == [{"type": "output_text", "text": "Let me check"}]
    assert created[2] == {
        "type": "function_call",
        "call_id": "call_1",
        "name": "lookup",
        "arguments": '{"order_number": "42"}',
    }
    assert created[3]["type"] == "function_call_output"
    assert len({event["event_id"] for event in events}) == 4


def test_agent_transcript_deltas_are_passed_on() -> None:
    protocol = OpenAIRealtimeProtocol(SessionConfig())
    delta = {
        "type": "response.output_audio_transcript.delta",
        "response_id": "resp_1",
        "item_id": "item_1",
        "output_index": 0,
        "content_index": 0,
        "delta": "Hello ",
    }
    assert protocol.receive(json.dumps(delta)) == [TranscriptDelta("item_1", "Hello ")]
    assert protocol.receive(json.dumps({**delta, "delta": ""})) == []
    assert protocol.unknown_events == 0
