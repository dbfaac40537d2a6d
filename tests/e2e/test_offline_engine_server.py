"""The offline speech engine end to end, at the Realtime protocol level, with the real models
(the ``[local]`` extra: Silero VAD, Whisper tiny.en, Piper): a caller *speaks* to the local
server over a websocket (μ-law 8 kHz, as on a phone line), the server hears, decides, calls
the hotline tools through function calls, and *speaks* back; the test transcribes the reply.

Not skipped when the extra is missing: CI installs it, and a missing model must fail loudly.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect

from service.agent.hotline import LOOKUP_ORDER, VERIFY_CALLER, hotline_registry, seed_orders
from service.agent.tools import ToolContext, run_tool
from service.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from service.modelserver import LocalRealtimeServer, Script
from service.modelserver.engine import SpeechEngine, speech_engine
from service.modelserver.engine.stt import WhisperTranscriber
from service.modelserver.engine.tts import speak
from service.modelserver.protocol import validate_server_event
from service.settings import Settings

Event = dict[str, Any]
PREFIX = "engine-e2e:"
PCMU = {"type": "audio/pcmu"}
GREETING = "Thanks for calling Acme order support. What's your order number?"
TELEPHONY_TOOLS = [
    {
        "type": "function",
        "name": "transfer_call",
        "description": "Transfer the caller to a person.",
        "parameters": {"type": "object", "properties": {"target": {"type": "string"}}},
    },
    {
        "type": "function",
        "name": "end_call",
        "description": "End the phone call.",
        "parameters": {"type": "object", "properties": {"reason": {"type": "string"}}},
    },
]


@pytest.fixture(scope="module")
def engine() -> Iterator[SpeechEngine]:
    """One engine (models loaded once, module-level caches) for every test here."""
    # The built-in hotline brain, Piper, Whisper, Silero.
    built = speech_engine(Settings(_env_file=None, llm_base_url=""))  # type: ignore[call-arg]
    built.warm()
    yield built
    built.close()


class Caller:
    """A raw GA client over a websocket; every server event is validated against the SDK."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[Event] = []

    async def send(self, event: Event) -> None:
        await self.ws.send(orjson.dumps(event).decode())

    async def until(self, kind: str, timeout: float = 30.0) -> list[Event]:  # noqa: ASYNC109
        out: list[Event] = []
        async with asyncio.timeout(timeout):
            while True:
                event = orjson.loads(await self.ws.recv())
                validate_server_event(event)
                self.events.append(event)
                out.append(event)
                if event["type"] == kind:
                    return out

    async def say(self, text: str, pause_ms: int = 900) -> None:
        """Speak ``text`` (Piper, deterministic) then stay quiet, 100 ms per message, sent
        faster than real time (the VAD runs on the audio clock, not the wall clock)."""
        pcm = bytes(8 * 300 * 2) + speak(text, 8000) + bytes(8 * pause_ms * 2)
        for i in range(0, len(pcm), 1600):
            audio = base64.b64encode(pcm16_to_ulaw(pcm[i : i + 1600])).decode()
            await self.send({"type": "input_audio_buffer.append", "audio": audio})
            await asyncio.sleep(0.005)


def reply_audio(events: list[Event]) -> bytes:
    return b"".join(
        ulaw_to_pcm16(base64.b64decode(e["delta"]))
        for e in events
        if e["type"] == "response.output_audio.delta"
    )


def done(events: list[Event]) -> Event:
    return next(e for e in reversed(events) if e["type"] == "response.done")["response"]


async def start_call(server: LocalRealtimeServer) -> Caller:
    ws = await connect(server.url + "?model=gpt-realtime")
    caller = Caller(ws)
    await caller.until("session.created")
    tools = [VERIFY_CALLER.openai_tool(), LOOKUP_ORDER.openai_tool(), *TELEPHONY_TOOLS]
    await caller.send(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "tools": tools,
                "audio": {
                    "input": {"format": PCMU, "transcription": {"model": "whisper-1"}},
                    "output": {"format": PCMU},
                },
            },
        }
    )
    await caller.until("session.updated")
    return caller


