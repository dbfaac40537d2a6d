"""Callers the engine was not tuned on, through the whole spoken dialogue: Whisper hears
recorded μ-law clips of espeak-ng and Piper voices (the hearing corpus), the hotline brain
reads back and repairs, and the product's real tools run against Redis.

A representative subset keeps the suite fast: ten of the 36 callers, every voice at least
once and every speaking style, chosen in a fixed order (not by how well they do);
``bench/hearing_dialogue.py`` runs all of them.
"""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from service.agent.hotline import seed_orders
from service.agent.tools import ToolContext
from service.modelserver.engine.stt import WhisperTranscriber
from tests.modelserver.engine.corpus import Caller, callers
from tests.modelserver.engine.corpus.dialogue import Outcome, run_call

PREFIX = "dialogue:"
SUBSET = 10


def subset() -> list[Caller]:
    """Per voice (corpus order), the first caller who brings the most styles not yet
    covered; then, for the tenth, the first remaining caller of the first voice."""
    everyone, chosen, styles = callers(), [], set()
    for voice in dict.fromkeys(c.voice for c in everyone):
        own = [c for c in everyone if c.voice == voice]
        best = max(own, key=lambda c: len(_styles(c) - styles))  # first of the best
        chosen.append(best)
        styles |= _styles(best)
    chosen += [c for c in everyone if c not in chosen][: SUBSET - len(chosen)]
    return chosen


def _styles(caller: Caller) -> set[str]:
    return {caller.clips["order1"].style, caller.clips["zip1"].style}


@pytest.fixture(scope="module")
def stt() -> WhisperTranscriber:
    transcriber = WhisperTranscriber()
    transcriber.warm()
    return transcriber


async def calls(redis: aioredis.Redis, stt: WhisperTranscriber, noisy: bool) -> list[Outcome]:
    out = []
    for caller in subset():
        await redis.flushdb()
        await seed_orders(redis, PREFIX)
        ctx = ToolContext(call_sid="CAdialogue", redis=redis, key_prefix=PREFIX)
        out.append(await run_call(caller, noisy=noisy, stt=stt, ctx=ctx, keypad=KEYPAD))
    return out


KEYPAD = True


@pytest.mark.parametrize(("noisy", "share"), [(False, 0.9), (True, 0.8)])
async def test_lookups_succeed_within_two_tries_and_never_for_the_wrong_order(
    redis_client: aioredis.Redis, stt: WhisperTranscriber, noisy: bool, share: float
) -> None:
    outcomes = await calls(redis_client, stt, noisy)
    assert not [o for o in outcomes if o.wrong_order_read]
    succeeded = [o for o in outcomes if o.success]
    failures = [(o.caller.voice, o.end, o.heard) for o in outcomes if not o.success]
    assert len(succeeded) >= share * len(outcomes), failures
