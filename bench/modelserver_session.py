"""Bench: CPU cost of the model server's sans-I/O session (no sockets, no engine).

Run: ``.venv/bin/python bench/modelserver_session.py`` (a few seconds).

What it measures, on a simulated clock, in this process:

* ``append``   one ``input_audio_buffer.append`` of a 20 ms μ-law frame (a caller's media
  frame): base64 decode, μ-law → PCM16, the energy VAD, the input clock. 3,000 frames
  (60 s) per run: silence, then speech turns that the VAD commits and answers.
* ``response`` one scripted 10 s reply streamed as fast as the clock allows (``pace``
  None, 100 ms deltas, 24 kHz PCM): from ``response.create`` to ``response.done``, per event
  emitted. The voice yields silence, so the figure is the session's work, not synthesis.

Each figure is the per-call CPU time (``process_time``, so other processes on a shared
machine disturb it less) of one run; the table shows p50/p99 over the runs. The session's
events are not validated here (the tests do that), so this is the server's own cost, which
a call pays once per 20 ms frame.
"""

from __future__ import annotations

import base64
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.audio.g711 import pcm16_to_ulaw
from service.audio.synthetic import SyntheticVoice
from service.modelserver.script import Script, Turn
from service.modelserver.session import RealtimeSession

RUNS = 30
FRAMES = 3000  # 60 s of 20 ms frames
PCMU = {"type": "audio/pcmu"}


class Silence:
    """A :class:`~service.audio.synthetic.Voice` that costs nothing: ``ms`` of zeros."""

    def synthesize(self, text: str, ms: int, rate: int) -> Iterator[bytes]:
        yield bytes(rate * ms // 1000 * 2)


def frames() -> list[str]:
    """60 s of caller audio at 8 kHz: 2 s turns of speech between 3 s of silence."""
    speech = b"".join(SyntheticVoice(seed=7, level_dbfs=-16).synthesize("words", 2000, 8000))
    pcm = (bytes(8 * 3000 * 2) + speech) * 12
    step = 8 * 20 * 2
    return [
        base64.b64encode(pcm16_to_ulaw(pcm[i : i + step])).decode()
        for i in range(0, FRAMES * step, step)
    ]


def appends(audio: list[str]) -> float:
    """Seconds per append over one 60 s run."""
    reply = Turn(text="Okay.", duration_ms=500)
    script = Script(pace=None, greeting=reply, default_reply=reply, voice=Silence())
    session = RealtimeSession(script)
    session.open(0.0)
    update = {"type": "realtime", "audio": {"input": {"format": PCMU}, "output": {"format": PCMU}}}
    session.receive({"type": "session.update", "session": update}, 0.0)
    now, spent = 0.0, 0.0
    for frame in audio:
        event = {"type": "input_audio_buffer.append", "audio": frame}
        start = time.process_time()
        session.receive(event, now)
        session.tick(now)
        spent += time.process_time() - start
        now += 0.02
    return spent / len(audio)


def response() -> float:
    """Seconds per emitted event of one 10 s scripted reply."""
    turn = Turn(text="word " * 30, duration_ms=10_000)
    session = RealtimeSession(Script(pace=None, greeting=turn, voice=Silence()))
    session.open(0.0)
    start = time.process_time()
    events = session.receive({"type": "response.create"}, 0.0)
    while session.response is not None:
        events += session.tick(0.0)
    return (time.process_time() - start) / len(events)


def main() -> int:
    audio = frames()
    append_s = [appends(audio) for _ in range(RUNS)]
    response_s = [response() for _ in range(RUNS)]

    def row(name: str, values: list[float]) -> str:
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        return f"| {name} | {statistics.median(values) * 1e6:.1f} µs | {p99 * 1e6:.1f} µs |"

    print(f"model server session, {RUNS} runs")
    print("| per | p50 | p99 |\n|---|---|---|")
    print(row("append (20 ms μ-law, VAD on)", append_s))
    print(row("response event (scripted, 100 ms audio)", response_s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
