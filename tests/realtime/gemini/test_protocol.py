"""Sans-I/O Gemini Live protocol (protocols.md D): what we send validates against the
google-genai SDK's Live types; what the server sends becomes the right neutral events."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from google.genai import types

from service.peers.gemini_live.conformance import (
    ConformanceError,
    check_client_message,
    check_server_message,
)
from service.realtime.config import SessionConfig, VadSettings
from service.realtime.events import (
    AgentAudio,
    ModelError,
    ResponseDone,
    ResponseStarted,
    SessionReady,
    SpeechStarted,
    ToolCallCancelled,
    ToolCallRequested,
    Transcript,
)
from service.realtime.gemini.protocol import (
    GeminiLiveProtocol,
    function_response_object,
    parse_duration_ms,
)
from service.realtime.gemini.setup import gemini_schema, gemini_voice

TOOLS = (
    {
        "type": "function",
        "name": "lookup_order",
        "description": "Look up an order.",
        "parameters": {
            "type": "object",
            "properties": {
                "order_number": {"type": "string", "description": "digits", "maxLength": 100},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
                "items": {"type": "array", "items": {"type": "integer"}},
                "kind": {"enum": ["a", "b"], "type": "string", "title": "Kind"},
            },
            "required": ["order_number"],
            "additionalProperties": False,
        },
    },
    {"type": "function", "name": "end_call", "description": "Hang up.", "parameters": {}},
)


def proto(**kwargs: Any) -> GeminiLiveProtocol:
    config = SessionConfig(tools=TOOLS, instructions="Be brief.", **kwargs)
    return GeminiLiveProtocol(config, model="gemini-live-test", input_rate=8000)


def frame(message: dict[str, Any], binary: bool = True) -> bytes | str:
    check_server_message(message)  # the fixtures themselves are real server messages
    data = orjson.dumps(message)
    return data if binary else data.decode()


def audio_msg(pcm: bytes, **extra: Any) -> dict[str, Any]:
    blob = {"mimeType": "audio/pcm;rate=24000", "data": base64.b64encode(pcm).decode()}
    return {"serverContent": {"modelTurn": {"parts": [{"inlineData": blob}]}, **extra}}


# -- client messages (D.2, D.3) ---------------------------------------------------------------


def test_setup_validates_against_the_sdk_and_carries_every_d2_field() -> None:
    p = proto(vad=VadSettings(threshold=0.7, prefix_padding_ms=200, silence_duration_ms=900))
    message = p.setup()
    check_client_message(message)
    setup = message["setup"]
    assert setup["model"] == "models/gemini-live-test"
    assert setup["generationConfig"]["responseModalities"] == ["AUDIO"]
    voice = setup["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]
    assert voice["voiceName"] == "Kore"  # "marin" is not a Gemini voice
    assert setup["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    aad = setup["realtimeInputConfig"]["automaticActivityDetection"]
    assert aad == {
        "disabled": False,
        "startOfSpeechSensitivity": "START_SENSITIVITY_LOW",
        "endOfSpeechSensitivity": "END_SENSITIVITY_LOW",
        "prefixPaddingMs": 200,
        "silenceDurationMs": 900,
    }
    assert setup["realtimeInputConfig"]["activityHandling"] == "START_OF_ACTIVITY_INTERRUPTS"
    assert setup["inputAudioTranscription"] == {} == setup["outputAudioTranscription"]
    assert setup["sessionResumption"] == {}
    assert setup["contextWindowCompression"] == {"slidingWindow": {}}
    # The public LiveConnectConfig (which does have realtime_input_config) takes it all too.
    types.LiveConnectConfig.model_validate(
        {k: v for k, v in setup.items() if k not in ("model", "generationConfig")}
    )


def test_setup_resumes_the_newest_resumable_handle() -> None:
    p = proto()
    p.receive(frame({"sessionResumptionUpdate": {"newHandle": "h1", "resumable": True}}))
    p.receive(frame({"sessionResumptionUpdate": {"newHandle": "", "resumable": False}}))
    message = p.setup()
    check_client_message(message)
    assert message["setup"]["sessionResumption"] == {"handle": "h1"}


def test_tools_become_function_declarations_the_sdk_accepts() -> None:
    declarations = proto().setup()["setup"]["tools"][0]["functionDeclarations"]
    lookup, end_call = declarations
    assert lookup["parameters"] == {
        "type": "OBJECT",
        "properties": {
            "order_number": {"type": "STRING", "description": "digits", "maxLength": 100},
            "note": {"type": "STRING", "nullable": True},
            "items": {"type": "ARRAY", "items": {"type": "INTEGER"}},
            "kind": {"type": "STRING", "enum": ["a", "b"]},
        },
        "required": ["order_number"],
    }
    assert end_call == {"name": "end_call", "description": "Hang up."}
    for declaration in declarations:
        types.FunctionDeclaration.model_validate(declaration)


def test_hotline_tools_validate() -> None:
    from service.agent.hotline.tools import hotline_registry

    config = SessionConfig(tools=tuple(hotline_registry().openai_tools()))
    check_client_message(GeminiLiveProtocol(config, model="m").setup())


@pytest.mark.parametrize(
    ("requested", "fallback", "expected"),
    [
        ("marin", None, "Kore"),
        ("puck", None, "Puck"),
        ("cedar", None, "Charon"),
        ("x", "Leda", "Leda"),
    ],
)
def test_voice_mapping(requested: str, fallback: str | None, expected: str) -> None:
    assert gemini_voice(requested, fallback) == expected


def test_every_other_client_message_validates() -> None:
    p = proto()
    audio = p.realtime_audio(b"\x01\x00" * 160)
    assert audio["realtimeInput"]["audio"]["mimeType"] == "audio/pcm;rate=8000"
    assert p.audio_sent_ms == 20
    p16 = GeminiLiveProtocol(SessionConfig(), model="m", input_rate=16000)
    assert p16.realtime_audio(bytes(640))["realtimeInput"]["audio"]["mimeType"].endswith("16000")
    text = p.client_text("Greet the caller.")
    assert text["clientContent"]["turnComplete"] is True
    for message in (audio, text, p.tool_response("fc_1", "lookup_order", {"output": {"a": 1}})):
        check_client_message(message)


def test_function_outputs_are_json_objects() -> None:
    assert function_response_object('{"status": "shipped"}') == {"output": {"status": "shipped"}}
    assert function_response_object('["a"]') == {"output": ["a"]}
    assert function_response_object("not json") == {"output": "not json"}
    error = '{"error": "timeout", "message": "took too long"}'
    assert function_response_object(error) == {"error": "timeout", "message": "took too long"}


@pytest.mark.parametrize(
    "bad",
    [
        {"realtimeInput": {"mediaChunks": [{"mimeType": "audio/pcm;rate=8000", "data": "AAAA"}]}},
        {"realtime_input": {"audio": {"mimeType": "audio/pcm;rate=8000", "data": "AAAA"}}},
        {"realtimeInput": {"audio": {"mimeType": "audio/wav", "data": "AAAA"}}},
        {"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=8000", "data": "AA=="}}},
        {"clientContent": {"turns": [], "turnComplete": True}, "toolResponse": {}},
        {"clientContent": {"turns": [{"role": "user", "parts": [{"txt": "hi"}]}]}},
        {"setup": {"model": "gemini", "generationConfig": {"responseModalities": ["AUDIO"]}}},
        {"setup": {"model": "models/g", "generationConfig": {"responseModalities": ["audio"]}}},
        {"setup": {"model": "models/g", "realtimeInputConfig": {"activityHandling": "BARGE"}}},
        {"toolResponse": {"functionResponses": [{"name": "f", "response": {}}]}},
    ],
)
def test_conformance_refuses_dialects(bad: dict[str, Any]) -> None:
    with pytest.raises(ConformanceError):
        check_client_message(bad)


# -- server messages (D.4) --------------------------------------------------------------------


def test_setup_complete_from_a_binary_or_text_frame() -> None:
    for binary in (True, False):
        p = proto()
        assert p.receive(frame({"setupComplete": {"sessionId": "s1"}}, binary)) == [
            SessionReady("s1")
        ]
        assert p.ready


def test_a_model_turn_becomes_a_tagged_response() -> None:
    p = proto()
    p.pending_purpose = "greeting"
    pcm = b"\x02\x00" * 480
    events = p.receive(frame(audio_msg(pcm)), now=1.5)
    assert events == [
        ResponseStarted("gem_resp_1", "greeting"),
        AgentAudio("gem_resp_1", "gem_item_1", pcm, 1.5),
    ]
    assert p.active_response_id == "gem_resp_1" and p.pending_purpose == ""
    p.receive(frame({"serverContent": {"outputTranscription": {"text": "Hello"}}}))
    p.receive(frame({"serverContent": {"outputTranscription": {"text": " there."}}}))
    assert p.receive(frame(audio_msg(pcm))) == [AgentAudio("gem_resp_1", "gem_item_1", pcm)]
    assert p.receive(frame({"serverContent": {"generationComplete": True}})) == []
    assert p.receive(frame({"serverContent": {"turnComplete": True}})) == [
        Transcript("agent", "gem_item_1", "Hello there."),
        ResponseDone("gem_resp_1", "completed"),
    ]
    assert p.active_response_id is None
    # The next turn has no purpose unless one was asked for.
    assert p.receive(frame(audio_msg(pcm)))[0] == ResponseStarted("gem_resp_2", "")


def test_turn_complete_alongside_the_last_content() -> None:
    p = proto()
    events = p.receive(frame(audio_msg(b"\0\0", turnComplete=True)))
    assert [type(e) for e in events] == [ResponseStarted, AgentAudio, ResponseDone]


def test_interrupted_is_a_barge_in_and_cancels_the_turn() -> None:
    p = proto()
    p.realtime_audio(bytes(16 * 1500))  # 1.5 s of caller audio sent so far
    p.receive(frame(audio_msg(b"\0\0" * 100)))
    events = p.receive(frame({"serverContent": {"interrupted": True}}), now=2.0)
    assert events == [SpeechStarted("gem_user_1", 1500, 2.0)]
    assert p.active_response_id == "gem_resp_1"  # the worker reads it while handling the event
    assert p.receive(frame(audio_msg(b"\0\0"))) == []  # late audio of the cut turn: dropped
    heard = {"serverContent": {"inputTranscription": {"text": "wait"}}}
    assert p.receive(frame(heard)) == []
    assert p.receive(frame({"serverContent": {"turnComplete": True}})) == [
        ResponseDone("gem_resp_1", "cancelled", "turn_detected")
    ]
    # The caller's line ends with the next turn (their words were still coming).
    p.receive(frame({"serverContent": {"inputTranscription": {"text": " a second"}}}))
    p.receive(frame(audio_msg(b"\0\0")))
    assert p.receive(frame({"serverContent": {"turnComplete": True}}))[0] == Transcript(
        "caller", "gem_user_1", "wait a second"
    )


def test_caller_transcript_fragments_and_finished() -> None:
    p = proto()
    p.receive(frame({"serverContent": {"inputTranscription": {"text": "Where is"}}}))
    events = p.receive(
        frame({"serverContent": {"inputTranscription": {"text": " my order?", "finished": True}}})
    )
    assert events == [Transcript("caller", "gem_user_1", "Where is my order?")]


def test_tool_call_ends_the_turn_and_its_answer_is_tagged() -> None:
    p = proto()
    p.receive(frame(audio_msg(b"\0\0")))
    call = {"id": "fc_1", "name": "lookup_order", "args": {"order_number": "4217"}}
    events = p.receive(frame({"toolCall": {"functionCalls": [call]}}))
    assert events == [
        ResponseDone("gem_resp_1", "completed"),
        ToolCallRequested("fc_1", "lookup_order", '{"order_number":"4217"}'),
    ]
    assert p.active_response_id is None and not p.idle
    # Audio trailing the call and a content-less turnComplete still belong to that turn.
    assert p.receive(frame(audio_msg(b"\1\0"))) == [AgentAudio("gem_resp_1", "gem_item_1", b"\1\0")]
    assert p.receive(frame({"serverContent": {"turnComplete": True}})) == []
    # A barge-in during that trailing audio cuts the rest of it.
    assert isinstance(p.receive(frame({"serverContent": {"interrupted": True}}))[0], SpeechStarted)
    assert p.receive(frame(audio_msg(b"\1\0"))) == []
    message = p.function_output("fc_1", '{"status": "shipped"}')
    assert message == {
        "toolResponse": {
            "functionResponses": [
                {
                    "id": "fc_1",
                    "name": "lookup_order",
                    "response": {"output": {"status": "shipped"}},
                }
            ]
        }
    }
    check_client_message(message)
    assert p.function_output("fc_1", "{}") is None  # answered once
    p.pending_purpose = "tool_answer"
    assert p.receive(frame(audio_msg(b"\0\0")))[0] == ResponseStarted("gem_resp_2", "tool_answer")


def test_tool_call_cancellation_withdraws_calls() -> None:
    p = proto()
    calls = [{"id": "a", "name": "lookup_order", "args": {}}, {"id": "b", "name": "end_call"}]
    events = p.receive(frame({"toolCall": {"functionCalls": calls}}))
    assert [e.call_id for e in events if isinstance(e, ToolCallRequested)] == ["a", "b"]
    assert p.receive(frame({"toolCallCancellation": {"ids": ["a"]}})) == [ToolCallCancelled(("a",))]
    assert p.function_output("a", "{}") is None  # never answer a withdrawn call
    assert p.function_output("b", "{}") is not None
    assert p.idle


def test_go_away_and_resumption_updates_are_state_not_events() -> None:
    p = proto()
    assert p.receive(frame({"goAway": {"timeLeft": "10s"}})) == []
    assert p.go_away_ms == 10_000
    assert parse_duration_ms("0.500s") == 500 and parse_duration_ms(None) == 5000
    update = {"sessionResumptionUpdate": {"newHandle": "h2", "resumable": True}}
    assert p.receive(frame(update)) == [] and p.resume_handle == "h2"
    usage = {"usageMetadata": {"totalTokenCount": 12}}
    assert p.receive(frame(usage)) == [] and p.unknown_messages == 0


def test_connection_lost_closes_the_turn_and_orphans_calls() -> None:
    p = proto()
    p.receive(frame({"setupComplete": {}}))
    p.receive(frame({"toolCall": {"functionCalls": [{"id": "x", "name": "end_call"}]}}))
    p.receive(frame(audio_msg(b"\0\0")))  # trailing audio: no new turn
    assert p.connection_lost() == [ToolCallCancelled(("x",))]
    assert not p.ready and p.function_output("x", "{}") is None
    p.receive(frame(audio_msg(b"\0\0")))
    assert p.connection_lost()[0] == ResponseDone("gem_resp_2", "incomplete", "connection_lost")


def test_bad_frames_are_errors_not_crashes() -> None:
    p = proto()
    assert isinstance(p.receive(b"{nope")[0], ModelError)
    assert isinstance(p.receive("[1]")[0], ModelError)
    bad_rate = {
        "serverContent": {
            "modelTurn": {
                "parts": [{"inlineData": {"mimeType": "audio/pcm;rate=16000", "data": "AAAA"}}]
            }
        }
    }
    assert p.receive(orjson.dumps(bad_rate))[0].code == "unexpected_audio_rate"
    assert p.receive(orjson.dumps({"somethingNew": {}})) == [] and p.unknown_messages == 1


def test_schema_edge_cases() -> None:
    assert gemini_schema({"type": ["string", "null"]}) == {"type": "STRING", "nullable": True}
    assert gemini_schema({"const": "x"}) == {"enum": ["x"]}
    assert gemini_schema({"anyOf": [{"type": "string"}, {"type": "integer"}]}) == {
        "anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]
    }
