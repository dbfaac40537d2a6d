"""Live calls in this process, by CallSid.

Used to refuse a second stream for a call that already has one, to count active calls, and to
reach every live call when the process drains. Memory: one entry per live call.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class CallRegistry(Generic[T]):
    def __init__(self) -> None:
        self._calls: dict[str, T] = {}

    def add(self, call_sid: str, call: T) -> bool:
        """Register ``call``; ``False`` if the CallSid already has a live call here."""
        if call_sid in self._calls:
            return False
        self._calls[call_sid] = call
        return True

    def remove(self, call_sid: str, call: T) -> None:
        # Only the owner removes its entry, so a refused duplicate cannot evict the live call.
        if self._calls.get(call_sid) is call:
            del self._calls[call_sid]

    def get(self, call_sid: str) -> T | None:
        return self._calls.get(call_sid)

    def __len__(self) -> int:
        return len(self._calls)

    def values(self) -> list[T]:
        return list(self._calls.values())
