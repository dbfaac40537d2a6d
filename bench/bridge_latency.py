"""Bench: latency, CPU and memory the service adds while bridging N concurrent calls.

Run: ``.venv/bin/python bench/bridge_latency.py`` (defaults: ``--loads 10,50,200
--modes transcode,passthrough --seconds 12``; about 25 s per row).

For every (AUDIO_MODE, N) a fresh local realtime server (``python -m service realtime-server``)
and a fresh service (``python -m service serve``) are started as separate processes on free
loopback ports, so the service's cumulative ``/stats`` samples belong to that row only. Then N
softphones (one asyncio loop in this process, one shared ``httpx.AsyncClient``, starts ramped
over ~2 s) each place one Twilio-like call of ``--seconds``: wait for the greeting, speak ~1.2 s,
let the agent answer, talk over the answer with ~0.8 s (a barge-in), hang up at the end.
Both processes are then stopped (service: SIGTERM; model server: SIGINT, its Ctrl-C path;
SIGKILL after a grace period).

Columns (latency = inside the service only, frame arrival → our send completed, from /stats):

* ``c→m``     caller frame → sent to the model, p50/p99 ms.
* ``m→c``     model audio delta → sent to the caller, p50/p99 ms.
* ``barge``   model ``speech_started`` → ``clear`` sent to the caller, p50/p99 ms.
* ``svc cpu`` service process CPU seconds (utime+stime, /proc) per call-minute of streaming.
* ``rss/call`` (peak − idle service VmRSS, sampled every 0.5 s) / N, MB.
* ``fail``    calls that raised, were closed by the server, or got invalid messages.
* ``barge-ins`` clears received by the softphones (calls that got ≥ 1).
* ``bench cpu`` / ``model cpu``  the same CPU measure for this load-generator process
  (getrusage) and for the local model server: all three share the machine's cores.
* ``lag``     the worst softphone send lag seen (how far a phone's 20 ms caller-frame clock
  fell behind real time, sampled every 0.5 s) / the worst event-loop wake-up lateness of this
  process, ms. Large values mean the machine, not the service, was the bottleneck.

The machine is shared and noisy: compare rows within one run, not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _procs

from service.demo import CALLER_VOICE
from service.logging import configure_logging
from service.peers.twilio import CallSummary, Softphone

RAMP_S = 2.0
SAMPLE_S = 0.5
LOOP_TICK_S = 0.02
CALL_MARGIN_S = 40.0  # hard cap on one call beyond --seconds (webhook, connect, teardown)
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"

QUESTION = b"".join(CALLER_VOICE.synthesize("Hi, where is my order?", 1200, 8000))
BARGE_IN = b"".join(CALLER_VOICE.synthesize("Wait, which carrier?", 800, 8000))


# ---------------------------------------------------------------------------- one call
@dataclass
class CallResult:
    summary: CallSummary | None = None
    error: str | None = None
    stall: str | None = None  # the scripted step that timed out, if any
    stream_s: float = 0.0  # seconds of caller audio streamed (frames sent × 20 ms)
    setup_s: float | None = None  # webhook + WS upgrade + connected/start
    barge_at_s: float | None = None  # caller timeline: first sample of the barge-in speech
    barge_to_clear_ms: float | None = None  # → the first `clear` received after it


async def scripted_call(phone: Softphone, result: CallResult) -> None:
    """Greeting → question (~1.2 s) → agent answers → barge-in (~0.8 s) → hang up at the end."""
    step = "greeting"
    try:
        await phone.wait_for_agent_audio(500, timeout=8)
        step = "greeting played"
        await phone.wait_for(lambda p: p.playback.buffered_ms == 0, timeout=8)
        await asyncio.sleep(0.3)
        # (Frames sent do not wake wait_for, so wait out the question's length instead.)
        await asyncio.sleep(phone.speak(QUESTION, sample_rate=8000) / 1000)
        before = phone.playback.played_ms
        step = "answer playing"
        await phone.wait_for(lambda p: p.playback.played_ms > before + 1000, timeout=8)
        # The queued speech goes out in the next frame, which carries audio from
        # 20 ms × frames_sent on the caller's timeline.
        result.barge_at_s = phone.frames_sent * 0.02
        phone.speak(BARGE_IN, sample_rate=8000)
    except TimeoutError:
        result.stall = step


async def one_call(
    delay: float,
    base_url: str,
    token: str,
    seconds: float,
    client: httpx.AsyncClient,
    phones: list[Softphone],
) -> CallResult:
    await asyncio.sleep(delay)
    result = CallResult()

    async def on_message(msg: dict[str, Any]) -> None:
        if (
            msg.get("event") == "clear"
            and result.barge_at_s is not None
            and result.barge_to_clear_ms is None
        ):
            result.barge_to_clear_ms = (phone.elapsed - result.barge_at_s) * 1000

    phone = Softphone(
        base_url,
        auth_token=token,
        public_url=base_url,
        seconds=seconds,
        http_client=client,
        http_timeout=20.0,
        connect_timeout=20.0,
        on_server_message=on_message,
    )
    phones.append(phone)
    try:
        async with asyncio.timeout(seconds + CALL_MARGIN_S):
            t0 = time.monotonic()
            await phone.dial()
            await phone.connect()
            result.setup_s = time.monotonic() - t0
            await scripted_call(phone, result)
            result.summary = await phone.finished()
    except Exception as exc:  # any failure is a data point, not a crash of the bench
        result.error = type(exc).__name__ + (f": {str(exc)[:80]}" if str(exc) else "")
        if phone.plan is not None:
            phone.hangup()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    result.summary = await phone.finished()
    result.stream_s = phone.frames_sent * 0.02
    return result


# ---------------------------------------------------------------------------- samplers
@dataclass
class Samples:
    rss_peak: int = 0
    send_lag_ms: float = 0.0
    loop_late_ms: list[float] = field(default_factory=list)


async def sample_rss_and_lag(
    pid: int,
    phones: list[Softphone],
    samples: Samples,
    stop: asyncio.Event,
    limit_s: float,
    n_frames: int,
) -> None:
    for _ in range(int(limit_s / SAMPLE_S) + 1):  # bounded even if `stop` never comes
        samples.rss_peak = max(samples.rss_peak, _procs.rss_bytes(pid))
        for p in phones:
            # Only while the send loop runs (hang-up and close come after the last frame).
            if p.closed_by is None and p.elapsed > 0 and p.frames_sent < n_frames:
                # The next frame is due at 20 ms × (frames_sent + 1) after stream start.
                lag = p.elapsed * 1000 - 20 * (p.frames_sent + 1)
                samples.send_lag_ms = max(samples.send_lag_ms, lag)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SAMPLE_S):
                await stop.wait()
        if stop.is_set():
            return


async def sample_loop_lateness(samples: Samples, stop: asyncio.Event, limit_s: float) -> None:
    loop = asyncio.get_running_loop()
    for _ in range(int(limit_s / LOOP_TICK_S) + 1):
        if stop.is_set():
            return
        due = loop.time() + LOOP_TICK_S
        await asyncio.sleep(LOOP_TICK_S)
        samples.loop_late_ms.append(max(0.0, (loop.time() - due) * 1000))


# ---------------------------------------------------------------------------- one row
@dataclass
class Row:
    mode: str
    n: int
    stats: dict[str, Any] = field(default_factory=dict)
    svc_cpu: float = 0.0  # s per call-minute
    bench_cpu: float = 0.0
    model_cpu: float = 0.0
    rss_per_call_mb: float = 0.0
    rss_idle_mb: float = 0.0
    failed: int = 0
    clears: int = 0
    calls_cleared: int = 0
    send_lag_ms: float = 0.0
    frames_sent: int = 0
    setup_ms: list[float] = field(default_factory=list)
    e2e_barge_ms: list[float] = field(default_factory=list)
    loop_late_max_ms: float = 0.0
    call_minutes: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)
    stalls: Counter[str] = field(default_factory=Counter)
    error: str | None = None
    wall_s: float = 0.0
    exit_notes: list[str] = field(default_factory=list)


async def drive(
    row: Row, base_url: str, token: str, seconds: float, svc: _procs.Proc, model: _procs.Proc
) -> None:
    n = row.n
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=min(n, 50))
    async with httpx.AsyncClient(limits=limits, timeout=20.0) as client:
        phones: list[Softphone] = []
        samples = Samples()
        stop = asyncio.Event()
        limit_s = RAMP_S + seconds + CALL_MARGIN_S + 30
        idle_rss = _procs.rss_bytes(svc.pid)
        samples.rss_peak = idle_rss
        cpu0 = (_procs.cpu_seconds(svc.pid), _procs.cpu_seconds(model.pid))
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        samplers = [
            asyncio.create_task(
                sample_rss_and_lag(
                    svc.pid, phones, samples, stop, limit_s, round(seconds * 1000) // 20
                )
            ),
            asyncio.create_task(sample_loop_lateness(samples, stop, limit_s)),
        ]
        calls = [
            one_call(i * RAMP_S / n, base_url, token, seconds, client, phones) for i in range(n)
        ]
        results = await asyncio.gather(*calls)
        # Let the service finish tearing the calls down (bounded), so their CPU is counted.
        for _ in range(100):
            resp = await client.get(base_url + "/stats")
            if resp.json().get("active_calls", 0) == 0:
                break
            await asyncio.sleep(0.1)
        cpu1 = (_procs.cpu_seconds(svc.pid), _procs.cpu_seconds(model.pid))
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        row.wall_s = time.monotonic() - t0
        stop.set()
        await asyncio.gather(*samplers)
        row.stats = (await client.get(base_url + "/stats")).json()

    row.call_minutes = sum(r.stream_s for r in results) / 60
    per_min = max(row.call_minutes, 1e-9)
    row.svc_cpu = (cpu1[0] - cpu0[0]) / per_min
    row.model_cpu = (cpu1[1] - cpu0[1]) / per_min
    bench_s = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    row.bench_cpu = bench_s / per_min
    row.rss_idle_mb = idle_rss / 2**20
    row.rss_per_call_mb = (samples.rss_peak - idle_rss) / 2**20 / n
    row.send_lag_ms = max(0.0, samples.send_lag_ms)
    row.loop_late_max_ms = max(samples.loop_late_ms, default=0.0)
    for r in results:
        s = r.summary
        reason = None
        if r.error is not None:
            reason = r.error
        elif s is None:
            reason = "no summary"
        elif s.closed_by != "softphone":
            reason = f"closed by {s.closed_by} ({s.close_code} {s.close_reason or ''})".strip()
        elif s.invalid_messages:
            reason = f"invalid messages {dict(s.invalid_reasons)}"
        if reason is not None:
            row.failed += 1
            row.reasons[reason] += 1
        if r.stall is not None:
            row.stalls[r.stall] += 1
        if r.setup_s is not None:
            row.setup_ms.append(r.setup_s * 1000)
        if r.barge_to_clear_ms is not None:
            row.e2e_barge_ms.append(r.barge_to_clear_ms)
        if s is not None:
            row.frames_sent += s.frames_sent
            row.clears += s.clears
            row.calls_cleared += s.clears > 0


def run_row(mode: str, n: int, seconds: float, redis_url: str, log_dir: Path) -> Row:
    row = Row(mode, n)
    model_port, svc_port = _procs.free_port(), _procs.free_port()
    token = secrets.token_hex(16)
    base_url = f"http://127.0.0.1:{svc_port}"
    common = {"LOG_LEVEL": "warning", "LOG_FORMAT": "json"}
    # The model stands in for a cloud service: scripted replies, so this bench measures the
    # bridge, not the offline speech engine (bench/offline_engine.py does that).
    model = _procs.start(
        f"model-{mode}-{n}",
        ["realtime-server", "--port", str(model_port)],
        {**common, "LOCAL_ENGINE": "synthetic"},
        log_dir,
    )
    svc: _procs.Proc | None = None
    try:
        _procs.wait_tcp(model, model_port)
        env = {
            **common,
            "PUBLIC_URL": base_url,
            "TWILIO_AUTH_TOKEN": token,
            "REALTIME_BACKEND": "local",
            "LOCAL_REALTIME_URL": f"ws://127.0.0.1:{model_port}/v1/realtime",
            "AUDIO_MODE": mode,
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": f"vabench:{os.getpid()}:",  # keep bench records apart
            "CALL_TTL_SECONDS": "900",  # and let them expire
        }
        svc = _procs.start(
            f"service-{mode}-{n}",
            ["serve", "--host", "127.0.0.1", "--port", str(svc_port)],
            env,
            log_dir,
        )
        _procs.wait_http(svc, base_url + "/healthz")
        time.sleep(1.0)  # let start-up settle before the idle RSS/CPU readings
        asyncio.run(drive(row, base_url, token, seconds, svc, model))
    except Exception as exc:
        row.error = f"{type(exc).__name__}: {exc}"
    finally:
        for proc, sig in ((svc, signal.SIGTERM), (model, signal.SIGINT)):
            if proc is None:
                continue
            problem = proc.stop(sig)
            if problem is not None:
                row.exit_notes.append(f"{proc.name} {problem}: {proc.log_tail(3)}")
    return row


# ---------------------------------------------------------------------------- output
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


def print_table(rows: list[Row], seconds: float) -> None:
    cores = os.cpu_count()
    print(
        f"Bridge bench: {seconds:g} s calls (greeting, ~1.2 s question, answer, ~0.8 s "
        f"barge-in, hang-up); fresh service + model server per row; {cores} cores shared by\n"
        "the service, the local model server AND this load generator (N softphones in one "
        "process) — see bench/model cpu and lag to judge contention.\n"
        "Latency = inside the service only (frame arrival → our send done), p50/p99 ms. "
        "cpu = CPU s per call-minute. rss/call = (peak − idle service RSS) / N.\n"
        "lag = worst softphone caller-frame clock lag / worst bench event-loop lateness (ms); "
        "fail = raised, closed by server or invalid messages; barge-ins = clears (calls).\n"
        "e2e barge = NOT service-internal: caller's barge-in speech onset → clear at the "
        "softphone (includes the model's VAD), p50/p99 ms.\n"
    )
    header = (
        f"{'mode':<11} {'N':>4}  {'c→m':>11} {'m→c':>11} {'barge→clear':>12} {'e2e barge':>9}  "
        f"{'svc cpu':>7} {'rss/call':>8}  {'fail':>4} {'barge-ins':>11}  "
        f"{'bench cpu':>9} {'model cpu':>9} {'lag':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        if r.error is not None and not r.stats:
            print(f"{r.mode:<11} {r.n:>4}  ERROR: {r.error[:120]}")
            continue
        s = r.stats
        print(
            f"{r.mode:<11} {r.n:>4}  {_pq(s, 'caller_to_model_ms'):>11} "
            f"{_pq(s, 'model_to_caller_ms'):>11} {_pq(s, 'barge_in_to_clear_ms'):>12} "
            f"{_pq_list(r.e2e_barge_ms):>9}  "
            f"{r.svc_cpu:>7.3f} {r.rss_per_call_mb:>7.2f}M  {r.failed:>4} "
            f"{f'{r.clears} ({r.calls_cleared})':>11}  {r.bench_cpu:>9.3f} {r.model_cpu:>9.3f} "
            f"{f'{r.send_lag_ms:.0f}/{r.loop_late_max_ms:.0f}':>13}"
        )
    notes = []
    for r in rows:
        tag = f"{r.mode} N={r.n}"
        if r.error is not None:
            notes.append(f"{tag}: error: {r.error}")
        for reason, count in r.reasons.most_common(5):
            if count:
                notes.append(f"{tag}: {count} failed: {reason}")
        for stall, count in r.stalls.most_common(5):
            notes.append(f"{tag}: {count} call scripts timed out waiting for: {stall}")
        notes.extend(f"{tag}: {note}" for note in r.exit_notes)
        lat = r.stats.get("latency", {}) if r.stats else {}
        counts = {k: lat.get(k, {}).get("count", 0) for k in lat}
        untimed = r.frames_sent - counts.get("caller_to_model_ms", 0)
        if r.stats and untimed > r.frames_sent * 0.01:
            notes.append(
                f"{tag}: {untimed} of {r.frames_sent} caller frames arrived before the call's "
                f"model session was ready (untimed; avg {untimed * 20 / r.n:.0f} ms per call)"
            )
        if r.stats and r.clears and not counts.get("barge_in_to_clear_ms"):
            notes.append(
                f"{tag}: {r.clears} clears reached the softphones but the service recorded "
                "no barge_in_to_clear samples"
            )
        if r.stats:
            notes.append(
                f"{tag}: samples {counts}, {r.call_minutes:.1f} call-min, "
                f"idle RSS {r.rss_idle_mb:.0f} MB, wall {r.wall_s:.1f} s, call set-up "
                f"(webhook + WS) p50/p99 {_pq_list(r.setup_ms)} ms"
            )
    if notes:
        print("\nNotes:")
        for line in notes:
            print("  " + line)
    by_key = {(r.mode, r.n): r for r in rows if r.stats and r.svc_cpu > 0}
    ratios = [
        f"N={n}: {by_key[('transcode', n)].svc_cpu / by_key[('passthrough', n)].svc_cpu:.2f}x"
        for n in sorted({k[1] for k in by_key})
        if ("transcode", n) in by_key and ("passthrough", n) in by_key
    ]
    if ratios:
        print(
            "\nService CPU per call-minute, transcode / passthrough (same run): "
            + ", ".join(ratios)
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loads", default="10,50,200", help="comma-separated concurrent calls")
    ap.add_argument("--modes", default="transcode,passthrough", help="AUDIO_MODE values")
    ap.add_argument("--seconds", type=float, default=12.0, help="length of each call")
    ap.add_argument(
        "--redis-url", default=DEFAULT_REDIS, help="REDIS_URL for the service ('' = embedded)"
    )
    args = ap.parse_args()
    loads = [int(x) for x in args.loads.split(",") if x.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in ("transcode", "passthrough") for m in modes) or any(n < 1 for n in loads):
        ap.error("modes must be transcode/passthrough and loads positive integers")
    if not 3 <= args.seconds <= 120:
        ap.error("--seconds must be within 3..120")
    configure_logging("console", "error")  # the softphones log every call at info

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bridge-bench-") as tmp:
        for n in loads:
            for mode in modes:
                print(f"[bench] {mode} N={n} ...", file=sys.stderr, flush=True)
                row = run_row(mode, n, args.seconds, args.redis_url, Path(tmp))
                rows.append(row)
                print(
                    f"[bench] {mode} N={n}: failed {row.failed}, wall {row.wall_s:.1f} s"
                    + (f", error {row.error}" if row.error else ""),
                    file=sys.stderr,
                    flush=True,
                )
    print_table(rows, args.seconds)
    return 0 if all(r.error is None for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
