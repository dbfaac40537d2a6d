"""``python -m service loadtest``: N simulated Twilio calls against the service, one table.

What runs where (each a separate process, so the service's CPU is its own — read from /proc):

* the service: ``python -m service serve`` on a free loopback port (or ``--target URL``, an
  already running one; give ``--target-pid`` to measure its CPU and RSS);
* the model: ``--model-procs`` processes of :mod:`service.loadtest.model` sharing one port,
  each response 20 ms deltas in real time (or ``--model URL``, any GA Realtime endpoint);
* Redis: a ``redis-server`` on a free port if one is installed (else the service's embedded
  store), or ``--redis-url``;
* the callers: this process, one asyncio loop, starts ramped over ``RAMP_S``.

Measures (see :func:`service.loadtest.report.render`): calls per core = seconds of calls
streamed ÷ service CPU seconds; the latency the service adds per direction and its
speech-start → ``clear`` (its ``GET /stats``, cumulative for the process: a fresh service
gives this run's numbers only); frames; RSS per call (peak − idle) / N; Redis commands per
call-minute; errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from service.loadtest import procs
from service.loadtest.calls import CALL_MARGIN_S, CallResult, one_call
from service.peers.twilio import Softphone

__all__ = ["LoadSpec", "Outcome", "run_load"]

RAMP_S = 2.0
SAMPLE_S = 0.5

Progress = Callable[[float, float, str], None]  # (done, total, status line)


@dataclass(frozen=True)
class LoadSpec:
    calls: int
    seconds: float
    mode: str = "transcode"  # AUDIO_MODE of a service we start
    target: str | None = None  # base URL of a running service
    target_pid: int | None = None
    auth_token: str | None = None  # the target's TWILIO_AUTH_TOKEN
    public_url: str | None = None  # the target's PUBLIC_URL (signatures are over it)
    model: str = "local"  # "local" (our pool) or a ws:// Realtime URL
    model_procs: int = 2
    redis_url: str | None = None
    barge_every_s: float | None = None
    ramp_s: float = RAMP_S
    service_env: tuple[tuple[str, str], ...] = ()  # extra env for a service we start
    # Start the service from another checkout (e.g. the commit before a change), to compare
    # two versions within one run on a noisy machine.
    service_tree: str | None = None
    label: str = ""


@dataclass
class Outcome:
    spec: LoadSpec
    stats: dict[str, Any] = field(default_factory=dict)
    results: list[CallResult] = field(default_factory=list)
    svc_cpu_s: float | None = None
    model_cpu_s: float | None = None
    loadgen_cpu_s: float = 0.0
    rss_idle: int = 0
    rss_peak: int = 0
    redis_ops: int | None = None
    send_lag_ms: float = 0.0
    wall_s: float = 0.0
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def call_seconds(self) -> float:
        return sum(r.stream_s for r in self.results)

    @property
    def calls_per_core(self) -> float | None:
        if not self.svc_cpu_s:
            return None
        return self.call_seconds / self.svc_cpu_s


def _redis_ops(url: str | None) -> int | None:
    if not url:
        return None
    import redis  # the client library only, as any operator's tool would

    try:
        client = redis.Redis.from_url(url, socket_timeout=2)
        return int(client.info("stats")["total_commands_processed"])
    except Exception:
        return None


async def _sample(
    out: Outcome,
    pid: int | None,
    phones: list[Softphone],
    stop: asyncio.Event,
    progress: Progress | None,
    t0: float,
) -> None:
    spec = out.spec
    total = spec.ramp_s + spec.seconds
    n_frames = round(spec.seconds * 1000) // 20
    limit = int((total + CALL_MARGIN_S + 30) / SAMPLE_S) + 1
    for _ in range(limit):  # bounded even if `stop` never comes
        if pid is not None:
            out.rss_peak = max(out.rss_peak, procs.rss_bytes(pid))
        live = 0
        for p in phones:
            # Only while the send loop runs (hang-up and close come after the last frame).
            if p.closed_by is None and p.elapsed > 0 and p.frames_sent < n_frames:
                live += 1
                # The next frame is due at 20 ms × (frames_sent + 1) after stream start.
                lag = p.elapsed * 1000 - 20 * (p.frames_sent + 1)
                out.send_lag_ms = max(out.send_lag_ms, lag)
        if progress is not None:
            gone = sum(1 for p in phones if p.closed_by is not None)
            elapsed = time.monotonic() - t0
            progress(min(elapsed, total), total, f"{live} streaming, {gone}/{spec.calls} ended")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SAMPLE_S):
                await stop.wait()
        if stop.is_set():
            return


async def drive(
    out: Outcome,
    base_url: str,
    token: str,
    *,
    svc_pid: int | None,
    model_pids: list[int],
    progress: Progress | None = None,
) -> None:
    spec, n = out.spec, out.spec.calls
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=min(n, 50))
    async with httpx.AsyncClient(limits=limits, timeout=20.0) as client:
        phones: list[Softphone] = []
        stop = asyncio.Event()
        if svc_pid is not None:
            out.rss_idle = out.rss_peak = procs.rss_bytes(svc_pid)
        cpu0 = procs.cpu_seconds(svc_pid) if svc_pid is not None else 0.0
        model0 = sum(procs.cpu_seconds(p) for p in model_pids)
        ops0 = _redis_ops(spec.redis_url)
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        sampler = asyncio.create_task(_sample(out, svc_pid, phones, stop, progress, t0))
        calls = [
            one_call(
                i * spec.ramp_s / n,
                base_url,
                token,
                spec.seconds,
                client,
                phones,
                public_url=spec.public_url,
                barge_every_s=spec.barge_every_s,
            )
            for i in range(n)
        ]
        out.results = list(await asyncio.gather(*calls))
        # Let the service finish tearing the calls down (bounded), so their CPU is counted.
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError, ValueError):
                resp = await client.get(base_url + "/stats")
                if resp.json().get("active_calls", 0) == 0:
                    break
            await asyncio.sleep(0.1)
        if svc_pid is not None:
            out.svc_cpu_s = procs.cpu_seconds(svc_pid) - cpu0
        if model_pids:
            out.model_cpu_s = sum(procs.cpu_seconds(p) for p in model_pids) - model0
        ops1 = _redis_ops(spec.redis_url)
        if ops0 is not None and ops1 is not None:
            out.redis_ops = ops1 - ops0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        out.loadgen_cpu_s = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        out.wall_s = time.monotonic() - t0
        stop.set()
        await sampler
        with contextlib.suppress(httpx.HTTPError, ValueError):
            out.stats = (await client.get(base_url + "/stats")).json()


def _start_redis(log_dir: Path, started: list[procs.Proc]) -> str | None:
    server = shutil.which("redis-server")
    if server is None:
        return None
    port = procs.free_port()
    proc = procs.start_command(
        "redis",
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        log_dir,
    )
    started.append(proc)
    procs.wait_tcp(proc, port)
    return f"redis://127.0.0.1:{port}/0"


def run_load(spec: LoadSpec, log_dir: Path, progress: Progress | None = None) -> Outcome:
    """Start what ``spec`` asks for, run the calls, stop everything started; never raises."""
    out = Outcome(spec)
    started: list[tuple[procs.Proc, int]] = []
    redis_procs: list[procs.Proc] = []
    common = {"LOG_LEVEL": "warning", "LOG_FORMAT": "json"}
    try:
        token = spec.auth_token or secrets.token_hex(16)
        model_pids: list[int] = []
        if spec.target is not None:
            base_url, svc_pid = spec.target.rstrip("/"), spec.target_pid
        else:
            model_url = spec.model
            if spec.model == "local":
                port = procs.free_port()
                for i in range(max(1, spec.model_procs)):
                    model = procs.start(
                        f"model-{i}",
                        ["--port", str(port)],
                        common,
                        log_dir,
                        module="service.loadtest.model",
                    )
                    started.append((model, signal.SIGINT))
                    # Not wait_tcp: the port answers as soon as the first process listens.
                    procs.wait_log(model, "loadtest model listening")
                    model_pids.append(model.pid)
                model_url = f"ws://127.0.0.1:{port}/v1/realtime"
            redis_url = spec.redis_url or _start_redis(log_dir, redis_procs)
            if redis_url != spec.redis_url:
                out.spec = spec = _replace(spec, redis_url=redis_url)
            svc_port = procs.free_port()
            base_url = f"http://127.0.0.1:{svc_port}"
            env = {
                **common,
                "PUBLIC_URL": base_url,
                "TWILIO_AUTH_TOKEN": token,
                "REALTIME_BACKEND": "local",
                "LOCAL_REALTIME_URL": model_url,
                "AUDIO_MODE": spec.mode,
                "REDIS_URL": redis_url or "",
                "REDIS_KEY_PREFIX": f"loadtest:{os.getpid()}:",
                "CALL_TTL_SECONDS": "900",
                **dict(spec.service_env),
            }
            svc = procs.start(
                "service",
                ["serve", "--host", "127.0.0.1", "--port", str(svc_port)],
                env,
                log_dir,
                cwd=Path(spec.service_tree) if spec.service_tree else None,
            )
            started.append((svc, signal.SIGTERM))
            procs.wait_http(svc, base_url + "/healthz")
            time.sleep(1.0)  # let start-up settle before the idle RSS/CPU readings
            svc_pid = svc.pid
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(
                drive(
                    out, base_url, token, svc_pid=svc_pid, model_pids=model_pids, progress=progress
                )
            )
    except Exception as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    finally:
        for proc, sig in reversed(started):
            problem = proc.stop(sig)
            if problem is not None:
                out.notes.append(f"{proc.name} {problem}: {proc.log_tail(3)}")
        for proc in redis_procs:
            proc.stop(signal.SIGTERM)
    return out


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (uvicorn[standard] brings it): the callers' own CPU shares the
    machine with the service, and uvloop's sockets cost less per frame."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _replace(spec: LoadSpec, **changes: Any) -> LoadSpec:
    from dataclasses import replace

    return replace(spec, **changes)
