"""The README's main job: a real conversation on one machine, and what Redis kept of it.

The service runs on loopback with the embedded store (unless ``REDIS_URL`` is set), talking to
the local OpenAI-Realtime-compatible server (unless another backend is configured). The
softphone calls it the way Twilio would, hears the greeting, speaks, lets the agent answer, and
talks over the agent mid-answer. Then the call's event stream is printed from Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.audio.synthetic import SyntheticVoice
from service.logging import configure_logging
from service.modelserver.hotline_script import HotlineScript
from service.modelserver.script import ResponseRequest, Script, Turn
from service.modelserver.server import LocalRealtimeServer
from service.peers.twilio import CallSummary, Softphone
from service.serving import RunningService, free_port
from service.settings import Settings

__all__ = ["ConversationResult", "converse", "run_demo"]

CALLER_VOICE = SyntheticVoice(seed=7, level_dbfs=-16.0)
DEMO_SCRIPT = Script(
    greeting=Turn(
        text="Hello, thanks for calling Acme. How can I help you today?", duration_ms=1800
    ),
    replies=(
        Turn(
            text="Of course. Your order shipped yesterday and should arrive on Thursday. "
            "Is there anything else I can help with?",
            duration_ms=4000,
        ),
        Turn(text="Sorry, go ahead.", duration_ms=1200),
    ),
)


class DemoHotlineScript(HotlineScript):
    """The caller's first question goes through the tools; later turns get a short reply."""

    def caller_turn(self, request: ResponseRequest) -> Turn:
        if request.index <= 1:
            return super().caller_turn(request)
        return Turn(text="Of course. It's coming with UPS. Anything else I can help with?")


@dataclass
class ConversationResult:
    phone: Softphone
    summary: CallSummary
    barge_in_at_s: float


CallerVoice = Callable[[str], bytes]  # text → PCM16 8 kHz


def synthetic_caller(text: str) -> bytes:
    """Speech-like audio about as long as ``text`` would take to say (no real words)."""
    return b"".join(CALLER_VOICE.synthesize(text, 100 * len(text.split()) + 800, 8000))


# Pauses between digits (commas) are how people read codes out, and what tiny.en hears best
# through a phone line (without them "9 4 1 0 7" comes back as "94007").
HOTLINE_TURNS = (
    "Hi, where is my order 4 2 1 7? My ZIP code is nine, four, one, zero, seven.",
    "Yes, that's right.",  # the agent reads heard digits back before it checks them
)
BARGE_IN = "Wait, which carrier?"


async def converse(
    service: RunningService,
    auth_token: str,
    *,
    turns: tuple[str, ...] = ("Hi, where is my order 4 2 1 7? My ZIP code is 9 4 1 0 7.",),
    barge_in: str = BARGE_IN,
    voice: CallerVoice = synthetic_caller,
    patience_s: float = 8.0,
    barge_in_after_ms: float = 1500,
    seconds: float = 12.0,
    record: Path | None = None,
    **phone_options: Any,
) -> ConversationResult:
    """Greeting → the caller's turns, each answered → the caller talks over the last answer.

    Each wait is bounded by ``patience_s`` (real speech engines need longer than scripts).
    """
    phone = Softphone(
        service.base_url,
        auth_token=auth_token,
        public_url=service.services.settings.public_url,
        seconds=seconds,
        record=record,
        status_callback=True,
        **phone_options,
    )
    await phone.dial()
    await phone.connect()

    async def say(text: str) -> None:
        ms = phone.speak(voice(text), sample_rate=8000)
        await asyncio.sleep(ms / 1000 + 0.1)  # the softphone sends it in real time

    async def agent_has_spoken() -> None:
        """Wait for the agent to start answering, then for it to finish being heard."""
        played = phone.playback.played_ms
        await phone.wait_for(lambda p: p.playback.played_ms > played + 300, patience_s)
        await phone.wait_for(lambda p: p.playback.buffered_ms == 0, patience_s)
        await asyncio.sleep(0.4)

    await agent_has_spoken()  # the greeting
    for text in turns[:-1]:
        await say(text)
        await agent_has_spoken()
    await say(turns[-1])
    # Let the last answer get well under way, then talk over it.
    played_before = phone.playback.played_ms
    await phone.wait_for(
        lambda p: p.playback.played_ms > played_before + barge_in_after_ms, patience_s
    )
    barge_in_at = phone.elapsed
    await say(barge_in)
    summary = await phone.finished()
    return ConversationResult(phone, summary, barge_in_at)


