"""Bench: what the Gemini Live backend costs per 20 ms frame, and what it adds to latency.

Run: ``.venv/bin/python bench/gemini_backend.py`` (about 10 s; ``--frames`` / ``--seconds``).

Part 1, CPU per 20 ms frame in this process (median of 5 runs, each 2000 frames; p99 over
all frames), one table row per path:

* ``caller→model @8k``   μ-law decode → PCM16 8 kHz (no resampling) → base64 → realtimeInput
  JSON (orjson), i.e. ``UlawToPcm(8000)`` + ``GeminiLiveProtocol.realtime_audio`` + dumps.
* ``caller→model @16k``  the same with the 8k→16k ``StreamResampler`` in between.
* ``model→caller``       a serverContent frame carrying 20 ms of 24 kHz audio → parse
  (``GeminiLiveProtocol.receive``: JSON + base64) → 24k→8k resample → μ-law.
* ``wire B``             bytes of the JSON frame per 20 ms (sent to the model, or for
  model→caller received from it), WebSocket framing aside.

Part 2, through ``GeminiLiveSession`` against the local peer on loopback (real sockets), one
row per input rate, caller frames paced at 20 ms for ``--seconds`` while the peer streams model
turns back (it answers every 1.2 s of caller speech):

* ``c→m``  μ-law frame in → converted → ``send_audio`` returned (the send is done), p50/p99 ms.
* ``m→c``  model frame read off the socket (``AgentAudio.received_at``) → converted to μ-law
  for the caller, p50/p99 ms (this bench's consumer stands in for the worker).

The machine is shared and noisy: compare rows within one run, not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.audio.g711 import pcm16_to_ulaw
from service.audio.synthetic import SyntheticVoice
from service.audio.transcode import PcmToUlaw, UlawToPcm
from service.logging import configure_logging
from service.peers.gemini_live import GeminiScript, GeminiTurn, LocalGeminiServer
from service.realtime.config import SessionConfig
from service.realtime.events import AgentAudio, ModelClosed
from service.realtime.gemini.connection import GeminiLiveSession
from service.realtime.gemini.protocol import GeminiLiveProtocol

REPEATS = 5
CALLER = b"".join(SyntheticVoice(seed=3).synthesize("caller words here", 1200, 8000))
CALLER_ULAW = pcm16_to_ulaw(CALLER)
MODEL_24K = b"".join(SyntheticVoice(seed=4).synthesize("model words here", 2000, 24000))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ulaw_frames(n: int) -> list[bytes]:
    return [CALLER_ULAW[(i * 160) % (len(CALLER_ULAW) - 160) :][:160] for i in range(n)]


def bench_caller_to_model(rate: int, frames: int) -> tuple[float, float, int]:
    proto = GeminiLiveProtocol(SessionConfig(), model="m", input_rate=rate)
    ulaw = _ulaw_frames(frames)
    medians, samples, wire = [], [], 0
    for _ in range(REPEATS):
        conv = UlawToPcm(rate)
        run = []
        for frame in ulaw:
            t0 = time.perf_counter()
            data = orjson.dumps(proto.realtime_audio(conv.convert(frame)))
            run.append((time.perf_counter() - t0) * 1e6)
            wire = len(data)
        medians.append(statistics.median(run))
        samples += run
    return statistics.median(medians), _pct(samples, 0.99), wire


def bench_model_to_caller(frames: int) -> tuple[float, float, int]:
    proto = GeminiLiveProtocol(SessionConfig(), model="m")
    messages = []
    for i in range(frames):
        chunk = MODEL_24K[(i * 960) % (len(MODEL_24K) - 960) :][:960]
        blob = {"mimeType": "audio/pcm;rate=24000", "data": base64.b64encode(chunk).decode()}
        messages.append(
            orjson.dumps({"serverContent": {"modelTurn": {"parts": [{"inlineData": blob}]}}})
        )
    medians, samples = [], []
    for _ in range(REPEATS):
        conv = PcmToUlaw(24000)
        run = []
        for message in messages:
            t0 = time.perf_counter()
            for event in proto.receive(message):
                if isinstance(event, AgentAudio):
                    conv.convert(event.audio)
            run.append((time.perf_counter() - t0) * 1e6)
        medians.append(statistics.median(run))
        samples += run
    return statistics.median(medians), _pct(samples, 0.99), len(messages[0])


async def bench_session(rate: int, seconds: float) -> tuple[list[float], list[float], int]:
    script = GeminiScript(
        pace=4.0,
        greeting=GeminiTurn(text="Hello.", duration_ms=800),
        default_reply=GeminiTurn(text="An answer of a few words.", duration_ms=2000),
    )
    c2m: list[float] = []
    m2c: list[float] = []
    async with LocalGeminiServer(script, strict=False) as server:
        proto = GeminiLiveProtocol(SessionConfig(), model="m", input_rate=rate)
        session = GeminiLiveSession(server.url, {}, proto)
        await session.open("Greet the caller.")
        to_caller = PcmToUlaw(24000)

        async def consume() -> None:
            async for event in session.events():
                if isinstance(event, AgentAudio):
                    to_caller.convert(event.audio)
                    m2c.append((time.perf_counter() - event.received_at) * 1000)
                elif isinstance(event, ModelClosed):
                    return

        reader = asyncio.create_task(consume())
        to_model = UlawToPcm(rate)
        # 1.2 s of speech then 0.8 s of silence, repeated: the peer answers each time.
        pattern = _ulaw_frames(60) + [b"\xff" * 160] * 40
        start = time.perf_counter()
        n = int(seconds * 50)
        for i in range(n):
            t0 = time.perf_counter()
            await session.send_audio(to_model.convert(pattern[i % len(pattern)]))
            c2m.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - time.perf_counter()))
        await session.close()
        await asyncio.wait_for(reader, 5)
    return c2m, m2c, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    configure_logging(level="warning")
    print("Per 20 ms frame, CPU in this process (µs; p50 = median of 5 runs, p99 over all):")
    header = f"{'path':<20} {'µs p50/p99':>12} {'wire B':>7} {'KB/s on the wire':>17}"
    print(header)
    print("-" * len(header))

    def row(name: str, p50: float, p99: float, wire: int) -> None:
        print(f"{name:<20} {f'{p50:.1f}/{p99:.1f}':>12} {wire:>7} {wire * 50 / 1000:>17.1f}")

    for rate in (8000, 16000):
        row(f"caller→model @{rate // 1000}k", *bench_caller_to_model(rate, args.frames))
    row("model→caller 24k→8k", *bench_model_to_caller(args.frames))

    print(
        f"\nThrough GeminiLiveSession vs the local peer (loopback, {args.seconds:g} s of caller "
        "frames paced at 20 ms, model turns streaming back), ms:"
    )
    header = f"{'input':<8} {'c→m p50/p99':>12} {'m→c p50/p99':>12} {'frames in/out':>14}"
    print(header)
    print("-" * len(header))
    for rate in (8000, 16000):
        c2m, m2c, n = asyncio.run(bench_session(rate, args.seconds))
        m2c_text = f"{_pct(m2c, 0.5):.3f}/{_pct(m2c, 0.99):.3f}" if m2c else "-"
        print(
            f"{f'{rate // 1000} kHz':<8} {f'{_pct(c2m, 0.5):.3f}/{_pct(c2m, 0.99):.3f}':>12} "
            f"{m2c_text:>12} {f'{n}/{len(m2c)}':>14}"
        )


if __name__ == "__main__":
    main()
