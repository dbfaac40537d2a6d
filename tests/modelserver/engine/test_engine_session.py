"""The speech engine inside the sans-I/O session, without models: a canned transcriber, the
synthetic voice in the streaming shape and the energy VAD, so each test is fast and exact.
Every event is validated against the SDK's server event union (``SessionDriver``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from service.audio.synthetic import SyntheticVoice
from service.modelserver.engine import (
    BrainRequest,
    Decision,
    SpeechEngine,
    default_engine,
    engine_kind,
)
from service.modelserver.engine.hotline_brain import HotlineBrain
from service.modelserver.engine.tts import SyntheticStreamingVoice
from service.modelserver.script import FunctionCall, Script
from service.settings import Settings
from tests.support.session_driver import SessionDriver, audio_bytes, b64, only, types

Event = dict[str, Any]
TOOLS = [
    {"type": "function", "name": n, "description": n, "parameters": {"type": "object"}}
    for n in ("verify_caller", "lookup_order", "transfer_call", "end_call")
]
LONG = "One two three four five. Six seven eight nine ten. Eleven twelve thirteen fourteen."


class Canned:
    """A transcriber that "hears" the given texts in order (and counts its calls)."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)
        self.calls = 0
        self.lock = threading.Lock()

    def transcribe(self, pcm: bytes, rate: int) -> str:
        with self.lock:
            self.calls += 1
            return self.texts.pop(0) if self.texts else ""


def driver(
    *heard: str,
    brain: Callable[[], Any] = HotlineBrain,
    voice: SyntheticStreamingVoice | None = None,
    **script: Any,
) -> SessionDriver:
    engine = SpeechEngine(
        transcriber=Canned(*heard),
        voice=voice or SyntheticStreamingVoice(),
        brain_factory=brain,
        vad="energy",
    )
    d = SessionDriver(Script(**script), engine=engine)
    d.update(tools=TOOLS)
    return d


def caller(ms: int = 1500) -> bytes:
    speech = b"".join(SyntheticVoice(seed=7, level_dbfs=-16).synthesize("words", ms, 24000))
    return bytes(24 * 300 * 2) + speech + bytes(24 * 900 * 2)


def pump(d: SessionDriver, until: Callable[[list[Event]], bool], timeout: float = 10.0) -> None:
    """Tick in real time (clock frozen) until engine work produced what ``until`` wants."""
    give_up = time.monotonic() + timeout
    while not until(d.events):
        assert time.monotonic() < give_up, types(d.events)[-5:]
        time.sleep(0.005)
        d.take(d.session.tick(d.now))


def run(d: SessionDriver, *events: Event) -> list[Event]:
    """Send ``events`` and finish the response they start: every event that followed."""
    mark = len(d.events)
    for event in events:
        d.send(event)
    d.finish()
    return d.events[mark:]


def say_exactly(d: SessionDriver, text: str, finish: bool = True) -> list[Event]:
    instructions = f'Greet the caller by saying exactly: "{text}"'
    event = {"type": "response.create", "response": {"instructions": instructions}}
    if finish:
        return run(d, event)
    d.send(event)
    return d.events


def hear(d: SessionDriver, pcm: bytes) -> list[Event]:
    mark = len(d.events)
    d.stream(pcm, 24000)
    d.finish()
    return d.events[mark:]


def spoken(events: list[Event]) -> list[str]:
    return [e["transcript"] for e in events if e["type"] == "response.output_audio_transcript.done"]


def test_speech_of_unknown_length_streams_as_synthesized() -> None:
    voice = SyntheticStreamingVoice()
    d = driver(voice=voice)
    events = say_exactly(d, LONG)
    done = only(events, "response.done")["response"]
    assert done["status"] == "completed"
    # 14 words at 330 ms, in three sentences: exactly the audio synthesized, all of it sent.
    assert audio_bytes(events) == (5 + 5 + 4) * 330 * 24 * 2
    assert spoken(events) == [LONG]
    deltas = "".join(
        e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta"
    )
    assert deltas == LONG
    item = d.session.conversation.get(done["output"][0]["id"])
    assert item is not None and item.audio_ms == 14 * 330  # what was sent
    assert voice.sentences == 3


