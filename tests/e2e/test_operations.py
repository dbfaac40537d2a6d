"""Operating the service as a real process: graceful drain on SIGTERM, health endpoints,
metrics, and logs that never carry a secret."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx

from service.agent.hotline.orders import seed_orders
from service.modelserver.hotline_script import HotlineScript
from service.peers.twilio import Softphone
from service.serving import free_port
from tests.conftest import TEST_AUTH_TOKEN
from tests.support.twilio_peer import inbound_params, post_webhook, sign
from tests.support.waiting import eventually

MODEL_KEY = "sk-test-SECRET-model-key-0123456789"


def spawn(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                env["PORT"],
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def start_process(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    proc = spawn(env, log_path)
    base = f"http://127.0.0.1:{env['PORT']}"

    async def healthy() -> bool:
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                return (await client.get(base + "/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(healthy, within=20)
    return proc


async def greeted_phone(base: str) -> Softphone:
    phone = Softphone(base, auth_token=TEST_AUTH_TOKEN, public_url=base, seconds=30.0)
    await phone.dial()
    await phone.connect()
    await phone.wait_for(lambda p: p.playback.played_ms > 500 and p.playback.buffered_ms == 0, 10)
    return phone


async def test_sigterm_drains_live_calls_and_logs_carry_no_secrets(
    redis_server, redis_client, local_model, tmp_path
) -> None:
    model = await local_model(HotlineScript())
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PORT": str(port),
        "PUBLIC_URL": base,
        "REDIS_URL": redis_server.url,
        "REDIS_KEY_PREFIX": "ops:",
        "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
        "REALTIME_BACKEND": "local",
        "LOCAL_REALTIME_URL": model.url,
        "OPENAI_API_KEY": MODEL_KEY,
        "DRAIN_TIMEOUT_SECONDS": "2",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "debug",
    }
    await seed_orders(redis_client, "ops:")
    log_path = tmp_path / "service.log"
    proc = await start_process(env, log_path)
    try:
        leaving, staying = await asyncio.gather(greeted_phone(base), greeted_phone(base))
        proc.send_signal(signal.SIGTERM)

        async with httpx.AsyncClient(timeout=2) as client:
            await eventually(
                lambda: client.get(base + "/readyz"), within=1
            )  # still serving HTTP while draining
            ready = await client.get(base + "/readyz")
            health = await client.get(base + "/healthz")
        assert ready.status_code == 503 and ready.json()["draining"] is True
        assert health.status_code == 200
        # New calls are declined politely, not connected.
        declined = await post_webhook(
            base, TEST_AUTH_TOKEN, "/twilio/voice", inbound_params("CA" + "9" * 32)
        )
        twiml = ET.fromstring(declined.text)
        assert twiml.find("Connect") is None and twiml.find("Say") is not None

        leaving.hangup()  # this caller finishes on their own during the drain
        ended_alone = await leaving.finished()
        ended_by_drain = await asyncio.wait_for(staying.finished(), 15)
        assert ended_by_drain.closed_by == "server"
        assert await asyncio.to_thread(proc.wait, 20) == 0  # exits cleanly once drained
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    alone = await redis_client.hgetall(f"ops:call:{{{ended_alone.call_sid}}}")
    drained = await redis_client.hgetall(f"ops:call:{{{ended_by_drain.call_sid}}}")
    assert alone["end_reason"] == "caller_hangup"
    assert drained["end_reason"] == "drain_timeout"
    events = await redis_client.xrange(f"ops:call:{{{ended_by_drain.call_sid}}}:events")
    # The caller heard a goodbye before the line closed.
    assert any(e["type"] == "response" and e["status"] == "completed" for _, e in events[-4:])

    logs = log_path.read_text()
    assert '"call_sid"' in logs and '"profile"' in logs  # structured, call-bound lines
    for secret in (
        TEST_AUTH_TOKEN,
        MODEL_KEY,
        staying.summary().twiml_parameters["token"],
        sign(TEST_AUTH_TOKEN, f"ws://127.0.0.1:{port}/twilio/media", {}),
    ):
        assert secret not in logs


async def test_metrics_and_readiness(make_service, local_model) -> None:
    model = await local_model(HotlineScript())
    service = await make_service(realtime_backend="local", local_realtime_url=model.url)
    phone = Softphone(
        service.base_url,
        auth_token=TEST_AUTH_TOKEN,
        public_url=service.services.settings.public_url,
        seconds=2.5,
    )
    await phone.run()
    async with httpx.AsyncClient() as client:
        ready = await client.get(service.base_url + "/readyz")
        text = (await client.get(service.base_url + "/metrics")).text
    assert ready.status_code == 200 and ready.json()["ready"] is True
    for name in (
        "voice_active_calls",
        'voice_calls_total{outcome="caller_hangup"} 1.0',
        'voice_frames_total{direction="in"}',
        "voice_added_latency_seconds_bucket",
        "voice_store_pending",
        "voice_store_dropped_total 0.0",
        "voice_ear_latency_seconds",
    ):
        assert name in text, name


async def test_a_full_process_refuses_calls_politely(make_service, local_model) -> None:
    """MAX_CALLS reached: the next caller hears busy (or the overflow number rings), /readyz
    says "full" so the load balancer routes elsewhere, and the refusal is counted."""
    model = await local_model(HotlineScript())
    service = await make_service(
        realtime_backend="local", local_realtime_url=model.url, max_calls=1
    )
    first = await post_webhook(
        service.base_url, TEST_AUTH_TOKEN, "/twilio/voice", inbound_params("CA" + "1" * 32)
    )
    assert ET.fromstring(first.text).find("./Connect/Stream") is not None  # the one call fits
    second = await post_webhook(
        service.base_url, TEST_AUTH_TOKEN, "/twilio/voice", inbound_params("CA" + "2" * 32)
    )
    reject = ET.fromstring(second.text).find("./Reject")
    assert reject is not None and reject.get("reason") == "busy"
    async with httpx.AsyncClient() as client:
        ready = await client.get(service.base_url + "/readyz")
        text = (await client.get(service.base_url + "/metrics")).text
    assert ready.status_code == 503 and ready.json()["full"] is True
    assert "voice_calls_refused_full_total 1.0" in text



async def test_a_full_process_hands_calls_to_the_overflow_number(make_service) -> None:
    service = await make_service(max_calls=1, overflow_number="+15550109999")
    for n, expected in ((1, None), (2, "+15550109999")):
        answer = await post_webhook(
            service.base_url, TEST_AUTH_TOKEN, "/twilio/voice", inbound_params(f"CA{n}" * 16)
        )
        assert ET.fromstring(answer.text).findtext("./Dial") == expected
