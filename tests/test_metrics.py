"""The per-frame Prometheus series kept as loop-thread counters render like the real ones."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from service.metrics import LoopHistogram, Metrics


def test_loop_histogram_buckets_are_le_and_cumulative() -> None:
    h = LoopHistogram((0.001, 0.01))
    for value in (0.0005, 0.001, 0.002, 0.5):
        h.observe(value)
    assert h.buckets() == [("0.001", 2), ("0.01", 3), ("+Inf", 4)]
    assert h.total == 0.0005 + 0.001 + 0.002 + 0.5


def test_frames_and_added_latency_are_exposed_as_counter_and_histogram() -> None:
    metrics = Metrics()
    metrics.frames_in.inc()
    metrics.frames_in.inc()
    metrics.frames_out.inc()
    metrics.caller_to_model.observe(0.0002)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    frames = {s.labels["direction"]: s.value for s in families["voice_frames"].samples}
    assert frames == {"in": 2.0, "out": 1.0}
    assert families["voice_added_latency_seconds"].type == "histogram"
    samples = {
        (s.name, s.labels.get("direction"), s.labels.get("le")): s.value
        for s in families["voice_added_latency_seconds"].samples
    }
    assert samples[("voice_added_latency_seconds_bucket", "caller_to_model", "0.00025")] == 1
    assert samples[("voice_added_latency_seconds_bucket", "caller_to_model", "0.0001")] == 0
    assert samples[("voice_added_latency_seconds_count", "caller_to_model", None)] == 1
    assert samples[("voice_added_latency_seconds_count", "model_to_caller", None)] == 0
