"""Polling helper for conditions that become true asynchronously (bounded in time)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable


async def eventually(check: Callable[[], object], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.02)
