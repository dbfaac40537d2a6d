"""Live calls in this process, by CallSid.

Used to refuse a second stream for a call that already has one, to count active calls, and to
reach every live call when the process drains. Memory: one entry per live call.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class CallRegistry(Generic[T]):
    def __init__(self) -> None:
        self._calls: dict[str, T] = {}
        self._empty = asyncio.Event()
        self._empty.set()

    def add(self, call_sid: str, call: T) -> bool:
        """Register ``call``; ``False`` if the CallSid already has a live call here."""
        if call_sid in self._calls:
            return False
        self._calls[call_sid] = call
        self._empty.clear()
        return True

    def remove(self, call_sid: str, call: T) -> None:
        # Only the owner removes its entry, so a refused duplicate cannot evict the live call.
        if self._calls.get(call_sid) is call:
            del self._calls[call_sid]
            if not self._calls:
                self._empty.set()

    async def wait_empty(self, timeout: float) -> bool:  # noqa: ASYNC109 - a drain deadline
        """True once no call is live; False if some still are after ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def get(self, call_sid: str) -> T | None:
        return self._calls.get(call_sid)

    def __len__(self) -> int:
        return len(self._calls)

    def values(self) -> list[T]:
        return list(self._calls.values())