def test_truncate_uses_the_audio_actually_sent() -> None:
    d = driver(pace=1.0)
    say_exactly(d, LONG, finish=False)
    pump(d, lambda ev: any(e["type"] == "response.output_audio.delta" for e in ev))
    d.advance(1.0)  # real-time pacing: ~1.1 s of audio out so far
    item_id = only(d.events, "response.output_item.added")["item"]["id"]
    sent = d.session.conversation.get(item_id).audio_ms  # type: ignore[union-attr]
    assert 1000 <= sent < 14 * 330
    truncate = {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0}
    error = only(d.send({**truncate, "audio_end_ms": sent + 500}), "error")["error"]
    assert error["code"] == "invalid_value" and "already shorter" in error["message"]
    events = d.send({**truncate, "audio_end_ms": 700})  # words starting before 0.7 s: 3
    assert types(events)[0] == "conversation.item.truncated"
    events += d.finish()
    done = only(events, "response.done")["response"]
    assert done["status"] == "completed" and done["output"][0]["status"] == "incomplete"
    assert done["output"][0]["content"][0]["transcript"] == "One two three"
    assert d.session.conversation.get(item_id).audio_ms == 700  # type: ignore[union-attr]


def test_barge_in_cancels_the_reply_and_its_synthesis() -> None:
    voice = SyntheticStreamingVoice()
    d = driver("Wait.", voice=voice, pace=1.0)
    say_exactly(d, LONG, finish=False)
    pump(d, lambda ev: any(e["type"] == "response.output_audio.delta" for e in ev))
    speech = d.session.response.speech  # type: ignore[union-attr]
    events = d.stream(caller(), 24000)
    cancelled = next(e for e in events if e["type"] == "response.done")["response"]
    assert cancelled["status"] == "cancelled"
    assert cancelled["status_details"]["reason"] == "turn_detected"
    assert speech is not None and speech.join(timeout=5)
    assert speech.produced < 3 and voice.sentences < 3  # the rest was never synthesized


def test_the_hotline_flow_through_function_calls() -> None:
    d = driver("Hi, where is my order for 217?", "9 4 1 0 7", "Yes, that's right.")
    d.update(audio={"input": {"transcription": {"model": "whisper-1"}}})
    events = hear(d, caller())
    heard = only(d.events, "conversation.item.input_audio_transcription.completed")
    assert heard["transcript"] == "Hi, where is my order for 217?"
    assert "ZIP code" in spoken(events)[0]
    events = hear(d, caller())
    assert spoken(events) == ["I heard order 4 2 1 7, ZIP code 9 4 1 0 7 — is that right?"]
    events = hear(d, caller())
    call = only(events, "response.function_call_arguments.done")
    assert (call["name"], orjson.loads(call["arguments"])) == (
        "verify_caller",
        {"order_number": "4217", "zip_code": "94107"},
    )
    assert spoken(events) == ["Thanks, one moment."]  # said while the tool runs
    outputs = [
        {"verified": True, "order_number": "4217"},
        {"found": True, "verified": True, "say": "Your order shipped.", "carrier": "UPS"},
    ]
    for output in outputs:
        item = {"type": "function_call_output", "call_id": call["call_id"]}
        item["output"] = orjson.dumps(output).decode()
        create = {"type": "conversation.item.create", "item": item}
        events = run(d, create, {"type": "response.create"})
        calls = [e for e in events if e["type"] == "response.function_call_arguments.done"]
        if calls:
            call = calls[0]
            assert call["name"] == "lookup_order"
    assert spoken(events) == ["Your order shipped. Is there anything else I can help with?"]


def test_text_modality_and_brain_failure() -> None:
    class Broken:
        def decide(self, request: BrainRequest) -> Decision:
            raise RuntimeError("no brain today")

    d = driver(brain=Broken)
    done = only(run(d, {"type": "response.create"}), "response.done")["response"]
    assert done["status"] == "failed"
    assert done["status_details"]["error"]["type"] == "server_error"
    assert "no brain today" in done["status_details"]["error"]["message"]

    d = driver()
    d.update(output_modalities=["text"])
    events = say_exactly(d, "Hello there.")
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == (
        "Hello there."
    )
    assert audio_bytes(events) == 0


