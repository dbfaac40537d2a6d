"""One simulated Twilio call of the load generator: the softphone plus a caller's script.

The script: wait for the greeting, ask a question (~1.2 s), let the agent answer, talk over
the answer (a barge-in, ~0.8 s), then — with ``barge_every_s`` — barge in again at that
interval until the call's ``seconds`` are up. The softphone (``service.peers.twilio``) sends a
20 ms frame every 20 ms of real time (silence between the caller's words), plays what it
receives in real time and echoes each mark when playback reaches it (protocols.md A.3).

Memory: a ``CallResult`` holds one float per barge-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from service.audio.synthetic import SyntheticVoice
from service.peers.twilio import CallSummary, Softphone

__all__ = ["CALL_MARGIN_S", "CallResult", "one_call"]

CALL_MARGIN_S = 40.0  # hard cap on one call beyond its seconds (webhook, connect, teardown)

_CALLER = SyntheticVoice(seed=7, level_dbfs=-16.0)  # the demo caller's voice
QUESTION = b"".join(_CALLER.synthesize("Hi, where is my order?", 1200, 8000))
BARGE_IN = b"".join(_CALLER.synthesize("Wait, which carrier?", 800, 8000))


@dataclass
class CallResult:
    summary: CallSummary | None = None
    error: str | None = None
    stall: str | None = None  # the scripted step that timed out, if any
    stream_s: float = 0.0  # seconds of caller audio streamed (frames sent × 20 ms)
    setup_s: float | None = None  # webhook + WS upgrade + connected/start
    # Caller timeline (s since stream start): the first sample of each barge-in's speech …
    barge_at_s: list[float] = field(default_factory=list)
    # … and, per barge-in, the first `clear` received after it (NOT service-internal: it
    # includes the model's speech detection), ms.
    barge_to_clear_ms: list[float] = field(default_factory=list)

    def on_clear(self, elapsed_s: float) -> None:
        if len(self.barge_to_clear_ms) < len(self.barge_at_s):
            self.barge_to_clear_ms.append((elapsed_s - self.barge_at_s[-1]) * 1000)


async def _barge_in(phone: Softphone, result: CallResult) -> None:
    # The queued speech goes out in the next frame, which carries audio from
    # 20 ms × frames_sent on the caller's timeline.
    result.barge_at_s.append(phone.frames_sent * 0.02)
    phone.speak(BARGE_IN, sample_rate=8000)


async def scripted_call(
    phone: Softphone, result: CallResult, seconds: float, barge_every_s: float | None
) -> None:
    step = "greeting"
    try:
        await phone.wait_for_agent_audio(500, timeout=8)
        step = "greeting played"
        await phone.wait_for(lambda p: p.playback.buffered_ms == 0, timeout=8)
        await asyncio.sleep(0.3)
        # (Frames sent do not wake wait_for, so wait out the question's length instead.)
        await asyncio.sleep(phone.speak(QUESTION, sample_rate=8000) / 1000)
        before = phone.playback.played_ms
        step = "answer playing"
        await phone.wait_for(lambda p: p.playback.played_ms > before + 1000, timeout=8)
        await _barge_in(phone, result)
        if barge_every_s is None:
            return
        # Bounded: one barge-in per interval until the call's end.
        for _ in range(int(seconds / barge_every_s) + 1):
            await asyncio.sleep(barge_every_s)
            if phone.elapsed + 1.0 > seconds:
                return
            await _barge_in(phone, result)
    except TimeoutError:
        result.stall = step


async def one_call(
    delay: float,
    base_url: str,
    token: str,
    seconds: float,
    client: httpx.AsyncClient,
    phones: list[Softphone],
    *,
    public_url: str | None = None,
    barge_every_s: float | None = None,
) -> CallResult:
    """Start after ``delay`` s, place the call, run the script; never raises."""
    await asyncio.sleep(delay)
    result = CallResult()

    async def on_message(msg: dict[str, Any]) -> None:
        if msg.get("event") == "clear":
            result.on_clear(phone.elapsed)

    phone = Softphone(
        base_url,
        auth_token=token,
        public_url=public_url or base_url,
        seconds=seconds,
        http_client=client,
        http_timeout=20.0,
        connect_timeout=20.0,
        on_server_message=on_message,
    )
    phones.append(phone)
    try:
        async with asyncio.timeout(seconds + CALL_MARGIN_S):
            t0 = time.monotonic()
            await phone.dial()
            await phone.connect()
            result.setup_s = time.monotonic() - t0
            await scripted_call(phone, result, seconds, barge_every_s)
            result.summary = await phone.finished()
    except Exception as exc:  # any failure is a data point, not a crash of the run
        result.error = type(exc).__name__ + (f": {str(exc)[:80]}" if str(exc) else "")
        if phone.plan is not None:
            phone.hangup()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    result.summary = await phone.finished()
    result.stream_s = phone.frames_sent * 0.02
    return result
