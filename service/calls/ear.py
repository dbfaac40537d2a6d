"""Latency at the caller's ear, sans-I/O: from the end of the caller's speech (the model's VAD
``speech_stopped``) to the first audio of the reply actually played at the carrier (the echo of
the mark we placed after the reply's first chunk), plus the part of it spent inside the service.

No peer measures this end of the path; it is what a caller perceives as the agent's pause.
Memory: one pending measurement per call.
"""

from __future__ import annotations

__all__ = ["EarLatency"]


class EarLatency:
    def __init__(self) -> None:
        self._stopped_at: float | None = None
        self._mark: str | None = None
        self._service_s = 0.0

    def speech_stopped(self, now: float) -> None:
        """The caller stopped talking; the next reply chunk we send is the one to time."""
        self._stopped_at = now
        self._mark = None

    def chunk_sent(self, mark: str, service_s: float) -> None:
        if self._stopped_at is not None and self._mark is None:
            self._mark = mark
            self._service_s = service_s

    def mark_played(self, name: str, now: float) -> tuple[float, float] | None:
        """``(ear_seconds, service_seconds)`` once the timed chunk has been heard."""
        if self._mark is None or name != self._mark or self._stopped_at is None:
            return None
        elapsed = now - self._stopped_at
        self._stopped_at = self._mark = None
        return elapsed, self._service_s
