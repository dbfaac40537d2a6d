"""Bench: the SIP edge under load — CPU per call, latency added, RTP send jitter.

Run: ``.venv/bin/python bench/sip_calls.py`` (defaults: ``--loads 10,50 --seconds 12``).

For every N a fresh local realtime server (scripted synthetic replies: the model "talks" at
once, faster than real time, as a cloud model does) and a fresh service with ``SIP_LISTEN``
are started as separate processes on loopback. N SIP phones (``service/peers/sip``, one
asyncio loop in this process, starts ramped over 2 s) each place one call of ``--seconds``:
wait for the greeting, say ~1.2 s, let the agent answer, talk over the answer (a barge-in),
hang up at the end. The service is stopped with SIGTERM, the model server with SIGINT.

Columns:

* ``svc cpu``   service CPU seconds (utime+stime, /proc) per call-minute; ``calls/core`` is
  60 / that: calls one core could carry at this mix (RTP both ways all the time).
* ``c→m``       caller RTP packet arrival → handed to the model session, p50/p99 ms (/stats).
* ``m→c``       model audio delta → queued for RTP, p50/p99 ms (/stats); the packet then
  leaves on the next 20 ms tick (by design: paced playout).
* ``rtp late``  how late the media clock's ticks (each sends one packet per call) ran
  behind their 20 ms grid, p50/p99/max ms (/stats ``sip``).
* ``rss/call``  (peak − idle service VmRSS) / N, MB.
* ``fail``      calls that were not answered 200 or ended early; ``barge`` calls with a barge-in.

The machine is shared and noisy: compare rows within one run, not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.audio.g711 import pcm16_to_ulaw
from service.demo import CALLER_VOICE
from service.loadtest import procs as _procs
from service.peers.sip import SipPhone

RAMP_S = 2.0
QUESTION = pcm16_to_ulaw(b"".join(CALLER_VOICE.synthesize("Hi, where is my order?", 1200, 8000)))
BARGE_IN = pcm16_to_ulaw(b"".join(CALLER_VOICE.synthesize("Wait, which carrier?", 800, 8000)))
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


@dataclass
class Row:
    n: int
    stats: dict[str, Any] = field(default_factory=dict)
    svc_cpu: float = 0.0
    rss_per_call_mb: float = 0.0
    failed: int = 0
    barged: int = 0
    call_minutes: float = 0.0
    error: str | None = None


async def one_call(port: int, delay: float, seconds: float) -> tuple[bool, bool, float]:
    """(ok, barged, seconds of call)."""
    await asyncio.sleep(delay)
    phone = SipPhone(("127.0.0.1", port))
    started = time.monotonic()
    try:
        if (await phone.invite(timeout=20)).status != 200:
            return False, False, 0.0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not phone.talk_spurts() and loop.time() < deadline:  # noqa: ASYNC110 - polls a recording
            await asyncio.sleep(0.05)
        await asyncio.sleep(phone.speak(QUESTION) / 1000 + 0.1)
        spurts = len(phone.talk_spurts())
        while loop.time() < deadline - 2 and (  # noqa: ASYNC110 - polls a recording
            len(phone.talk_spurts()) <= spurts or len(phone.talk_spurts()[-1]) < 40
        ):
            await asyncio.sleep(0.05)
        barged = len(phone.talk_spurts()) > spurts
        phone.speak(BARGE_IN)
        await asyncio.sleep(max(0.0, deadline - loop.time()))
        ok = not phone.ended_by_server.is_set()
        await phone.bye()
        return ok, barged, time.monotonic() - started
    except Exception:
        return False, False, time.monotonic() - started
    finally:
        await phone.close()


async def drive(row: Row, port: int, base_url: str, seconds: float, svc: _procs.Proc) -> None:
    idle_rss = _procs.rss_bytes(svc.pid)
    peak = idle_rss
    cpu0 = _procs.cpu_seconds(svc.pid)
    calls = [asyncio.create_task(one_call(port, RAMP_S * i / row.n, seconds)) for i in range(row.n)]
    while not all(task.done() for task in calls):
        peak = max(peak, _procs.rss_bytes(svc.pid))
        await asyncio.wait(calls, timeout=0.5)
    cpu1 = _procs.cpu_seconds(svc.pid)
    results = [task.result() for task in calls]
    row.failed = sum(not ok for ok, _, _ in results)
    row.barged = sum(barged for _, barged, _ in results)
    row.call_minutes = sum(length for _, _, length in results) / 60
    row.svc_cpu = (cpu1 - cpu0) / row.call_minutes if row.call_minutes else 0.0
    row.rss_per_call_mb = (peak - idle_rss) / row.n / 1e6
    async with httpx.AsyncClient() as client:
        row.stats = (await client.get(base_url + "/stats")).json()


def run_row(n: int, seconds: float, redis_url: str, log_dir: Path) -> Row:
    row = Row(n)
    model_port, svc_port, sip_port = (_procs.free_port() for _ in range(3))
    base_url = f"http://127.0.0.1:{svc_port}"
    common = {"LOG_LEVEL": "warning", "LOG_FORMAT": "json"}
    model = _procs.start(
        f"model-sip-{n}",
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
            "REALTIME_BACKEND": "local",
            "LOCAL_REALTIME_URL": f"ws://127.0.0.1:{model_port}/v1/realtime",
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": f"vabench:{os.getpid()}:",
            "CALL_TTL_SECONDS": "900",
            "SIP_LISTEN": f"127.0.0.1:{sip_port}",
            "SIP_RTP_PORTS": "30000-39999",
        }
        svc = _procs.start(
            f"service-sip-{n}",
            ["serve", "--host", "127.0.0.1", "--port", str(svc_port)],
            env,
            log_dir,
        )
        _procs.wait_http(svc, base_url + "/healthz")
        time.sleep(1.0)
        asyncio.run(drive(row, sip_port, base_url, seconds, svc))
    except Exception as exc:
        row.error = f"{type(exc).__name__}: {exc}"
    finally:
        for proc, sig in ((svc, signal.SIGTERM), (model, signal.SIGINT)):
            if proc is not None:
                proc.stop(sig)
    return row


def _pq(stats: dict[str, Any], key: str) -> str:
    s = stats.get("latency", {}).get(key, {})
    return f"{s['p50']:.2f}/{s['p99']:.2f}" if s.get("count") else "—"


def print_table(rows: list[Row], seconds: float) -> None:
    print(f"\nSIP edge, {seconds:g} s calls, scripted model (bench/sip_calls.py)\n")
    print(
        "| calls | svc cpu s/call-min | calls/core | c→m p50/p99 ms | m→c p50/p99 ms "
        "| rtp late p50/p99/max ms | rss/call MB | fail | barge |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        if row.error:
            print(f"| {row.n} | error: {row.error} |")
            continue
        sip = row.stats.get("sip", {})
        late = "/".join(
            f"{sip.get(f'rtp_send_late_{q}_ms', float('nan')):.2f}" for q in ("p50", "p99", "max")
        )
        per_core = 60 / row.svc_cpu if row.svc_cpu else float("nan")
        c2m, m2c = _pq(row.stats, "caller_to_model_ms"), _pq(row.stats, "model_to_caller_ms")
        print(
            f"| {row.n} | {row.svc_cpu:.2f} | {per_core:.0f} | {c2m} "
            f"| {m2c} | {late} | {row.rss_per_call_mb:.2f} "
            f"| {row.failed} | {row.barged}/{row.n} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", default="10,50")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", DEFAULT_REDIS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sipbench-") as log_dir:
        for n in (int(x) for x in args.loads.split(",")):
            rows.append(run_row(n, args.seconds, args.redis_url, Path(log_dir)))
            print(f"  {n} calls done", file=sys.stderr)
    print_table(rows, args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