def test_max_output_tokens_caps_streamed_audio() -> None:
    d = driver()
    instructions = f'Greet the caller by saying exactly: "{LONG}"'
    response = {"max_output_tokens": 10, "instructions": instructions}  # 10 × 50 ms of audio
    events = run(d, {"type": "response.create", "response": response})
    done = only(events, "response.done")["response"]
    assert done["status"] == "incomplete"
    assert done["status_details"]["reason"] == "max_output_tokens"
    assert audio_bytes(events) == 500 * 24 * 2


def test_each_session_has_its_own_brain_and_empty_responses_are_valid() -> None:
    brains: list[Any] = []

    class Recorder:
        def __init__(self) -> None:
            brains.append(self)

        def decide(self, request: BrainRequest) -> Decision:
            if request.request.index == 0:
                return Decision(calls=(FunctionCall("end_call", "{}", "call_fixed"),))
            return Decision()  # nothing left to say

    engine = SpeechEngine(
        transcriber=Canned(), voice=SyntheticStreamingVoice(), brain_factory=Recorder, vad="energy"
    )
    first, _second = SessionDriver(engine=engine), SessionDriver(engine=engine)
    assert len(brains) == 2 and brains[0] is not brains[1]
    call = only(run(first, {"type": "response.create"}), "response.function_call_arguments.done")
    assert call["call_id"] == "call_fixed"
    done = only(run(first, {"type": "response.create"}), "response.done")["response"]
    assert done["status"] == "completed" and done["output"] == []


def test_early_transcription_is_reused_when_the_pause_ends_the_turn() -> None:
    d = driver("Hello.", "Hello again.")
    engine = d.session.engine
    assert engine is not None
    hear(d, caller())
    transcriber = engine.engine.transcriber
    assert isinstance(transcriber, Canned)
    assert transcriber.calls == 1  # the early job (at 200 ms of silence) was the turn's
    assert engine.transcripts[next(iter(engine.transcripts))].result().text == "Hello."


def test_a_failed_transcription_is_reported_and_heard_as_nothing() -> None:
    class Deaf:
        def transcribe(self, pcm: bytes, rate: int) -> str:
            raise RuntimeError("no ears")

    engine = SpeechEngine(
        transcriber=Deaf(),
        voice=SyntheticStreamingVoice(),
        brain_factory=HotlineBrain,
        vad="energy",
    )
    d = SessionDriver(engine=engine)
    d.update(audio={"input": {"transcription": {"model": "whisper-1"}}})
    events = hear(d, caller())
    failed = only(d.events, "conversation.item.input_audio_transcription.failed")
    assert failed["error"]["code"] == "transcription_failed"
    assert "didn't catch" in spoken(events)[0]


def test_engine_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    def settings(**values: Any) -> Settings:
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    for name in ("LOCAL_ENGINE", "LOCAL_EARLY_STT_MS"):
        monkeypatch.delenv(name, raising=False)
    assert engine_kind(settings(local_engine="synthetic")) == "synthetic"
    assert engine_kind(settings(local_engine="speech")) == "speech"
    assert engine_kind(settings()) == "speech"  # the [local] extra is installed here
    monkeypatch.setenv("LOCAL_ENGINE", "synthetic")  # the public names still work
    monkeypatch.setenv("LOCAL_EARLY_STT_MS", "off")
    assert engine_kind(settings()) == "synthetic" and settings().local_early_stt_ms is None
    monkeypatch.setenv("LOCAL_EARLY_STT_MS", "350")
    assert settings().local_early_stt_ms == 350
    with pytest.raises(ValueError, match="local_engine"):
        settings(local_engine="gpt")
    assert default_engine(settings(local_engine="synthetic")) is None  # the scripted server
    assert isinstance(default_engine(settings(local_engine="speech")), SpeechEngine)
    monkeypatch.setattr("service.modelserver.engine.speech_available", lambda: False, raising=True)
    assert engine_kind(settings(local_engine="")) == "synthetic"
    with pytest.raises(RuntimeError, match=r"\[local\] extra"):
        engine_kind(settings(local_engine="speech"))


def test_scripted_sessions_are_untouched() -> None:
    d = SessionDriver(Script())
    assert d.session.engine is None
    d.send({"type": "input_audio_buffer.append", "audio": b64(caller())})
    assert not d.session.waiting
