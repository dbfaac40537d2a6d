"""Latency samples added inside the service, per process, for benchmarks and /stats.

Each series keeps the newest ``capacity`` samples in a ring buffer (8 bytes each: 100 000
samples ≈ 800 KB per series), so memory is fixed however many calls pass through.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.metrics import Metrics

__all__ = ["LatencySeries", "ServiceTimings"]


class LatencySeries:
    """Exact recent percentiles for /stats and the benches; ``observe`` also feeds a
    Prometheus histogram (bucketed, for alerting) when given."""

    def __init__(
        self, capacity: int = 100_000, observe: Callable[[float], None] | None = None
    ) -> None:
        self._values = array("d", bytes(8 * capacity))
        self._capacity = capacity
        self._observe = observe
        self.count = 0

    def add(self, seconds: float) -> None:
        self._values[self.count % self._capacity] = seconds
        self.count += 1
        if self._observe is not None:
            self._observe(seconds)

    def snapshot(self) -> list[float]:
        return sorted(self._values[: min(self.count, self._capacity)])

    def summary_ms(self) -> dict[str, float | int]:
        values = self.snapshot()
        if not values:
            return {"count": 0}

        def pick(q: float) -> float:
            return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 3)

        return {"count": self.count, "p50": pick(0.50), "p99": pick(0.99), "max": pick(1.0)}


class ServiceTimings:
    """Where time goes inside the service (from a frame's arrival to our send completing)."""

    def __init__(self, capacity: int = 100_000, metrics: Metrics | None = None) -> None:
        self.caller_to_model = LatencySeries(
            capacity, metrics.caller_to_model.observe if metrics else None
        )
        self.model_to_caller = LatencySeries(
            capacity, metrics.model_to_caller.observe if metrics else None
        )
        self.barge_in_to_clear = LatencySeries(capacity)

    def summary(self) -> dict[str, dict[str, float | int]]:
        return {
            "caller_to_model_ms": self.caller_to_model.summary_ms(),
            "model_to_caller_ms": self.model_to_caller.summary_ms(),
            "barge_in_to_clear_ms": self.barge_in_to_clear.summary_ms(),
        }
