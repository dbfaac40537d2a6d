"""The load generator's table (rich), one row per run.

Columns: ``calls/core`` = seconds of calls streamed ÷ service CPU seconds (utime + stime from
/proc: the service process only); ``c→m``/``m→c`` = latency the service adds per direction
(frame arrival → our send done, its ``GET /stats``) p50/p99 ms; ``start→clear`` = model
``speech_started`` → ``clear`` sent, inside the service, p50/p99 ms; ``frames`` = caller frames
sent / agent frames received (all calls); ``µs/frame`` = service CPU per frame of either
direction — the work-normalised cost, comparable across rows whose calls did different
amounts of talking (calls per core is not); ``rss/call`` = (peak − idle service RSS) / N;
``redis/call-min`` = Redis commands per call-minute; ``errors`` = calls that raised, were
closed by the service or got invalid messages. ``lag`` = the worst caller-clock lag of the
softphones: large values mean the machine, not the service, was the bottleneck.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from service.loadtest.run import Outcome

__all__ = ["call_failure", "render"]


def call_failure(result: Any) -> str | None:
    s = result.summary
    if result.error is not None:
        return result.error
    if s is None:
        return "no summary"
    if s.closed_by != "softphone":
        return f"closed by {s.closed_by} ({s.close_code} {s.close_reason or ''})".strip()
    if s.invalid_messages:
        return f"invalid messages {dict(s.invalid_reasons)}"
    return None


def _pq(stats: dict[str, Any], key: str) -> str:
    series = stats.get("latency", {}).get(key, {})
    if not series.get("count"):
        return "-"
    return f"{series['p50']:.2f}/{series['p99']:.2f}"


def _pq_list(values: list[float]) -> str:
    if not values:
        return "-"
    v = sorted(values)
    return f"{v[len(v) // 2]:.0f}/{v[min(len(v) - 1, int(0.99 * len(v)))]:.0f}"


def render(outcomes: list[Outcome], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(
        title=f"loadtest ({os.cpu_count()} cores, shared with the model pool and the callers)"
    )
    for name in (
        "run", "mode", "N", "s", "calls/core", "c→m ms", "m→c ms", "start→clear ms",
        "e2e barge ms", "frames out/in", "µs/frame", "rss/call", "redis/call-min", "errors",
        "lag ms",
    ):  # fmt: skip
        table.add_column(name, justify="left" if name in ("run", "mode") else "right")
    notes: list[str] = []
    for o in outcomes:
        spec, tag = o.spec, o.spec.label or f"{o.spec.mode} N={o.spec.calls}"
        if o.error is not None and not o.results:
            table.add_row(tag, spec.mode, str(spec.calls), f"{spec.seconds:g}", "ERROR")
            notes.append(f"{tag}: {o.error}")
            continue
        failures: Counter[str] = Counter()
        sent = 0
        e2e: list[float] = []
        for r in o.results:
            if (why := call_failure(r)) is not None:
                failures[why] += 1
            if r.summary is not None:
                sent += r.summary.frames_sent
            e2e.extend(r.barge_to_clear_ms)
        received = sum(r.summary.frames_received for r in o.results if r.summary is not None)
        call_min = o.call_seconds / 60
        cpc = o.calls_per_core
        rss = (o.rss_peak - o.rss_idle) / 2**20 / spec.calls if o.rss_idle else None
        table.add_row(
            tag,
            spec.mode,
            str(spec.calls),
            f"{spec.seconds:g}",
            f"{cpc:.0f}" if cpc is not None else "n/a",
            _pq(o.stats, "caller_to_model_ms"),
            _pq(o.stats, "model_to_caller_ms"),
            _pq(o.stats, "barge_in_to_clear_ms"),
            _pq_list(e2e),
            f"{sent}/{received}",
            f"{o.svc_cpu_s / (sent + received) * 1e6:.0f}" if o.svc_cpu_s and sent else "n/a",
            f"{rss:.2f} MiB" if rss is not None else "n/a",
            f"{o.redis_ops / call_min:.0f}" if o.redis_ops is not None and call_min else "n/a",
            str(sum(failures.values())),
            f"{max(0.0, o.send_lag_ms):.0f}",
        )
        for why, count in failures.most_common(5):
            notes.append(f"{tag}: {count} calls failed: {why}")
        stalls = Counter(r.stall for r in o.results if r.stall)
        for step, count in stalls.most_common(3):
            notes.append(f"{tag}: {count} call scripts timed out waiting for: {step}")
        if o.error:
            notes.append(f"{tag}: {o.error}")
        notes.extend(f"{tag}: {n}" for n in o.notes)
        cpu = [
            f"service {o.svc_cpu_s:.1f} s" if o.svc_cpu_s is not None else "service n/a",
            f"model pool {o.model_cpu_s:.1f} s" if o.model_cpu_s is not None else "",
            f"callers {o.loadgen_cpu_s:.1f} s",
        ]
        notes.append(
            f"{tag}: CPU {', '.join(c for c in cpu if c)} over {o.wall_s:.1f} s wall, "
            f"{call_min:.1f} call-min; idle RSS {o.rss_idle / 2**20:.0f} MiB"
        )
    console.print(table)
    for line in notes:
        console.print("  " + line, highlight=False, markup=False)
