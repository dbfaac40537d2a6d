"""The engine's brains (built-in hotline dialogue, OpenAI-compatible LLM), reading numbers
from transcripts, and the engine's own VAD and voices."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from service.audio.vad import EnergyVad, VoiceStarted, VoiceStopped
from service.modelserver.engine import BrainRequest, Decision, SpeechEngine
from service.modelserver.engine.hotline_brain import GOODBYE, HotlineBrain
from service.modelserver.engine.llm_brain import LlmBrain, LlmConfig, chat_messages, llm_config
from service.modelserver.engine.numbers import numbers_in, speakable
from service.modelserver.engine.silero import SileroVad
from service.modelserver.engine.tts import (
    EspeakVoice,
    PiperStreamingVoice,
    SyntheticStreamingVoice,
    speak,
    split_sentences,
)
from service.modelserver.script import ResponseRequest
from service.settings import Settings
from tests.support.session_driver import SessionDriver, only

ALL_TOOLS = tuple(
    {"type": "function", "name": n, "description": n, "parameters": {"type": "object"}}
    for n in ("verify_caller", "lookup_order", "transfer_call", "end_call")
)


class Call:
    """Drives a HotlineBrain turn by turn, keeping the conversation as the session would."""

    def __init__(self, tools: tuple[dict[str, Any], ...] = ALL_TOOLS) -> None:
        self.brain = HotlineBrain()
        self.items: list[dict[str, Any]] = []
        self.tools = tools
        self.index = 0

    def _decide(self, trigger: Any, instructions: str = "") -> Decision:
        last = next(
            (
                i
                for i in reversed(self.items)
                if i.get("role") == "user" or i["type"] == "function_call_output"
            ),
            None,
        )
        request = ResponseRequest(self.index, trigger, instructions, last)
        self.index += 1
        decision = self.brain.decide(BrainRequest(request, tuple(self.items), tools=self.tools))
        if decision.text:
            self.items.append(
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_audio", "transcript": decision.text}],
                }
            )
        for call in decision.calls:
            self.items.append(
                {
                    "type": "function_call",
                    "name": call.name,
                    "call_id": f"c{len(self.items)}",
                    "arguments": call.arguments,
                }
            )
        return decision

    def says(self, text: str) -> Decision:
        self.items.append(
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_audio", "transcript": text}],
            }
        )
        return self._decide("turn_detection")

    def tool(self, output: dict[str, Any]) -> Decision:
        call_id = next(i["call_id"] for i in reversed(self.items) if i["type"] == "function_call")
        self.items.append(
            {
                "type": "function_call_output",
                "call_id": call_id,
                "output": orjson.dumps(output).decode(),
            }
        )
        return self._decide("client")

    def asked(self, instructions: str) -> Decision:
        return self._decide("client", instructions)


def call_of(decision: Decision) -> tuple[str, dict[str, Any]]:
    assert len(decision.calls) == 1, decision
    return decision.calls[0].name, orjson.loads(decision.calls[0].arguments)


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("Hi, where is my order for 217?", ["4217"]),  # Whisper's "four" → "for"
        ("9 for 107.", ["94107"]),
        ("It's 4 2 1 7 and my zip code is 9 4 1 0 7.", ["4217", "94107"]),
        ("four two one seven", ["4217"]),
        ("forty-two seventeen", ["4217"]),
        ("I'm calling for 4217", ["4217"]),  # a whole number: "for" is a word
        ("I sent 4217 to my mom", ["4217"]),
        ("Oh, it's nine four one oh seven", ["94107"]),
        ("I'd like to talk to a person", []),
    ],
)
def test_numbers_in_transcripts(text: str, numbers: list[str]) -> None:
    assert [digits for _, digits in numbers_in(text)] == numbers


def test_speakable_drops_what_is_addressed_to_the_model() -> None:
    message = "That ZIP code doesn't match this order. Ask the caller to check it. Don't say it."
    assert speakable(message) == "That ZIP code doesn't match this order."
    assert speakable("Ask the caller for the ZIP code on the order first.") == ""


def test_order_status_conversation() -> None:
    call = Call()
    greeting = call.asked('Greet the caller by saying exactly: "Hi. What\'s your order number?"')
    assert greeting == Decision("Hi. What's your order number?")
    assert "ZIP" in call.says("Hi, where is my order for 217?").text
    # Heard digits are read back before anything counts toward the lockout.
    assert (
        call.says("9 4 1 0 7").text == "I heard order 4 2 1 7, ZIP code 9 4 1 0 7 — is that right?"
    )
    decision = call.says("Yes, that's right.")
    assert decision.text == "Thanks, one moment."
    assert call_of(decision) == ("verify_caller", {"order_number": "4217", "zip_code": "94107"})
    decision = call.tool({"verified": True, "order_number": "4217"})
    assert decision.text == "" and call_of(decision) == ("lookup_order", {"order_number": "4217"})
    lookup = {
        "found": True,
        "verified": True,
        "say": "Your order shipped with UPS.",
        "carrier": "UPS",
        "eta_spoken": "Thursday, November 26",
    }
    assert call.tool(lookup).text.startswith("Your order shipped with UPS.")
    assert "UPS" in call.says("Which carrier is it?").text
    assert "November 26" in call.says("When will it get here?").text
    assert call_of(call.says("No, that's all. Goodbye.")) == ("end_call", {"reason": "caller_done"})
    assert call.tool({"ending": True}) == Decision(GOODBYE)
    assert call.asked("Say a short, friendly goodbye to the caller. Nothing else.").text == GOODBYE


def test_order_and_zip_in_one_breath_and_a_split_turn() -> None:
    call = Call()
    assert "is that right" in call.says("Where's order 4 2 1 7? My ZIP code is 9 4 1 0 7.").text
    decision = call.says("yes")
    assert call_of(decision)[1] == {"order_number": "4217", "zip_code": "94107"}
    call = Call()
    assert "order number" in call.says("Hi, I'm calling about my order.").text
    call.items.pop()  # the VAD split the turn before the agent spoke: both parts count
    assert "ZIP" in call.says("It's four two one seven.").text


def test_wrong_zip_unknown_order_lockout_and_errors() -> None:
    call = Call()
    call.says("Order 4217, zip 94108")
    call.says("Yes.")
    assert (
        "doesn't match"
        in call.tool({"verified": False, "attempts_left": 2, "order_number": "4217"}).text
    )
    assert call.says("9 4 1 0 7").text == "I heard 9 4 1 0 7 — is that right?"
    assert call_of(call.says("Yes."))[1]["zip_code"] == "94107"
    locked = call.tool({"verified": False, "locked": True, "order_number": "4217"})
    assert "transfer you to a person" in locked.text
    assert call_of(call.says("Yes, please.")) == ("transfer_call", {"target": "human"})
    assert call.tool({"transferred": True, "target": "human"}) == Decision()

    call = Call()
    call.says("order 9999 zip 12345")
    call.says("yes")
    not_found = call.tool(
        {
            "verified": False,
            "found": False,
            "message": "There's no order with that number. Ask the caller to check it.",
        }
    )
    assert not_found.text.startswith("There's no order with that number. Please say")
    error = call.tool({"error": "error", "message": "I couldn't look that up right now."})
    assert error.text.startswith("I couldn't look that up right now. Would you like")


def test_people_goodbyes_and_what_it_does_not_understand() -> None:
    assert call_of(Call().says("Can I talk to a real person?"))[0] == "transfer_call"
    assert "check on an order" in Call().says("What's the weather like?").text
    assert "didn't catch" in Call().says("").text
    assert "whole number" in Call().says("My order is 2 1 7").text
    no_tools = Call(tools=())
    no_tools.says("order 4217")
    no_tools.says("zip 94107")
    assert "can't look up orders" in no_tools.says("Yes").text
    assert Call(tools=()).says("Goodbye!") == Decision(GOODBYE)
    assert (
        "One moment"
        in Call()
        .asked(
            "In a few words, tell the caller you are checking that now. Do not give any details."
        )
        .text
    )


# --- the LLM brain ---------------------------------------------------------------------------


def test_llm_config_from_settings_and_its_public_env_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LLM_BASE_URL", raising=False)
    assert llm_config(Settings(_env_file=None)) is None  # type: ignore[call-arg]
    monkeypatch.setenv("LLM_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("LLM_MODEL", "m")
    config = llm_config(Settings(_env_file=None))  # type: ignore[call-arg]
    assert config is not None and config.base_url == "http://127.0.0.1:9/v1" and config.model == "m"
    assert "key" not in repr(LlmConfig("http://x", api_key="secret"))


def test_llm_brain_maps_the_conversation_and_tool_calls_both_ways() -> None:
    bodies: list[dict[str, Any]] = []
    replies = [
        {
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_llm1",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": '{"order_number": "4217"}'},
                }
            ],
        },
        {"content": "It shipped yesterday.", "tool_calls": None},
    ]

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/chat/completions"
        assert request.headers["authorization"] == "Bearer k"
        bodies.append(orjson.loads(request.content))
        return httpx.Response(200, json={"choices": [{"message": replies[len(bodies) - 1]}]})

    config = LlmConfig("http://llm.local/v1", api_key="k", model="small")
    headers = {"Authorization": "Bearer k"}
    client = httpx.Client(transport=httpx.MockTransport(handle), headers=headers)
    engine = SpeechEngine(
        transcriber=None,
        voice=SyntheticStreamingVoice(),
        vad="energy",  # type: ignore[arg-type]
        brain_factory=lambda: LlmBrain(config, client),
    )
    d = SessionDriver(engine=engine)
    d.update(instructions="Be brief.", tools=list(ALL_TOOLS[:2]), tool_choice="auto")
    d.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Where is order 4217?"}],
            },
        }
    )
    d.send({"type": "response.create"})
    d.finish()
    call = only(d.events, "response.function_call_arguments.done")
    assert (call["call_id"], call["name"]) == ("call_llm1", "lookup_order")
    output = {"type": "function_call_output", "call_id": "call_llm1", "output": '{"ok": 1}'}
    d.send({"type": "conversation.item.create", "item": output})
    d.send({"type": "response.create"})
    d.finish()
    first, second = bodies
    assert first["model"] == "small" and first["tool_choice"] == "auto"
    assert first["tools"][0] == {
        "type": "function",
        "function": {
            "name": "verify_caller",
            "parameters": {"type": "object"},
            "description": "verify_caller",
        },
    }
    assert first["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Where is order 4217?"},
    ]
    assert second["messages"][2:] == [
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_llm1",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": '{"order_number": "4217"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_llm1", "content": '{"ok": 1}'},
    ]
    transcripts = [e["transcript"] for e in d.events if e["type"].endswith("transcript.done")]
    assert transcripts == ["Let me check.", "It shipped yesterday."]


def test_chat_messages_skip_empty_and_map_client_function_calls() -> None:
    items = (
        {"type": "function_call", "call_id": "c1", "name": "end_call", "arguments": "{}"},
        {"type": "message", "role": "user", "content": [{"type": "input_audio"}]},
    )
    request = BrainRequest(ResponseRequest(0, "client", "", None), items, (None, None))
    assert chat_messages(request) == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "end_call", "arguments": "{}"},
                }
            ],
        }
    ]


# --- VAD and voices --------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 24000])
def test_silero_finds_speech_and_ignores_noise(rate: int) -> None:
    pcm = bytes(rate // 2 * 2) + speak("Hi, where is my order?", rate) + bytes(rate * 2)
    vad = SileroVad(rate)
    events = [e for i in range(0, len(pcm), 640) for e in vad.process(pcm[i : i + 640])]
    assert [type(e) for e in events] == [VoiceStarted, VoiceStopped]
    started, stopped = events
    assert 150 <= started.audio_start_ms <= 400  # speech at ~550 ms, minus 300 ms prefix
    speech_ms = 500 + len(pcm) / 2 / rate * 1000 - 1500
    assert abs(stopped.speech_end_ms - speech_ms) < 250

    rng = np.random.default_rng(1)
    noise = (rng.standard_normal(rate * 3) * 32768 * 10 ** (-25 / 20)).astype("<i2").tobytes()
    assert SileroVad(rate).process(noise) == []
    assert EnergyVad(rate).process(noise) != []  # why real calls use Silero


def test_voices_stream_sentence_by_sentence() -> None:
    assert split_sentences("One. Two? Three!") == ["One.", "Two?", "Three!"]
    long = ", ".join(["a clause of several words"] * 12) + "."
    assert all(len(s) <= 160 for s in split_sentences(long))
    chunks = list(PiperStreamingVoice().stream("Hello there. How are you?", 24000))
    assert [c.text for c in chunks] == ["Hello there.", "How are you?"]
    assert all(len(c.pcm) > 24000 * 2 // 4 for c in chunks)
    assert speak("Same words.", 8000) == speak("Same words.", 8000)  # deterministic caller


@pytest.mark.skipif(not EspeakVoice.available(), reason="espeak-ng (Debian) is not installed")
def test_espeak_voice() -> None:
    chunks = list(EspeakVoice().stream("Hello. Goodbye.", 8000))
    assert [c.text for c in chunks] == ["Hello.", "Goodbye."]
    assert base64.b64encode(chunks[0].pcm) and len(chunks[0].pcm) > 8000 // 4
