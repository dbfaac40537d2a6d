"""One 20 ms media clock for every SIP call of the process.

Each tick puts one packet on the wire for every running call (``SipCall.tick``): one timer
wake-up per 20 ms for the process instead of one per call. The grid is absolute (tick k is
due at start + k·20 ms on the monotonic clock), so sleeping late never makes the rate drift:
a late tick runs at once and the next is still due on the grid. Past ``RESYNC_SECONDS``
behind (the host stalled), the grid restarts rather than sending a burst.

Memory: the newest ``LATENESS_SAMPLES`` tick lateness values (8 bytes each, 800 KB).
"""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Callable
from typing import Protocol

import structlog

__all__ = ["MediaClock"]

FRAME_SECONDS = 0.020
RESYNC_SECONDS = 0.2
LATENESS_SAMPLES = 100_000

log = structlog.get_logger(__name__)


class Ticking(Protocol):
    def tick(self, now: float) -> None: ...


class MediaClock:
    def __init__(self, on_failure: Callable[[Ticking], None]) -> None:
        self._calls: dict[int, Ticking] = {}
        self._on_failure = on_failure
        self._task: asyncio.Task[None] | None = None
        self.lateness = array("d", bytes(8 * LATENESS_SAMPLES))
        self.ticks = 0

    def add(self, call: Ticking) -> None:
        self._calls[id(call)] = call
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    def remove(self, call: Ticking) -> None:
        self._calls.pop(id(call), None)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += FRAME_SECONDS
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -RESYNC_SECONDS:
                due = loop.time()
            now = loop.time()
            self.lateness[self.ticks % LATENESS_SAMPLES] = now - due
            self.ticks += 1
            for call in list(self._calls.values()):
                try:
                    call.tick(now)
                except Exception:
                    # One call's fault ends that call, never the clock of the others.
                    log.exception("SIP media tick failed")
                    self.remove(call)
                    self._on_failure(call)

    def summary_ms(self) -> dict[str, float | int]:
        count = min(self.ticks, LATENESS_SAMPLES)
        values = sorted(self.lateness[:count])
        if not values:
            return {"ticks": 0}
        summary: dict[str, float | int] = {"ticks": self.ticks}
        for name, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
            summary[f"rtp_send_late_{name}_ms"] = round(
                values[min(count - 1, int(q * count))] * 1000, 3
            )
        return summary
