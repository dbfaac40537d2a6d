"""Bench: false barge-ins per minute of speakerphone echo, with and without the echo gate.

Run: ``.venv/bin/python bench/echo_gate.py`` (defaults: ``--minutes 1 --echo-db -15``).

The worker's own barge-in ear (the Gemini path: ``EnergyVad`` over caller audio while a
fully sent reply plays) listens to a line that carries the agent's synthetic voice back at
``--echo-db`` after each delay. ``false/min`` counts the VAD's speech starts per minute of echo
(after each start the VAD is reset, as the worker does after a barge-in). ``interrupt ms``: a
real caller (another synthetic voice at the agent's level) starts talking over the echo every
4 s; the time until the gated VAD hears them, p50/max over the minute. ``gate µs/frame``:
CPU time of ``EchoGate.is_echo`` per 20 ms caller frame.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from service.audio.synthetic import SyntheticVoice
from service.audio.vad import EnergyVad, VoiceStarted
from service.calls.echo import EchoGate

RATE = 8000
FRAME = 160
SEGMENT_MS = 4000
INTERRUPT_AT_MS = 2000


def line(delay_ms: int, echo_db: float, seed: int, interrupt: bool) -> tuple[bytes, bytes]:
    """(agent μ-law as sent, caller line μ-law) for one 4 s segment."""
    agent = np.frombuffer(
        b"".join(SyntheticVoice(seed=seed, level_dbfs=-16).synthesize("agent", SEGMENT_MS, RATE)),
        dtype=np.int16,
    ).astype(np.float64)
    heard = np.zeros_like(agent)
    delay = delay_ms * RATE // 1000
    heard[delay:] += agent[: len(agent) - delay] * 10 ** (echo_db / 20)
    if interrupt:
        start = INTERRUPT_AT_MS * RATE // 1000
        voice = SyntheticVoice(seed=seed + 1000, level_dbfs=-16).synthesize(
            "caller", SEGMENT_MS - INTERRUPT_AT_MS, RATE
        )
        heard[start:] += np.frombuffer(b"".join(voice), dtype=np.int16)[: len(heard) - start]
    to_ulaw = lambda a: pcm16_to_ulaw(np.clip(a, -32768, 32767).astype(np.int16).tobytes())  # noqa: E731
    return to_ulaw(agent), to_ulaw(heard)


def run_segment(agent: bytes, heard: bytes, *, gate: bool, timing: list[float]) -> list[int]:
    echo_gate = EchoGate()
    echo_gate.agent_audio(agent)
    vad = EnergyVad(RATE)
    starts: list[int] = []
    for index in range(0, len(heard) - FRAME + 1, FRAME):
        frame = heard[index : index + FRAME]
        now_ms = (index + FRAME) // 8
        pcm = ulaw_to_pcm16(frame)
        if gate:
            began = time.perf_counter()
            echo = echo_gate.is_echo(frame, now_ms)
            timing.append(time.perf_counter() - began)
            if echo:
                pcm = bytes(len(pcm))
        if any(isinstance(e, VoiceStarted) for e in vad.process(pcm)):
            starts.append(now_ms)
            vad.reset()
    return starts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--echo-db", type=float, default=-15.0)
    args = parser.parse_args()
    segments = max(1, round(args.minutes * 60_000 / SEGMENT_MS))
    minutes = segments * SEGMENT_MS / 60_000
    print(f"echo at {args.echo_db} dB, {minutes:.1f} min of echo per row")
    print(
        f"{'delay ms':>8} {'false/min off':>14} {'false/min gate':>15} {'interrupt ms p50/max':>21}"
        f" {'missed':>7} {'gate µs/frame':>14}"
    )
    for delay_ms in (40, 80, 120, 200):
        timing: list[float] = []
        false_off = false_on = missed = 0
        latencies: list[int] = []
        for seed in range(segments):
            agent, heard = line(delay_ms, args.echo_db, seed, interrupt=False)
            false_off += len(run_segment(agent, heard, gate=False, timing=[]))
            false_on += len(run_segment(agent, heard, gate=True, timing=timing))
            agent, heard = line(delay_ms, args.echo_db, seed, interrupt=True)
            starts = [
                s for s in run_segment(agent, heard, gate=True, timing=[]) if s >= INTERRUPT_AT_MS
            ]
            if starts:
                latencies.append(starts[0] - INTERRUPT_AT_MS)
            else:
                missed += 1
        interrupt = f"{statistics.median(latencies):.0f} / {max(latencies)}" if latencies else "-"
        print(
            f"{delay_ms:>8} {false_off / minutes:>14.1f} {false_on / minutes:>15.1f}"
            f" {interrupt:>21} {missed:>7} {statistics.mean(timing) * 1e6:>14.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
