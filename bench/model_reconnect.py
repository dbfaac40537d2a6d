"""Bench: the gap a caller hears when the model session drops mid-answer (issue 17).

Run: ``.venv/bin/python bench/model_reconnect.py`` (defaults: ``--trials 20 --drop abort
--pace 1``).

One service (in this process, under uvicorn on 127.0.0.1, the embedded store) and the local
OpenAI-Realtime server (in this process). Each trial is one softphone call whose greeting is
cut by the model server after ``--drop-after-ms`` of its audio: ``abort`` aborts the TCP
connection (a network drop), ``close`` sends a 1011 close frame. The worker opens a fresh
session, replays the conversation and asks for the cut answer to be finished.

Columns:

* ``heard gap``  the silence the caller hears: time the phone's playback queue was dry between
  the first audio and the end of the finished answer (sampled every 5 ms), p50/p99 ms. With
  ``--pace 1`` nothing is queued ahead at the drop, so this is the whole gap; with a faster
  model (``--pace 4``) the queued audio hides some or all of it.
* ``worker gap`` the worker's own ``gap_ms`` (drop seen → fresh session ready, conversation
  replayed, held audio sent), from the ``model_reconnected`` event, p50/p99 ms.
* ``ok``         trials where the call carried on (a ``model_reconnected`` event and audio
  after it).

The local server answers at once and streams 4x faster than real time: against OpenAI the
heard gap adds their connect + ``session.updated`` time and the resumed answer's first-audio
latency (typically a few hundred ms each; ``--first-audio-ms`` emulates the latter). The
machine is shared: compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.calls.survival import RESUME_INSTRUCTIONS
from service.logging import configure_logging
from service.modelserver.script import ResponseRequest, Script, Turn
from service.modelserver.server import LocalRealtimeServer
from service.peers.twilio import Softphone
from service.serving import RunningService, free_port
from service.settings import Settings

AUTH_TOKEN = "bench-auth-token"


class CutGreeting(Script):
    def turn_for(self, request: ResponseRequest) -> Turn:
        if request.instructions == RESUME_INSTRUCTIONS:
            return Turn(text="as I was saying, welcome", duration_ms=RESUMED_MS)
        return super().turn_for(request)


RESUMED_MS = 1500


async def one_trial(service: RunningService, drop_after_ms: int) -> tuple[float | None, int | None]:
    """One call; returns (ms the caller heard nothing between the cut answer and its
    finish, the worker's gap_ms), None where the call did not carry on."""
    phone = Softphone(
        service.base_url,
        auth_token=AUTH_TOKEN,
        public_url=service.services.settings.public_url,
        seconds=15.0,
    )
    await phone.dial()
    await phone.connect()
    silent_ms = 0.0
    dry_at: float | None = None
    # Done once the cut answer and most of its finish were played.
    enough = drop_after_ms + RESUMED_MS - 100
    deadline = time.perf_counter() + 10
    while phone.playback.played_ms < enough and time.perf_counter() < deadline:
        now = time.perf_counter()
        if phone.playback.played_ms > 0 and phone.playback.buffered_ms == 0:
            dry_at = dry_at or now
        elif dry_at is not None:
            silent_ms += (now - dry_at) * 1000
            dry_at = None
        await asyncio.sleep(0.005)
    carried_on = phone.playback.played_ms >= enough
    phone.hangup()
    summary = await phone.finished()
    await service.services.writer.flush(timeout=5)
    events = await service.services.store.get_events(summary.call_sid)
    gaps = [int(e["gap_ms"]) for e in events if e["type"] == "model_reconnected"]
    return (silent_ms if carried_on else None), (gaps[0] if gaps else None)


def pq(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):.0f} / {p99:.0f}"


async def run(trials: int, drop: str, drop_after_ms: int, pace: float, first_audio_ms: int) -> int:
    configure_logging("console", "warning")
    script = CutGreeting(
        greeting=Turn(
            text="Hello and welcome to the order line, how can I help you today",
            duration_ms=3000,
            drop_after_ms=drop_after_ms,
            drop_close_code=None if drop == "abort" else 1011,
        ),
        pace=pace,
        first_audio_delay_ms=first_audio_ms,
    )
    model = LocalRealtimeServer(script)
    await model.start()
    port = free_port()
    settings = Settings(  # type: ignore[call-arg]
        public_url=f"http://127.0.0.1:{port}",
        twilio_auth_token=AUTH_TOKEN,
        realtime_backend="local",
        local_realtime_url=model.url,
    )
    heard: list[float] = []
    worker: list[float] = []
    ok = 0
    async with RunningService(settings, port) as service:
        for _ in range(trials):
            heard_gap, worker_gap = await one_trial(service, drop_after_ms)
            if heard_gap is not None and worker_gap is not None:
                ok += 1
                heard.append(heard_gap)
                worker.append(worker_gap)
    await model.stop()
    print(
        f"model reconnect: {trials} trials, drop={drop} after {drop_after_ms} ms of audio,"
        f" model streaming at {pace}x real time, first audio {first_audio_ms} ms after"
        " response.created"
    )
    print(f"{'heard gap ms p50/p99':>22} {'worker gap ms p50/p99':>22} {'ok':>6}")
    print(f"{pq(heard):>22} {pq(worker):>22} {ok:>3}/{trials}")
    return 0 if ok == trials else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--drop", choices=["abort", "close"], default="abort")
    parser.add_argument("--drop-after-ms", type=int, default=800)
    parser.add_argument(
        "--pace", type=float, default=1.0, help="model audio speed (1: nothing queued ahead)"
    )
    parser.add_argument(
        "--first-audio-ms", type=int, default=0, help="the model's response latency to emulate"
    )
    args = parser.parse_args()
    return asyncio.run(
        run(args.trials, args.drop, args.drop_after_ms, args.pace, args.first_audio_ms)
    )


if __name__ == "__main__":
    raise SystemExit(main())
