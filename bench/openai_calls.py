"""Bench: what an OpenAI SIP call costs us from its webhook to the agent speaking.

Run: ``.venv/bin/python bench/openai_calls.py`` (``--loads 1,10``).

On loopback: a real ``redis-server``, the local realtime server (``python -m service
realtime-server``, synthetic engine) and the service (``python -m service serve``) as their
own processes, and in this process the OpenAI-calls stand-in (service/peers/openai_calls/) in
front of the model server. For each load N, N calls ring at once (signed webhooks); each is
accepted, attached over the sideband and greeted; then the caller hangs up. Columns, p50/p99
in ms over the N calls:

* ``reply``    webhook POST sent → our 200 received (verify, two Redis SET NX, reply).
* ``→accept``  webhook sent → the stand-in received ``accept``.
* ``→greet``   webhook sent → the greeting's ``response.created`` reached our sideband.
* ``verify``   the ``openai`` SDK's signature check alone, µs per call (10 000 runs).

Everything shares this machine's 2 cores with the other engineers: compare rows within one
run. The real OpenAI adds its own network and session set-up on top of ``→accept``/``→greet``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import signal
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.loadtest import procs as _procs
from service.logging import configure_logging
from service.peers.openai_calls import OpenAICallsStandIn
from tests.support.redis_server import RedisServer

SECRET = "whsec_" + base64.b64encode(b"bench-webhook-secret-0123456789a").decode()
API_KEY = "sk-bench-openai-calls-0123456789"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def verify_cost_us(runs: int = 10_000) -> float:
    import openai

    from service.peers.openai_calls.signing import webhook_headers

    body = orjson.dumps({"type": "realtime.call.incoming", "data": {"call_id": "rtc_x"}})
    headers = webhook_headers(SECRET, "wh_1", int(time.time()), body)
    webhooks = openai.OpenAI(api_key="unused").webhooks
    started = time.perf_counter()
    for _ in range(runs):
        webhooks.verify_signature(body, headers, secret=SECRET, tolerance=300)
    return (time.perf_counter() - started) / runs * 1e6


async def one_call(standin: OpenAICallsStandIn) -> tuple[float, float, float, str]:
    sent = time.monotonic()
    call_id, status = await standin.ring()
    replied = time.monotonic()
    assert status == 200, (status, standin.last_reply)
    async with asyncio.timeout(60):
        while "response.created" not in standin.first_seen.get(call_id, {}):  # noqa: ASYNC110
            await asyncio.sleep(0.005)
    seen = standin.first_seen[call_id]
    return (
        (replied - sent) * 1000,
        (seen["accept"] - sent) * 1000,
        (seen["response.created"] - sent) * 1000,
        call_id,
    )


async def drive(standin: OpenAICallsStandIn, loads: list[int]) -> None:
    # A first call pays for lazy imports and the SDK's HTTP client set-up: shown, then not counted.
    first = await one_call(standin)
    print(
        f"first call after start: reply {first[0]:.0f} ms, →accept {first[1]:.0f} ms, "
        f"→greet {first[2]:.0f} ms\n"
    )
    await standin.caller_hangs_up(first[3])
    print(f"{'N':>4} {'reply p50/p99':>15} {'→accept p50/p99':>17} {'→greet p50/p99':>16}")
    for n in loads:
        results = await asyncio.gather(*(one_call(standin) for _ in range(n)))
        replies, accepts, greets, ids = zip(*results, strict=True)
        print(
            f"{n:>4} {pct(list(replies), 0.5):>7.1f}/{pct(list(replies), 0.99):<7.1f}"
            f" {pct(list(accepts), 0.5):>8.1f}/{pct(list(accepts), 0.99):<8.1f}"
            f" {pct(list(greets), 0.5):>7.1f}/{pct(list(greets), 0.99):<8.1f}"
        )
        await asyncio.gather(*(standin.caller_hangs_up(call_id) for call_id in ids))
        await asyncio.sleep(1.0)


async def run(loads: list[int], log_dir: Path) -> None:
    redis = RedisServer()
    redis.start()
    model_port, svc_port = _procs.free_port(), _procs.free_port()
    common = {"LOG_LEVEL": "warning", "LOG_FORMAT": "json"}
    model = _procs.start(
        "model",
        ["realtime-server", "--port", str(model_port)],
        {**common, "LOCAL_ENGINE": "synthetic"},
        log_dir,
    )
    svc: _procs.Proc | None = None
    standin = OpenAICallsStandIn(
        f"ws://127.0.0.1:{model_port}/v1/realtime",
        webhook_url=f"http://127.0.0.1:{svc_port}/openai/webhook",
        webhook_secret=SECRET,
        api_key=API_KEY,
        playback_rate=8,
    )
    await standin.start()
    try:
        _procs.wait_tcp(model, model_port)
        env = {
            **common,
            "PUBLIC_URL": f"http://127.0.0.1:{svc_port}",
            "REDIS_URL": redis.url,
            "REALTIME_BACKEND": "none",
            "OPENAI_WEBHOOK_SECRET": SECRET,
            "OPENAI_API_KEY": API_KEY,
            "OPENAI_BASE_URL": standin.base_url,
            "OPENAI_REALTIME_URL": standin.realtime_url,
        }
        svc = _procs.start(
            "service", ["serve", "--host", "127.0.0.1", "--port", str(svc_port)], env, log_dir
        )
        _procs.wait_http(svc, f"http://127.0.0.1:{svc_port}/healthz")
        print(f"verify: {verify_cost_us():.1f} µs per signature check (openai SDK)\n")
        await drive(standin, loads)
    finally:
        await standin.stop()
        for proc, sig in ((svc, signal.SIGTERM), (model, signal.SIGINT)):
            if proc is not None and (problem := proc.stop(sig)) is not None:
                print(f"{proc.name} {problem}: {proc.log_tail(5)}")
        redis.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", default="1,10")
    args = parser.parse_args()
    configure_logging("console", "warning")
    with tempfile.TemporaryDirectory(prefix="bench-openai-calls-") as logs:
        asyncio.run(run([int(n) for n in args.loads.split(",")], Path(logs)))


if __name__ == "__main__":
    main()
