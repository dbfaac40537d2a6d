"""Bench: every corpus caller through the whole spoken hotline dialogue (no sockets).

Run: ``.venv/bin/python bench/hearing_dialogue.py`` (10–15 minutes on 2 cores).

The 36 callers of ``tests/modelserver/engine/corpus`` (9 voices × 4 fixture orders), clean and with
15 dB noise, call the hotline brain; Whisper hears their clips slot-aware, as the engine
does; the real ``verify_caller``/``lookup_order`` run on an in-process Redis (fakeredis)
seeded with the fixture. Two caller models (see ``tests/modelserver/engine/corpus/dialogue.py``):

* ``speech``: retries by voice only (digit by digit, with commas);
* ``keypad``: when offered the keypad after a miss, types the number.

Printed: lookups that succeeded within two tries per number, wrong orders read out (must be
0), ZIP mismatches counted against the caller's own order (lockout attempts burned) and
against other orders, and turns per call. Benchmarks print; they never pass or fail.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import fakeredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.agent.hotline import seed_orders
from service.agent.hotline.orders import failures_key
from service.agent.tools import ToolContext
from service.modelserver.engine.stt import WhisperTranscriber
from tests.modelserver.engine.corpus import callers
from tests.modelserver.engine.corpus.dialogue import Outcome, run_call

PREFIX = "bench:"


async def one(caller: object, noisy: bool, keypad: bool, stt: WhisperTranscriber) -> tuple:
    redis = fakeredis.FakeAsyncRedis(decode_responses=True)
    await seed_orders(redis, PREFIX)
    ctx = ToolContext(call_sid="CAbench", redis=redis, key_prefix=PREFIX)
    outcome = await run_call(caller, noisy=noisy, stt=stt, ctx=ctx, keypad=keypad)  # type: ignore[arg-type]
    own = int(await redis.get(failures_key(PREFIX, outcome.caller.order)) or 0)
    other = 0
    async for key in redis.scan_iter(f"{PREFIX}order:*:verify_failures"):
        if key != failures_key(PREFIX, outcome.caller.order):
            other += int(await redis.get(key) or 0)
    return outcome, own, other


async def main() -> None:
    stt = WhisperTranscriber()
    stt.warm()
    everyone = callers()
    rows: dict[tuple[str, bool], list[tuple[Outcome, int, int]]] = defaultdict(list)
    started = time.perf_counter()
    for keypad in (False, True):
        for noisy in (False, True):
            for caller in everyone:
                rows[("keypad" if keypad else "speech", noisy)].append(
                    await one(caller, noisy, keypad, stt)
                )
    print(f"{len(everyone)} callers × clean/noisy × 2 caller models in ", end="")
    print(f"{time.perf_counter() - started:.0f} s\n")
    print("## Whole spoken dialogue: lookup within two tries per number\n")
    print(
        "| caller model | audio | espeak (24) | piper (4) | piper-varied (8) | all (36) "
        "| wrong order read | ZIP misses counted (own / other orders) | turns median (max) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (model, noisy), results in rows.items():
        cells = []
        for group in ("espeak", "piper", "piper-varied", None):
            members = [r for r in results if group is None or r[0].caller.group == group]
            hits = sum(r[0].success for r in members)
            cells.append(f"{100 * hits / len(members):.0f}% ({hits}/{len(members)})")
        wrong = sum(r[0].wrong_order_read for r in results)
        own, other = sum(r[1] for r in results), sum(r[2] for r in results)
        turns = [r[0].turns for r in results]
        print(
            f"| {model} | {'noisy' if noisy else 'clean'} | "
            + " | ".join(cells)
            + f" | {wrong} | {own} / {other} | {statistics.median(turns):.0f} ({max(turns)}) |"
        )
    print("\n## Calls that did not end in the caller's order\n")
    for (model, noisy), results in rows.items():
        for outcome, _, _ in results:
            if not outcome.success:
                c = outcome.caller
                print(
                    f"- {model} {'noisy' if noisy else 'clean'} {c.voice} order {c.order} "
                    f"zip {c.zip}: {outcome.end}; heard {outcome.heard}"
                )


if __name__ == "__main__":
    asyncio.run(main())
