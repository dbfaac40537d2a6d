"""A dispatcher process killed mid-campaign (SIGKILL): its leased contacts are dialed once,
after the lease expires, by another process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter

import httpx
import redis.asyncio as aioredis

from service.campaigns.store import CampaignKeys
from service.peers.twilio.rest import Behaviour, TwilioRestPeer
from service.serving import free_port
from tests.conftest import TEST_AUTH_TOKEN
from tests.e2e.test_outbound_calls import ACCOUNT, FROM, OPERATOR, auth, outbound_service
from tests.support.waiting import eventually


def spawn(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """``python -m service serve`` as its own process (so it can be SIGKILLed)."""
    command = [sys.executable, "-m", "service", "serve", "--port", str(port)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.asynccontextmanager
async def black_hole():
    """A TCP server that accepts and never answers: REST calls to it hang."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_killed_dispatchers_contacts_are_dialed_once_by_another(
    make_service, redis_server
) -> None:
    async with TwilioRestPeer(ACCOUNT, TEST_AUTH_TOKEN, speed=2.0) as twilio, black_hole() as hole:
        port = free_port()
        env = {
            **os.environ,
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "REDIS_URL": redis_server.url,
            "REDIS_KEY_PREFIX": "test:",
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
            "TWILIO_API_BASE_URL": hole,
            "API_TOKENS": OPERATOR,
            "OUTBOUND_FROM_NUMBER": FROM,
            "REALTIME_BACKEND": "none",
            "CAMPAIGN_LEASE_SECONDS": "2",
            "TWILIO_ACCOUNT_CPS": "20",
            "LOG_LEVEL": "warning",
        }
        proc = spawn(env, port)
        redis = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:

                async def up() -> bool:
                    with contextlib.suppress(httpx.HTTPError):
                        return (await http.get("/readyz")).status_code == 200
                    return False

                await eventually(up, within=30)
                phones = [f"+1312555{i:04d}" for i in range(8)]
                contacts = [{"contact_id": f"k{i}", "phone": p} for i, p in enumerate(phones)]
                created = await http.post(
                    "/v1/campaigns",
                    headers=auth(),
                    json={"profile": "hotline", "concurrency": 3, "cps": 20, "contacts": contacts},
                )
                assert created.status_code == 201, created.text  # fmt: skip
                campaign_id = created.json()["id"]
            keys = CampaignKeys("test:", campaign_id)

            async def three_leased() -> bool:
                return await redis.zcard(keys.leases) == 3

            await eventually(three_leased, within=10)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            leased = set(await redis.zrange(keys.leases, 0, -1))
            for phone in phones:
                twilio.behaviours[phone] = Behaviour("person", talk_s=0.5)
            survivor = await outbound_service(
                make_service, twilio, campaign_lease_seconds=2.0, twilio_account_cps=20.0
            )

            async def done() -> bool:
                return (await redis.hget(keys.campaign, "state")) == "done"

            await eventually(done, within=40)
            dials = Counter(call.form["To"] for call in twilio.calls.values())
            assert dials == Counter(phones), dials  # every contact exactly once
            campaign = await redis.hgetall(keys.campaign)
            assert int(campaign["lease_expired"]) == 3 and campaign["answered"] == "8"
            for contact_id in leased:
                contact = await redis.hgetall(keys.contact(contact_id))
                assert contact["attempts"] == "1" and contact["result"] == "answered"
            assert survivor.services.dispatcher.decisions > 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            await redis.aclose()
