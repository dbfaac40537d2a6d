"""Bench: barge-in while the offline engine speaks — caller speech start → synthesis silent.

Run: ``.venv/bin/python bench/barge_in.py [--trials 20]`` (about two minutes; needs ``.[local]``).

In process, no sockets: a local-server session (the sans-I/O ``RealtimeSession``) with the
Piper voice speaks a long reply paced in real time; at a random moment 0.3–2.5 s after its
first audio the caller starts talking (Piper speech, 20 ms chunks sent in real time). For
each trial:

* ``detect``: caller audio sent from its first speech sample to ``speech_started`` (the VAD
  needs some speech to be sure; Silero, 96 ms minimum);
* ``stop``: wall time from ``speech_started`` (the response is cancelled in the same call)
  to the synthesis thread having ended — the CPU is free and nothing more is synthesized;
* ``silent``: detect + stop, i.e. speech start → synthesis silent.

``mid-sentence abort`` is the engine now (the ONNX run is terminated); ``sentence end`` is
the engine before (generator closed, the sentence in progress runs to its end), measured by
hiding the stop signal from the voice. Benchmarks print; they never pass or fail.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.modelserver.engine import SpeechEngine
from service.modelserver.engine.base import SpeechChunk, StopSignal
from service.modelserver.engine.hotline_brain import HotlineBrain
from service.modelserver.engine.tts import PiperStreamingVoice, speak
from service.modelserver.script import Script
from service.modelserver.session import RealtimeSession
from tests.support.session_driver import b64

RATE = 24_000
CHUNK = RATE * 20 // 1000 * 2
LONG = (
    "Your order shipped with UPS yesterday afternoon from our warehouse in Reno, Nevada, "
    "and it should arrive on Thursday before eight in the evening. "
    "The tracking number is in the shipping email we sent you when it left the warehouse, "
    "and you can follow the package there at any time of the day or night. "
    "If nobody is home, the driver will leave it at the front door or with a neighbour."
)


class SentenceEnd:
    """The voice as it was before: closing the stream stops after the sentence in progress."""

    def __init__(self, voice: PiperStreamingVoice) -> None:
        self.voice = voice

    def stream(self, text: str, rate: int, stop: StopSignal | None = None) -> Iterator[SpeechChunk]:
        return self.voice.stream(text, rate, None)


class Silent:
    def transcribe(self, pcm: bytes, rate: int) -> str:
        return ""


def trial(engine: SpeechEngine, caller: bytes, delay_s: float) -> tuple[float, float]:
    session = RealtimeSession(Script(pace=1.0), engine=engine)
    session.set_waker(lambda: None)
    session.open(time.monotonic())
    create = {"type": "response.create"}
    create["response"] = {"instructions": f'Say it by saying exactly: "{LONG}"'}
    session.receive(create, time.monotonic())
    first_audio: float | None = None
    silence = bytes(CHUNK)
    while first_audio is None or time.monotonic() < first_audio + delay_s:
        events = session.tick(time.monotonic())
        if first_audio is None and any(e["type"] == "response.output_audio.delta" for e in events):
            first_audio = time.monotonic()
        session.receive(
            {"type": "input_audio_buffer.append", "audio": b64(silence)}, time.monotonic()
        )
        time.sleep(0.02)
    assert session.response is not None and session.response.speech is not None
    speech = session.response.speech
    for sent, offset in enumerate(range(0, len(caller), CHUNK)):
        session.tick(time.monotonic())
        chunk = caller[offset : offset + CHUNK]
        events = session.receive(
            {"type": "input_audio_buffer.append", "audio": b64(chunk)}, time.monotonic()
        )
        if any(e["type"] == "input_audio_buffer.speech_started" for e in events):
            t0 = time.monotonic()
            speech.join(timeout=10)
            assert speech.ended_at is not None
            session.close()
            return (sent + 1) * 20.0, (speech.ended_at - t0) * 1000
        time.sleep(0.02)
    raise RuntimeError("the caller's speech was not detected")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    piper = PiperStreamingVoice()
    caller = speak("Wait, which carrier is it?", RATE)
    # Where the speech starts in the caller's clip: detection is counted from there.
    lead = next(
        i
        for i in range(0, len(caller), 2)
        if abs(int.from_bytes(caller[i : i + 2], "little", signed=True)) > 300
    )
    lead_ms = lead / 2 * 1000 / RATE
    print(f"{args.trials} trials per variant; Piper voice, paced in real time\n")
    print("| variant | detect p50 / p99 (ms) | stop p50 / p99 (ms) ", end="")
    print("| silent p50 / p99 (ms) | stop max (ms) |")
    print("|---|---|---|---|---|")
    rng = random.Random(7)
    for name, voice in (
        ("mid-sentence abort (now)", piper),
        ("sentence end (before)", SentenceEnd(piper)),
    ):
        engine = SpeechEngine(
            transcriber=Silent(), voice=voice, brain_factory=HotlineBrain, early_stt_ms=None
        )  # type: ignore[arg-type]
        engine.warm()
        detect, stop = [], []
        for _ in range(args.trials):
            heard_ms, stop_ms = trial(engine, caller, rng.uniform(0.3, 2.5))
            detect.append(max(0.0, heard_ms - lead_ms))
            stop.append(stop_ms)
        engine.close()
        silent = [d + s for d, s in zip(detect, stop, strict=True)]
        cells = [f"{pct(v, 0.5):.0f} / {pct(v, 0.99):.0f}" for v in (detect, stop, silent)]
        print(f"| {name} | " + " | ".join(cells) + f" | {max(stop):.0f} |")


if __name__ == "__main__":
    main()
