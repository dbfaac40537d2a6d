"""Barge-in stops synthesis mid-sentence: closing a reply's speech aborts the Piper run in
progress instead of letting the sentence finish (the CPU goes back to hearing the caller)."""

from __future__ import annotations

import threading
import time

from service.modelserver.engine import SpeechEngine
from service.modelserver.engine.background import END, PENDING
from service.modelserver.engine.base import StopSignal
from service.modelserver.engine.hotline_brain import HotlineBrain
from service.modelserver.engine.tts import PiperStreamingVoice

SENTENCE = (
    "Your order shipped with UPS yesterday afternoon from our warehouse in Reno, and it "
    "should arrive on Thursday before eight in the evening at your front door"
)


def test_stop_aborts_the_piper_sentence_in_progress() -> None:
    voice = PiperStreamingVoice(noise_scale=0.0, noise_w_scale=0.0)
    voice.warm()
    stop, chunks = StopSignal(), []
    worker = threading.Thread(target=lambda: chunks.extend(voice.stream(SENTENCE, 8000, stop)))
    worker.start()
    time.sleep(0.1)  # inside the ONNX run: the sentence takes about a second on 2 cores
    asked = time.monotonic()
    stop.stop()
    worker.join(timeout=10)
    stopped_s = time.monotonic() - asked
    assert chunks == []  # it was stopped mid-sentence: nothing of it is delivered
    assert stopped_s < 0.25, stopped_s


def test_closing_a_reply_stops_its_synthesis_thread_at_once() -> None:
    class Deaf:
        def transcribe(self, pcm: bytes, rate: int) -> str:
            return ""

    voice = PiperStreamingVoice(noise_scale=0.0, noise_w_scale=0.0)
    engine = SpeechEngine(transcriber=Deaf(), voice=voice, brain_factory=HotlineBrain, vad="energy")
    session = engine.attach()
    speech = session.speak(f"Hello. {SENTENCE}. {SENTENCE}.", 8000)
    first = speech.poll()
    while first is PENDING:
        time.sleep(0.005)
        first = speech.poll()
    assert first is not END  # "Hello." was spoken; the long sentence is being synthesized
    asked = time.monotonic()
    speech.close()
    assert speech.join(timeout=10) and speech.ended_at is not None
    assert speech.ended_at - asked < 0.3
    assert speech.produced <= 2
    engine.close()
