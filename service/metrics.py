"""Prometheus instruments, one registry per app instance (tests run several in a process).

Hot-path cost: a prometheus_client counter increment or histogram observation is a lock and
an add (~1 µs). The per-frame series (frames by direction, added latency: ~100 updates per
call-second) are instead plain integers and bucket counts kept on the event loop's thread
(``LoopCounter``, ``LoopHistogram``) and turned into the same Prometheus series at scrape
time: measured by ``python -m service loadtest``, the per-frame lock was several % of the
service's CPU.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

__all__ = ["REFUSAL_REASONS", "LoopCounter", "LoopHistogram", "Metrics"]

REFUSAL_REASONS = (
    "bad_signature",  # a webhook or stream upgrade not signed by the carrier
    "bad_token",  # a stream start whose token is malformed, forged, expired or another call's
    "replayed_token",  # a stream token used again after its call started (any replica)
    "duplicate_stream",  # a second stream for a call that has one on this process
    "protocol_violation",  # a bad frame inside a stream (the call carries on)
    "oversized_frame",  # a frame over MAX_FRAME_BYTES, or over the transport's limit
    "no_start",  # a stream that never sent its start message
    "full",  # a call refused at the voice webhook: MAX_CALLS reached
)

# Latency inside the service is sub-millisecond; the buckets resolve that and its tail.
_ADDED_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
# Latency at the caller's ear is seconds.
_EAR_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0)
_TOOL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class LoopCounter:
    """A counter updated only on the event loop's thread (no lock; see the module docstring)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class LoopHistogram:
    """Bucket counts updated only on the event loop's thread. Memory: one int per bucket."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        # Prometheus buckets are "le": a value equal to a bound belongs to that bucket.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        cumulative, out = 0, []
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            cumulative += count
            out.append((bound, cumulative))
        return out


class _LoopCollector(Collector):
    """The per-frame series, read at scrape time from their loop-thread counters."""

    def __init__(self, frames: dict[str, LoopCounter], latency: dict[str, LoopHistogram]) -> None:
        self._frames = frames
        self._latency = latency

    def collect(self) -> Iterable[Any]:
        frames = CounterMetricFamily(
            "voice_frames", "Media frames, by direction", labels=["direction"]
        )
        for direction, counter in self._frames.items():
            frames.add_metric([direction], counter.value)
        yield frames
        latency = HistogramMetricFamily(
            "voice_added_latency_seconds",
            "Time inside the service: frame arrival to our send done",
            labels=["direction"],
        )
        for direction, histogram in self._latency.items():
            latency.add_metric([direction], histogram.buckets(), histogram.total)
        yield latency


class _StoreCollector(Collector):
    """Reads the store writer's own counters at scrape time (no double bookkeeping)."""

    def __init__(self, stats: Callable[[], dict[str, Any]]) -> None:
        self._stats = stats

    def collect(self) -> Iterable[Any]:
        stats = self._stats()
        yield GaugeMetricFamily(
            "voice_store_pending", "Store writes waiting in memory", value=stats["pending"]
        )
        for name, key, doc in (
            ("voice_store_written", "written", "Store writes applied"),
            ("voice_store_retries", "retries", "Store write retries (Redis slow or down)"),
            ("voice_store_dropped", "dropped", "Store writes dropped (queue full)"),
            ("voice_store_failed", "failed", "Store writes rejected by Redis"),
        ):
            yield CounterMetricFamily(name, doc, value=stats[key])
        yield GaugeMetricFamily(
            "voice_store_redis_down",
            "1 while the writer cannot reach Redis",
            value=1 if stats["redis_down"] else 0,
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.active_calls = Gauge("voice_active_calls", "Calls in progress", registry=r)
        self.calls = Counter("voice_calls", "Calls ended, by outcome", ["outcome"], registry=r)
        # Per-frame series: see LoopCounter / LoopHistogram.
        self.frames_in = LoopCounter()
        self.frames_out = LoopCounter()
        self.caller_to_model = LoopHistogram(_ADDED_BUCKETS)
        self.model_to_caller = LoopHistogram(_ADDED_BUCKETS)
        r.register(
            _LoopCollector(
                {"in": self.frames_in, "out": self.frames_out},
                {
                    "caller_to_model": self.caller_to_model,
                    "model_to_caller": self.model_to_caller,
                },
            )
        )
        self.barge_ins = Counter("voice_barge_ins", "Caller talked over the agent", registry=r)
        self.truncations = Counter(
            "voice_truncations", "Assistant items truncated, by result", ["result"], registry=r
        )
        self.tool_calls = Counter(
            "voice_tool_calls", "Tool calls, by tool and outcome", ["name", "outcome"], registry=r
        )
        self.tool_latency = Histogram(
            "voice_tool_latency_seconds",
            "Tool run time",
            ["name"],
            buckets=_TOOL_BUCKETS,
            registry=r,
        )
        self.model_reconnects = Counter(
            "voice_model_reconnects", "Model sessions resumed mid-call", registry=r
        )
        self.model_errors = Counter(
            "voice_model_errors", "Model error events, by code", ["code"], registry=r
        )
        self.ear_latency = Histogram(
            "voice_ear_latency_seconds",
            "Caller stops talking (model VAD speech_stopped) to the reply's first audio "
            "played at the carrier (first mark echo)",
            buckets=_EAR_BUCKETS,
            registry=r,
        )
        self.ear_latency_service = Histogram(
            "voice_ear_latency_service_seconds",
            "The part of voice_ear_latency spent inside this service",
            buckets=_ADDED_BUCKETS,
            registry=r,
        )
        # Input we refused (the reasons are a fixed set: see REFUSAL_REASONS), and callers
        # that stopped reading (their calls are ended).
        self.refusals = Counter(
            "voice_refusals", "Input refused, by reason", ["reason"], registry=r
        )
        for reason in REFUSAL_REASONS:
            self.refusals.labels(reason)  # every reason shows, at 0, from the start
        self.stuck_callers = Counter(
            "voice_stuck_callers", "Calls ended because the caller stopped reading", registry=r
        )
        # OpenAI SIP calls (service/telephony/openai_calls/webhook.py).
        self.openai_webhooks = Counter(
            "voice_openai_webhooks",
            "OpenAI webhook deliveries, by outcome",
            ["outcome"],
            registry=r,
        )

    def watch_store(self, stats: Callable[[], dict[str, Any]]) -> None:
        self.registry.register(_StoreCollector(stats))

    def render(self) -> bytes:
        return generate_latest(self.registry)