async def test_spoken_order_status_call(engine: SpeechEngine, redis_client: aioredis.Redis) -> None:
    await seed_orders(redis_client, PREFIX)
    ctx = ToolContext(call_sid="CAengine", redis=redis_client, key_prefix=PREFIX)
    registry = hotline_registry()
    async with LocalRealtimeServer(engine=engine) as server:
        caller = await start_call(server)
        await caller.send(
            {
                "type": "response.create",
                "response": {"instructions": f'Greet the caller by saying exactly: "{GREETING}"'},
            }
        )
        greeting = await caller.until("response.done")
        assert len(reply_audio(greeting)) > 8000 * 2  # more than a second of speech

        await caller.say("Hi, where is my order 4 2 1 7?")
        asked = await caller.until("response.done")
        heard = [
            e["transcript"]
            for e in caller.events
            if e["type"] == "conversation.item.input_audio_transcription.completed"
        ]
        assert "order" in heard[-1].lower(), heard
        assert "zip" in done(asked)["output"][0]["content"][0]["transcript"].lower()

        await caller.say("9 4 1 0 7")
        readback = await caller.until("response.done")
        assert "is that right" in done(readback)["output"][0]["content"][0]["transcript"]
        await caller.say("Yes, that's right.")
        events = await caller.until("response.done")
        calls_made: list[str] = []
        for _ in range(3):  # verify_caller, then lookup_order, then the spoken answer
            calls = [e for e in events if e["type"] == "response.function_call_arguments.done"]
            if not calls:
                break
            for call in calls:
                calls_made.append(call["name"])
                outcome = await run_tool(registry.get(call["name"]), call["arguments"], ctx)
                output = {"type": "function_call_output", "call_id": call["call_id"]}
                output["output"] = outcome.output
                await caller.send({"type": "conversation.item.create", "item": output})
            await caller.send({"type": "response.create"})
            events = await caller.until("response.done")
        assert calls_made == ["verify_caller", "lookup_order"]
        assert done(events)["status"] == "completed"

        # What a caller hears: transcribe the agent's (μ-law) reply and find the status in it.
        answer = await asyncio.to_thread(
            WhisperTranscriber(prompt="").transcribe, reply_audio(events), 8000
        )
        # "shipped" over 8 kHz μ-law is sometimes heard as "ship": the status word's stem.
        assert "ship" in answer.lower() and "ups" in answer.lower(), answer
        await caller.ws.close()


async def test_barge_in_stops_synthesis(engine: SpeechEngine) -> None:
    long_reply = (
        "Your order shipped with UPS yesterday. It should arrive on Thursday. "
        "The tracking number is in your shipping email. "
        "You can also check the status online at any time."
    )
    # Real-time pacing: the reply takes ~9 s to send, so the caller can cut in during it.
    async with LocalRealtimeServer(Script(pace=1.0), engine=engine) as server:
        caller = await start_call(server)
        session = await server.wait_for_session()
        await caller.send(
            {
                "type": "response.create",
                "response": {"instructions": f'Say it by saying exactly: "{long_reply}"'},
            }
        )
        events = await caller.until("response.output_audio.delta")
        speech = session.response.speech if session.response else None
        await caller.say("Wait, which carrier?", pause_ms=300)
        events += await caller.until("response.done")
        response = done(events)
        assert response["status"] == "cancelled"
        assert response["status_details"]["reason"] == "turn_detected"
        item = response["output"][0]
        assert item["status"] == "incomplete"
        sent = len(reply_audio(events))
        full = len(speak(long_reply, 8000))
        assert 0 < sent < full / 2, (sent, full)
        # Synthesis stopped too: at most the sentence being sent and the one ahead of it.
        assert speech is not None and speech.join(timeout=10)
        assert speech.produced <= 2 < 4, speech.produced
        await caller.ws.close()
