"""The local Realtime server's sans-I/O session: truncate, input audio + VAD turns, barge-in,
idle timeout and conversation items — no sockets.

Every event the session emits is validated against the SDK's server event union by the
``SessionDriver`` (tests/support/session_driver.py).
"""

from __future__ import annotations

import pytest

from service.modelserver.script import Script
from tests.support.local_session import PCMU, Event, silence, speech
from tests.support.session_driver import SessionDriver as Driver
from tests.support.session_driver import audio_bytes, b64, only, types

# -- truncate (B.3, F.6) --------------------------------------------------------------------


def spoken_item(d: Driver) -> str:
    d.send({"type": "response.create"})
    return only(d.settle(), "response.done")["response"]["output"][0]["id"]


def truncate(d: Driver, item_id: str, ms: int, index: int = 0) -> list[Event]:
    return d.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": index,
            "audio_end_ms": ms,
        }
    )


def test_truncate_past_the_end_is_already_shorter(d: Driver) -> None:
    error = only(truncate(d, spoken_item(d), 1600), "error")["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_value"
    assert error["message"] == "Audio content of 1500ms is already shorter than 1600ms"


def test_truncate_cuts_audio_and_transcript(d: Driver) -> None:
    item_id = spoken_item(d)
    truncated = only(truncate(d, item_id, 700), "conversation.item.truncated")
    assert (truncated["item_id"], truncated["content_index"], truncated["audio_end_ms"]) == (
        item_id,
        0,
        700,
    )
    item = only(
        d.send({"type": "conversation.item.retrieve", "item_id": item_id}),
        "conversation.item.retrieved",
    )["item"]
    transcript = item["content"][0]["transcript"]
    assert Script().greeting.text.startswith(transcript) and 0 < len(transcript) < 40
    error = only(truncate(d, item_id, 800), "error")["error"]
    assert error["message"] == "Audio content of 700ms is already shorter than 800ms"
    assert only(truncate(d, item_id, 0), "conversation.item.truncated")


def test_truncate_rejects_unknown_and_non_assistant_items(d: Driver) -> None:
    error = only(truncate(d, "item_nope", 10), "error")["error"]
    assert error["code"] == "item_truncate_invalid_item_id"
    d.send(
        {
            "type": "conversation.item.create",
            "item": {
                "id": "u1",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hi"}],
            },
        }
    )
    error = only(truncate(d, "u1", 0), "error")["error"]
    assert error["message"] == "Only model output audio messages can be truncated"
    error = only(truncate(d, spoken_item(d), 10, index=1), "error")["error"]
    assert error["param"] == "content_index"


def test_truncating_the_streaming_item_stops_its_audio(d: Driver) -> None:
    d.send({"type": "response.create"})
    d.advance(0.1)  # about 500 ms of audio sent by now
    item_id = only(d.events, "response.output_item.added")["item"]["id"]
    sent = audio_bytes(d.events) // 48
    out = truncate(d, item_id, sent - 200)
    assert types(out)[0] == "conversation.item.truncated"
    assert types(out)[-1] == "response.done"  # the item ends at once, no further audio
    assert only(out, "response.output_item.done")["item"]["status"] == "incomplete"
    assert only(out, "response.done")["response"]["status"] == "completed"
    error = only(truncate(d, item_id, sent - 100), "error")["error"]
    assert (
        error["message"]
        == f"Audio content of {sent - 200}ms is already shorter than {sent - 100}ms"
    )


# -- input audio, VAD and barge-in (B.4, B.6) -----------------------------------------------


@pytest.mark.parametrize("pcmu", [False, True])
def test_vad_turn_commits_and_answers(pcmu: bool) -> None:
    d = Driver()
    rate = 8000 if pcmu else 24000
    if pcmu:
        d.update(audio={"input": {"format": PCMU}})
    audio = silence(600, rate) + speech(1200, rate) + silence(900, rate)
    events = d.stream(audio, rate, ulaw=pcmu)
    started = only(events, "input_audio_buffer.speech_started")
    stopped = only(events, "input_audio_buffer.speech_stopped")
    assert abs(started["audio_start_ms"] - (600 - 300)) <= 40
    assert abs(stopped["audio_end_ms"] - (1800 + 500)) <= 60
    committed = only(events, "input_audio_buffer.committed")
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    assert committed["previous_item_id"] is None
    user = next(e for e in events if e["type"] == "conversation.item.done")["item"]
    assert user["role"] == "user" and user["content"] == [
        {"type": "input_audio", "transcript": None}
    ]
    order = types(events)
    assert order.index("input_audio_buffer.committed") < order.index("response.created")


def test_input_transcription_when_enabled() -> None:
    d = Driver(Script(user_transcripts=["I need my order status."]))
    d.update(audio={"input": {"transcription": {"model": "gpt-4o-mini-transcribe"}}})
    events = d.stream(speech(800, 24000) + silence(700, 24000), 24000)
    done = only(events, "conversation.item.input_audio_transcription.completed")
    assert done["transcript"] == "I need my order status."
    assert done["item_id"] == only(events, "input_audio_buffer.committed")["item_id"]
    assert done["usage"]["type"] == "tokens"
    item = d.send({"type": "conversation.item.retrieve", "item_id": done["item_id"]})
    assert only(item, "conversation.item.retrieved")["item"]["content"][0]["transcript"] == (
        "I need my order status."
    )


def test_speech_during_a_response_cancels_it() -> None:
    d = Driver(Script(pace=1.0))
    d.send({"type": "response.create"})
    events = d.stream(speech(600, 24000) + silence(100, 24000), 24000)
    order = types(events)
    assert order.index("input_audio_buffer.speech_started") < order.index("response.done")
    done = only(events, "response.done")["response"]
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert done["output"][0]["status"] == "incomplete"


def test_interrupt_and_create_response_can_be_switched_off() -> None:
    d = Driver(Script(pace=1.0))
    d.update(
        audio={
            "input": {
                "turn_detection": {
                    "type": "server_vad",
                    "interrupt_response": False,
                    "create_response": False,
                }
            }
        }
    )
    d.send({"type": "response.create"})
    events = d.stream(speech(500, 24000) + silence(700, 24000), 24000)
    assert "input_audio_buffer.committed" in types(events)
    assert only(events + d.finish(), "response.done")["response"]["status"] == "completed"
    assert types(d.events).count("response.created") == 1  # no automatic response


def test_manual_commit_and_clear() -> None:
    d = Driver()
    d.update(audio={"input": {"turn_detection": None}})
    d.send({"type": "input_audio_buffer.append", "audio": b64(silence(50, 24000))})
    error = only(d.send({"type": "input_audio_buffer.commit"}), "error")["error"]
    assert error["code"] == "input_audio_buffer_commit_empty"
    assert "buffer only has 50.00ms of audio" in error["message"]
    d.send({"type": "input_audio_buffer.append", "audio": b64(speech(500, 24000))})
    out = d.send({"type": "input_audio_buffer.commit"})
    assert types(out) == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    assert "response.created" not in types(d.events)  # commit alone does not respond
    d.send({"type": "input_audio_buffer.append", "audio": b64(speech(500, 24000))})
    assert types(d.send({"type": "input_audio_buffer.clear"})) == ["input_audio_buffer.cleared"]
    assert only(d.send({"type": "input_audio_buffer.commit"}), "error")


def test_idle_timeout_prompts_the_caller() -> None:
    d = Driver(Script(pace=None))
    d.update(audio={"input": {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 6000}}})
    d.send({"type": "response.create"})  # 1.5 s greeting, sent at once
    events = d.stream(silence(7400, 24000), 24000, chunk_ms=100)
    assert "input_audio_buffer.timeout_triggered" not in types(events)
    events = d.stream(silence(200, 24000), 24000, chunk_ms=100)
    timeout = only(events, "input_audio_buffer.timeout_triggered")
    assert timeout["audio_end_ms"] >= 7500
    assert only(events, "input_audio_buffer.committed")["item_id"] == timeout["item_id"]
    assert "response.created" in types(events)


