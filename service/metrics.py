"""Prometheus instruments, one registry per app instance (tests run several in a process).

Hot-path cost: a counter increment or histogram observation is a lock and an add (~1 µs);
per call that is ~100 a second at most, well under the audio work itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["REFUSAL_REASONS", "Metrics"]

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
        self.frames = Counter(
            "voice_frames", "Media frames, by direction", ["direction"], registry=r
        )
        self.added_latency = Histogram(
            "voice_added_latency_seconds",
            "Time inside the service: frame arrival to our send done",
            ["direction"],
            buckets=_ADDED_BUCKETS,
            registry=r,
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
        self.frames_in = self.frames.labels("in")
        self.frames_out = self.frames.labels("out")
        self.caller_to_model = self.added_latency.labels("caller_to_model")
        self.model_to_caller = self.added_latency.labels("model_to_caller")

    def watch_store(self, stats: Callable[[], dict[str, Any]]) -> None:
        self.registry.register(_StoreCollector(stats))

    def render(self) -> bytes:
        return generate_latest(self.registry)
