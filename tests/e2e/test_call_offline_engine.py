"""The whole product on one machine with no cloud: the softphone speaks (Piper) into the
service, which talks to the local server running the offline speech engine (Silero VAD,
Whisper tiny.en, the hotline brain, Piper); the hotline tools run against the real Redis."""

from __future__ import annotations

import wave
from pathlib import Path

from service.agent.hotline.orders import seed_orders
from service.audio.resample import StreamResampler
from service.demo import HOTLINE_TURNS, converse
from service.modelserver.engine import speech_engine
from service.modelserver.engine.tts import speak
from service.settings import Settings
from tests.conftest import TEST_AUTH_TOKEN
from tests.e2e.test_call_tools import audit_of, states

_ENGINE = None


def engine():
    global _ENGINE
    if _ENGINE is None:  # the models load once per test session (~3 s)
        _ENGINE = speech_engine(Settings(_env_file=None, llm_base_url=""))  # type: ignore[call-arg]
        _ENGINE.warm()
    return _ENGINE


def heard_text(record: Path) -> str:
    """Transcribe what the caller heard: the softphone's 8 kHz recording, at Whisper's 16 kHz,
    in 20 s windows (Whisper hears at most 30 s at a time; the call is longer)."""
    with wave.open(str(record)) as w:
        pcm = w.readframes(w.getnframes())
    resampler = StreamResampler(8000, 16000)
    audio = resampler.process(pcm) + resampler.flush()
    window = 16000 * 2 * 20
    stt = engine().transcriber
    return " ".join(
        stt.transcribe(audio[i : i + window], 16000) for i in range(0, len(audio), window)
    )


async def test_spoken_order_status_call_end_to_end(make_service, local_model, tmp_path) -> None:
    model = await local_model(engine=engine())
    service = await make_service(
        realtime_backend="local",
        local_realtime_url=model.url,
        input_transcription_model="whisper-1",
    )
    await seed_orders(service.services.redis, service.services.settings.redis_key_prefix)
    record = tmp_path / "heard.wav"
    result = await converse(
        service,
        TEST_AUTH_TOKEN,
        turns=HOTLINE_TURNS,
        voice=lambda text: speak(text, 8000),
        patience_s=15.0,
        barge_in_after_ms=6000,
        seconds=40.0,
        record=record,
    )
    summary = result.summary
    entries = await audit_of(service, summary.call_sid)
    assert states(entries, "verify_caller")[:3] == ["requested", "started", "finished"]
    assert states(entries, "lookup_order")[:3] == ["requested", "started", "finished"]
    # What the caller heard, transcribed, names the order's status and carrier.
    said = heard_text(record).lower()
    # 8 kHz loses fricatives: "shipped" comes back as "ship…" or, now and then, "shift".
    assert ("ship" in said or "shift" in said) and "ups" in said, said
    events = await service.services.store.get_events(summary.call_sid)
    callers = [e["text"] for e in events if e["type"] == "transcript" and e["role"] == "caller"]
    assert len(callers) >= 2  # the numbers and the yes were heard and transcribed
    assert summary.clears >= 1  # and the caller talked over the agent at the end
