"""The load generator's model: the local OpenAI Realtime server, scripted for worst-case load.

Every response streams 20 ms audio deltas paced at real time (what a cloud model does at its
slowest and the bridge at its busiest): a 1.5 s greeting, then replies as long as the call, so
the model talks for almost the whole call and each barge-in cuts a reply short.
Run as ``python -m service.loadtest.model --port P``: several such processes share the port
(SO_REUSEPORT) so the model is never the bottleneck; the kernel spreads connections over them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Iterator

from service.audio.synthetic import SyntheticVoice
from service.modelserver.script import Script, Turn
from service.modelserver.server import LocalRealtimeServer

__all__ = ["LoopedVoice", "worst_case_script"]

DELTA_MS = 20  # one Twilio frame's worth per delta: the most messages per second of audio
LOOP_MS = 3000


class LoopedVoice:
    """Speech-like audio synthesized once per rate (``LOOP_MS``) and replayed in a loop.

    Synthesizing costs ~4 ms of CPU per 20 ms of audio: at a few dozen calls that alone would
    make the model the bottleneck. Replaying costs a slice. Memory: one loop per rate."""

    def __init__(self) -> None:
        self._voice = SyntheticVoice(seed=3)
        self._loops: dict[int, bytes] = {}

    def synthesize(self, text: str, duration_ms: int, rate: int) -> Iterator[bytes]:
        loop = self._loops.get(rate)
        if loop is None:
            loop = self._loops[rate] = b"".join(self._voice.synthesize(text, LOOP_MS, rate))
        remaining = rate * max(0, duration_ms) // 1000 * 2
        step = rate * DELTA_MS // 1000 * 2
        at = 0
        while remaining > 0:
            size = min(step, remaining, len(loop) - at)
            yield loop[at : at + size]
            remaining -= size
            at = (at + size) % len(loop)


def worst_case_script(reply_ms: int = 600_000) -> Script:
    return Script(
        voice=LoopedVoice(),
        greeting=Turn(text="Hello! Thanks for calling.", duration_ms=1500),
        default_reply=Turn(text="Let me tell you all about it.", duration_ms=reply_ms),
        chunk_ms=DELTA_MS,
        pace=1.0,
    )


async def _serve(host: str, port: int) -> None:
    # strict=False: checking every outgoing event against the SDK's union costs CPU per delta.
    server = LocalRealtimeServer(worst_case_script(), strict=False)
    await server.start(host, port, reuse_port=True)
    print(f"loadtest model listening on {server.url}", flush=True)
    try:
        await asyncio.Future()  # until cancelled
    finally:
        await server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