# -- conversation items (B.3) ---------------------------------------------------------------


def test_item_create_delete_retrieve(d: Driver) -> None:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}
    first = only(
        d.send({"type": "conversation.item.create", "item": item}), "conversation.item.added"
    )
    first_id = first["item"]["id"]
    assert first_id.startswith("item_") and first["item"]["status"] == "completed"
    second = d.send({"type": "conversation.item.create", "item": {**item, "id": "mine"}})
    assert only(second, "conversation.item.added")["previous_item_id"] == first_id
    root = d.send(
        {
            "type": "conversation.item.create",
            "previous_item_id": "root",
            "item": {**item, "id": "first"},
        }
    )
    assert only(root, "conversation.item.added")["previous_item_id"] is None
    dup = d.send({"type": "conversation.item.create", "item": {**item, "id": "mine"}})
    assert only(dup, "error")["error"]["param"] == "item.id"
    assert [i.id for i in d.session.conversation.items()] == ["first", first_id, "mine"]
    deleted = d.send({"type": "conversation.item.delete", "item_id": "mine"})
    assert only(deleted, "conversation.item.deleted")["item_id"] == "mine"
    again = only(d.send({"type": "conversation.item.delete", "item_id": "mine"}), "error")
    assert again["error"]["code"] == "item_delete_invalid_item_id"
    missing = only(d.send({"type": "conversation.item.retrieve", "item_id": "mine"}), "error")
    assert missing["error"]["code"] == "item_retrieve_invalid_item_id"


def test_conversation_memory_is_bounded() -> None:
    d = Driver(max_items=4)
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}
    for _ in range(10):
        d.send({"type": "conversation.item.create", "item": item})
    assert len(d.session.conversation) == 4
