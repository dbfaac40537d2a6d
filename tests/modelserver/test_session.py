"""The local Realtime server's sans-I/O session: session config, client event validation,
response streaming, function calls and scripted faults — no sockets.

Every event the session emits is validated against the SDK's server event union by the
``SessionDriver`` (tests/support/session_driver.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from service.modelserver.protocol import CLIENT_EVENT_TYPES
from service.modelserver.script import ErrorSpec, FunctionCall, Script, Turn
from service.modelserver.session import HANDLERS
from tests.support.local_session import PCMU
from tests.support.session_driver import SessionDriver as Driver
from tests.support.session_driver import audio_bytes, b64, only, types

# -- session.created / session.update (B.1) -------------------------------------------------


def test_session_created_is_a_full_ga_session(d: Driver) -> None:
    created = d.events[0]
    assert created["type"] == "session.created" and len(d.events) == 1
    session = created["session"]
    assert session["type"] == "realtime" and session["id"].startswith("sess_")
    assert session["object"] == "realtime.session" and session["model"] == "gpt-realtime"
    assert session["output_modalities"] == ["audio"]
    assert session["instructions"] == "" and session["tools"] == []
    pcm = {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["input"]["format"] == pcm == session["audio"]["output"]["format"]
    td = session["audio"]["input"]["turn_detection"]
    assert td["type"] == "server_vad" and td["threshold"] == 0.5
    assert (td["prefix_padding_ms"], td["silence_duration_ms"]) == (300, 500)
    assert td["create_response"] is True and td["interrupt_response"] is True


def test_session_update_without_type_is_rejected() -> None:
    d = Driver()
    out = d.send({"type": "session.update", "event_id": "cli_1", "session": {"instructions": "x"}})
    error = only(out, "error")["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "missing_required_parameter" and error["param"] == "session.type"
    assert error["event_id"] == "cli_1"  # B.3: the client's event_id is echoed in errors


@pytest.mark.parametrize(
    ("field", "value"),
    [("modalities", ["audio", "text"]), ("input_audio_format", "g711_ulaw"), ("voice", "alloy")],
)
def test_beta_field_names_are_unknown_parameters(d: Driver, field: str, value: Any) -> None:
    error = only(d.update(**{field: value}), "error")["error"]
    assert error["code"] == "unknown_parameter"
    assert error["message"] == f"Unknown parameter: 'session.{field}'."
    assert error["param"] == f"session.{field}"


def test_session_update_merges_and_replies_with_the_full_session(d: Driver) -> None:
    d.update(instructions="Be brief.")
    out = d.update(
        audio={
            "input": {
                "format": PCMU,
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 700},
            },
            "output": {"format": PCMU, "voice": "cedar"},
        }
    )
    session = only(out, "session.updated")["session"]
    assert "event_id" not in {k for k in out[0] if k != "event_id"}  # not echoed (B.1)
    assert session["instructions"] == "Be brief."  # kept from the first update
    assert session["audio"]["input"]["format"] == PCMU == session["audio"]["output"]["format"]
    td = session["audio"]["input"]["turn_detection"]
    assert td["silence_duration_ms"] == 700 and td["threshold"] == 0.5  # merged
    assert session["audio"]["output"]["voice"] == "cedar"
    off = only(d.update(audio={"input": {"turn_detection": None}}), "session.updated")
    assert off["session"]["audio"]["input"]["turn_detection"] is None  # null clears
    assert off["session"]["audio"]["input"]["format"] == PCMU


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        (
            {"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 1.5}}}},
            "decimal_above_max_value",
            "session.audio.input.turn_detection.threshold",
        ),
        (
            {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}},
            "invalid_value",
            "session.audio.input.format.rate",
        ),
        (
            {"audio": {"output": {"format": {"type": "audio/wav"}}}},
            "invalid_value",
            "session.audio.output.format.type",
        ),
        ({"output_modalities": ["audio", "text"]}, "invalid_value", "session.output_modalities"),
        ({"max_output_tokens": 9000}, "integer_above_max_value", "session.max_output_tokens"),
    ],
)
def test_session_update_values_are_validated(
    d: Driver, session: dict[str, Any], code: str, param: str
) -> None:
    error = only(d.update(**session), "error")["error"]
    assert (error["code"], error["param"]) == (code, param)


def test_voice_is_locked_after_audio_was_produced(d: Driver) -> None:
    assert only(d.update(audio={"output": {"voice": "ash"}}), "session.updated")
    d.send({"type": "response.create"})
    d.finish()
    error = only(d.update(audio={"output": {"voice": "verse"}}), "error")["error"]
    assert error["code"] == "cannot_update_voice"


def test_ignoring_session_update_is_scriptable() -> None:
    d = Driver(Script(answer_session_update=False))
    assert d.update(instructions="hello?") == []


# -- client event validation (B.3) ----------------------------------------------------------


def test_bad_client_events_get_errors_and_the_session_carries_on(d: Driver) -> None:
    error = only(d.send({"type": "foo.bar", "event_id": "e1"}), "error")["error"]
    assert error["code"] == "invalid_value" and error["param"] == "type"
    assert error["message"].startswith("Invalid value: 'foo.bar'. Supported values are: ")
    assert "'response.create'" in error["message"]
    assert only(d.send("{not json"), "error")["error"]["code"] == "invalid_json"
    missing = only(d.send({"type": "conversation.item.truncate", "item_id": "x"}), "error")
    assert missing["error"]["code"] == "missing_required_parameter"
    extra = d.send({"type": "response.create", "response": {"modalities": ["audio"]}})
    assert only(extra, "error")["error"]["message"] == "Unknown parameter: 'response.modalities'."
    bad_b64 = d.send({"type": "input_audio_buffer.append", "audio": "***"})
    assert only(bad_b64, "error")["error"]["param"] == "audio"
    assert types(d.send({"type": "response.create"}))[0] == "response.created"


def test_every_client_event_type_has_a_handler_and_nothing_else_does() -> None:
    # A client event the SDK knows but the table lacks would be a server_error, not an answer.
    assert sorted(HANDLERS) == sorted(CLIENT_EVENT_TYPES)


def test_a_handler_crash_becomes_a_server_error_event() -> None:
    class Broken(Script):
        def turn_for(self, request: Any) -> Turn:
            raise RuntimeError("boom")

    d = Driver(Broken())
    error = only(d.send({"type": "response.create", "event_id": "e9"}), "error")["error"]
    assert error["type"] == "server_error" and error["event_id"] == "e9"
    assert types(d.send({"type": "input_audio_buffer.clear"})) == ["input_audio_buffer.cleared"]


def test_observer_sees_every_client_event_and_the_log_is_bounded() -> None:
    seen: list[tuple[str, str]] = []
    d = Driver(Script(on_client_event=lambda sid, ev: seen.append((sid, ev["type"]))), log_size=3)
    for _ in range(5):
        d.send({"type": "input_audio_buffer.append", "audio": b64(bytes(480))})
    d.send({"type": "nonsense"})
    assert [t for _, t in seen] == ["input_audio_buffer.append"] * 5 + ["nonsense"]
    assert {sid for sid, _ in seen} == {d.session.id}
    assert len(d.session.received) == 3
    assert d.session.received[0]["audio"] == "<640 base64 chars>"  # payloads are not kept


# -- responses (B.4) ------------------------------------------------------------------------


def test_response_streams_in_ga_order_faster_than_real_time(d: Driver) -> None:
    d.send({"type": "response.create"})
    d.finish()
    events = d.events[1:]
    kinds = [t for t in types(events) if not t.endswith(".delta")]
    assert kinds == [
        "response.created",
        "rate_limits.updated",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    assert only(events, "response.created")["response"]["status"] == "in_progress"
    part = only(events, "response.content_part.added")["part"]
    assert part["type"] == "audio"
    assert audio_bytes(events) == 1500 * 48  # scripted greeting: 1.5 s of 24 kHz PCM16
    deltas = [e for e in events if e["type"] == "response.output_audio.delta"]
    assert len(deltas) == 15  # 100 ms each
    assert d.now == pytest.approx(1.4 / 4)  # paced at 4x real time
    transcript = "".join(e["delta"] for e in events if e["type"].endswith("transcript.delta"))
    assert transcript == Script().greeting.text
    done = only(events, "response.done")["response"]
    assert done["status"] == "completed" and done["output"][0]["status"] == "completed"
    assert done["output"][0]["content"] == [{"type": "output_audio", "transcript": transcript}]
    usage = done["usage"]
    assert usage["output_token_details"]["audio_tokens"] == 30
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    item_ids = {e["item_id"] for e in deltas}
    assert item_ids == {done["output"][0]["id"]} and done["id"].startswith("resp_")


def test_pcmu_output_is_8_bytes_per_ms(d: Driver) -> None:
    d.update(audio={"output": {"format": PCMU}})
    d.send({"type": "response.create"})
    assert audio_bytes(d.settle()) == 1500 * 8


def test_second_response_create_while_active_is_an_error(d: Driver) -> None:
    first = only(d.send({"type": "response.create"}), "response.created")["response"]["id"]
    error = only(d.send({"type": "response.create"}), "error")["error"]
    assert error["code"] == "conversation_already_has_active_response"
    assert error["message"].startswith(
        f"Conversation already has an active response in progress: {first}"
    )
    d.finish()
    assert only(d.send({"type": "response.create"}), "response.created")


def test_cancel_active_response(d: Driver) -> None:
    d.send({"type": "response.create"})
    d.advance(0.1)
    out = d.send({"type": "response.cancel"})
    assert types(out) == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    done = out[-1]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert done["output"][0]["status"] == "incomplete"
    assert d.session.response is None and d.advance(5) == []


def test_cancel_without_active_response_is_an_error(d: Driver) -> None:
    error = only(d.send({"type": "response.cancel"}), "error")["error"]
    assert error["code"] == "response_cancel_not_active"
    assert error["message"] == "Cancellation failed: no active response found"


def test_text_modality_and_max_output_tokens() -> None:
    d = Driver()
    d.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
    done = only(d.settle(), "response.done")["response"]
    assert done["output"][0]["content"][0]["type"] == "output_text"
    assert audio_bytes(d.events) == 0 and "response.output_text.delta" in types(d.events)
    events = d.send({"type": "response.create", "response": {"max_output_tokens": 10}})
    events += d.finish()
    done = only(events, "response.done")["response"]
    assert (
        done["status"] == "incomplete" and done["status_details"]["reason"] == "max_output_tokens"
    )
    assert audio_bytes(events) == 500 * 48  # 10 tokens ≈ 500 ms


def test_function_call_round_trip() -> None:
    call = FunctionCall("lookup_order", '{"order_id": "42"}', call_id="call_1")
    d = Driver(Script(greeting=Turn(function_call=call), replies=[Turn(text="It shipped.")]))
    d.send({"type": "response.create"})
    events = d.settle()
    added = only(events, "response.output_item.added")["item"]
    assert (added["type"], added["name"], added["call_id"]) == (
        "function_call",
        "lookup_order",
        "call_1",
    )
    args = "".join(
        e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"
    )
    done_args = only(events, "response.function_call_arguments.done")
    assert args == done_args["arguments"] == call.arguments and done_args["name"] == "lookup_order"
    assert only(events, "response.done")["response"]["output"][0]["status"] == "completed"
    assert audio_bytes(events) == 0
    out = d.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": "call_1",
                "output": '{"status":"shipped"}',
            },
        }
    )
    assert types(out) == ["conversation.item.added", "conversation.item.done"]
    d.send({"type": "response.create"})
    final = only(d.finish(), "response.output_audio_transcript.done")
    assert final["transcript"] == "It shipped."


def test_scripted_faults() -> None:
    script = Script(
        greeting=Turn(fail=ErrorSpec("model overloaded", code="server_overloaded")),
        replies=[Turn(text="hi", error_event=ErrorSpec("odd", code="x")), Turn(drop_after_ms=300)],
    )
    d = Driver(script)
    failed = only(d.send({"type": "response.create"}), "response.done")["response"]
    assert failed["status"] == "failed"
    assert failed["status_details"]["error"]["code"] == "server_overloaded"
    d.send({"type": "response.create"})
    assert only(d.settle(), "error")["error"]["code"] == "x"
    d.send({"type": "response.create"})
    d.advance(10)
    assert d.session.close_request is not None and d.session.close_request.code is None
    assert d.session.next_deadline() is None  # nothing more once the drop is requested
