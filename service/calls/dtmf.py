"""Keypad digits gathered into one message: sent at ``#`` or after a pause.

Callers type an order number digit by digit; the model should get "4 2 1 7 #" once, not four
separate turns. Memory: the digits of one entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["DtmfCollector"]


class DtmfCollector:
    def __init__(self, pause_s: float, deliver: Callable[[list[str]], Awaitable[None]]) -> None:
        self.pause_s = pause_s
        self.deliver = deliver
        self.digits: list[str] = []
        self._timer: asyncio.Task[None] | None = None

    async def add(self, digit: str) -> None:
        self.digits.append(digit)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if digit == "#":
            await self._flush()
        else:
            self._timer = asyncio.create_task(self._after_pause())

    async def _after_pause(self) -> None:
        await asyncio.sleep(self.pause_s)
        self._timer = None
        await self._flush()

    async def _flush(self) -> None:
        digits, self.digits = self.digits, []
        if digits:
            await self.deliver(digits)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