def _speech_engine(settings: Settings) -> Any:
    """The offline speech engine if the [local] extra is installed (else None: scripts)."""
    if settings.local_engine == "synthetic":
        return None
    try:
        from service.modelserver.engine import speech_engine
    except ImportError:
        return None
    try:
        return speech_engine(settings)
    except (ImportError, OSError, RuntimeError) as exc:
        print(f"(the offline speech engine is not available: {exc}; using scripted replies)")
        return None


async def run_demo(*, seconds: float = 12.0, record: Path = Path("demo-call.wav")) -> int:
    del seconds  # the scripted conversation sets its own length
    port = free_port()
    base = Settings()
    auth_token = base.twilio_auth_token.get_secret_value() or secrets.token_hex(16)
    configure_logging(base.log_format, base.log_level)
    async with contextlib.AsyncExitStack() as stack:
        overrides: dict[str, object] = {}
        conversation: dict[str, Any] = {}
        if base.realtime_backend == "local":
            engine = _speech_engine(base)
            if engine is not None:
                from service.modelserver.engine.tts import speak

                print("Loading the offline speech models (Whisper tiny.en, Piper)…")
                await asyncio.to_thread(engine.warm)
                script: Script = Script()  # pacing and chunking only: the engine answers
                conversation = {
                    "turns": HOTLINE_TURNS,
                    "voice": lambda text: speak(text, 8000),
                    "patience_s": 15.0,
                    "barge_in_after_ms": 3500,
                    "seconds": 28.0,
                }
                overrides["input_transcription_model"] = "whisper-1"
            else:
                script = DemoHotlineScript()
            model = await stack.enter_async_context(LocalRealtimeServer(script, engine=engine))
            overrides["local_realtime_url"] = model.url
        settings = Settings(
            public_url=f"http://127.0.0.1:{port}", twilio_auth_token=auth_token, **overrides
        )  # type: ignore[arg-type]
        service = await stack.enter_async_context(RunningService(settings, port))
        result = await converse(service, auth_token, record=record, **conversation)
        services = service.services
        await services.writer.flush(timeout=5.0)
        call = await services.store.get_call(result.summary.call_sid)
        events = await services.store.get_events(result.summary.call_sid)
        audit = (
            await services.audit.call_entries(services.redis, result.summary.call_sid)
            if services.audit is not None
            else []
        )
    print("\n== Softphone ==")
    print(result.summary.to_table())
    print(f"\n== Redis: call {result.summary.call_sid} ==")
    for key in sorted(call):
        print(f"  {key:<24} {call[key]}")
    print("\n== Conversation (transcripts from the call's event stream) ==")
    for event in events:
        if event.get("type") == "transcript":
            who = "caller" if event.get("role") == "caller" else "agent "
            print(f"  {who}: {event.get('text', '')}")
    print("\n== Redis: call events ==")
    for event in events:
        fields = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("id", "type", "at"))
        print(f"  {event.get('at', ''):<26} {event.get('type', ''):<11} {fields}")
    print("\n== Redis: tool-call audit ==")
    for entry in audit:
        skip = ("id", "at", "call_sid", "call_id", "name", "state")
        fields = " ".join(f"{k}={v}" for k, v in entry.items() if k not in skip)
        print(f"  {entry.get('at', ''):<26} {entry['name']:<14} {entry['state']:<12} {fields}")
    print(f"\nWhat the caller heard is in {record}.")
    return 0 if call.get("end_reason") else 1
