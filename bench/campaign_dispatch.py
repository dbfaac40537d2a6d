"""Campaign dispatcher bench: overhead per dial decision, Redis cost per contact, and the pace
and concurrency caps as the carrier sees them.

Part 1 (no network dialer): 10 000 contacts uploaded to a real redis-server, then dispatched
by one ``Dispatcher`` whose dialer answers at once and whose calls end at once; reports wall
time and Redis commands per dial, and Redis memory per contact.

Part 2 (the whole service): campaigns of 200 contacts through the service and the Twilio REST
peer (every callee a person who talks ``--talk`` s); reports the actual CPS against the cap
(measured at the peer, where Twilio would count), the most creates in any 1 s window, and the
most live calls against the concurrency cap.

    .venv/bin/python bench/campaign_dispatch.py [--contacts 10000] [--calls 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sys
import time
from pathlib import Path

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import itertools

from service.campaigns.campaigns import Campaigns
from service.campaigns.contacts import Contact
from service.campaigns.dispatcher import Dispatcher
from service.campaigns.outbound import OutboundRequest, PlacedCall
from service.campaigns.rules import CampaignRules
from service.campaigns.store import CampaignStore, now_ms
from service.logging import configure_logging
from service.peers.twilio.rest import Behaviour, TwilioRestPeer
from service.serving import RunningService, free_port
from service.settings import Settings
from tests.support.redis_server import RedisServer


class InstantOutbound:
    """Dials at once; the store is told the call ended right after (frees the live slot)."""

    def __init__(self, store: CampaignStore) -> None:
        self.store = store
        self.settings = Settings()
        self.count = 0

    def profile(self, name: str) -> object:
        return object()

    async def place(self, request: OutboundRequest) -> PlacedCall:
        self.count += 1
        sid = f"CA{self.count:032d}"
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._end(request, sid)))
        return PlacedCall(sid, "d", request.to, "+14155550100", "p")

    async def _end(self, request: OutboundRequest, sid: str) -> None:
        await asyncio.sleep(0.001)
        await self.store.finish(request.campaign_id, request.contact_id, call_sid=sid,
                                result="answered", retry_at=None)  # fmt: skip


async def commands(redis: aioredis.Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_")
               and k != "cmdstat_info")  # fmt: skip


async def part1(url: str, n: int) -> None:
    redis = aioredis.Redis.from_url(url)
    await redis.flushall()
    store = CampaignStore(redis, "bench:")
    rules = CampaignRules(profile="p", concurrency=1000, cps=100.0)
    fields = {**rules.to_fields(), "interval_ms": "0"}  # uncapped: measure the dispatcher
    await store.create("c", fields)
    contacts = [
        Contact(f"contact-{i:05d}", f"+1312555{i % 10000:04d}", ("America/Chicago",),
                {"customer_name": f"Customer {i}", "order_number": str(100000 + i)})
        for i in range(n)
    ]  # fmt: skip
    memory_before = int((await redis.info("memory"))["used_memory"])
    started = time.perf_counter()
    await store.add_contacts("c", contacts, [now_ms()] * n)
    upload_s = time.perf_counter() - started
    memory_after = int((await redis.info("memory"))["used_memory"])

    outbound = InstantOutbound(store)
    campaigns = Campaigns(store, outbound, ring_s=30)  # type: ignore[arg-type]
    dispatcher = Dispatcher(campaigns, account_cps=float("inf"), lease_s=30, ring_s=30,
                            time_limit_s=600, max_in_flight=200)  # fmt: skip
    ops_before = await commands(redis)
    started = time.perf_counter()
    while (await store.get("c")).get("state") != "done":  # noqa: ASYNC110 - polls Redis
        await asyncio.sleep(min(0.05, await dispatcher.step()))
    dispatch_s = time.perf_counter() - started
    ops = await commands(redis) - ops_before
    memory_done = int((await redis.info("memory"))["used_memory"])
    print(f"\n## Part 1: dispatcher overhead, {n} contacts, one dispatcher, instant dialer\n")
    print("| measure | value |\n|---|---|")
    print(
        f"| upload ({n} contacts, Lua per contact, pipelined) | {upload_s:.2f} s "
        f"({upload_s / n * 1e6:.0f} µs/contact) |"
    )
    print(f"| dispatch all (claim → window → DNC → dial → dialed → finish) | {dispatch_s:.2f} s |")
    print(f"| per dial decision (wall, incl. the dial task) | {dispatch_s / n * 1e3:.3f} ms |")
    print(f"| claim scripts run | {dispatcher.decisions} ({dispatcher.decisions / n:.2f}/dial) |")
    print(f"| Redis commands per dial (incl. inside scripts) | {ops / n:.1f} |")
    print(f"| Redis memory per waiting contact | {(memory_after - memory_before) / n:.0f} B |")
    print(f"| Redis memory per finished contact | {(memory_done - memory_before) / n:.0f} B |")
    await redis.aclose()


async def part2(url: str, calls: int, cps: float, concurrency: int, talk: float) -> None:
    token, account = secrets.token_hex(16), "AC" + secrets.token_hex(16)
    async with TwilioRestPeer(account, token) as twilio:
        for i in range(calls):
            twilio.behaviours[f"+1312555{i:04d}"] = Behaviour("person", talk_s=talk, ring_s=0.2)
        port = free_port()
        settings = Settings(
            public_url=f"http://127.0.0.1:{port}",
            redis_url=url,
            redis_key_prefix=f"bench2-{secrets.token_hex(3)}:",
            twilio_account_sid=account,
            twilio_auth_token=token,
            twilio_api_base_url=twilio.base_url,
            realtime_backend="none",
            outbound_from_number="+14155550100",
            twilio_account_cps=100.0,
            log_level="warning",
        )  # type: ignore[call-arg]
        async with RunningService(settings, port) as service:
            campaigns = service.services.campaigns
            assert campaigns is not None
            campaign_id = await campaigns.create(
                CampaignRules(profile="hotline", concurrency=concurrency, cps=cps)
            )
            rows = ["contact_id,phone"] + [f"k{i},+1312555{i:04d}" for i in range(calls)]
            await campaigns.upload(campaign_id, "\n".join(rows), "csv")
            started = time.monotonic()
            while (await campaigns.status(campaign_id))["state"] != "done":  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            elapsed = time.monotonic() - started
    created = sorted(twilio.created)
    span = created[-1] - created[0]
    actual = (len(created) - 1) / span if span else float("inf")
    window = max_in_window([int(t * 1000) for t in created])
    gaps = sorted(b - a for a, b in itertools.pairwise(created))
    print(
        f"| {cps:g} | {concurrency} | {calls} | {actual:.2f} | {window} | "
        f"{gaps[0] * 1000:.0f} ms | {twilio.max_live} | {elapsed:.1f} s |"
    )


def max_in_window(times_ms: list[int], window_ms: int = 1000) -> int:
    best, first = 0, 0
    for last, t in enumerate(times_ms):
        while t - times_ms[first] >= window_ms:
            first += 1
        best = max(best, last - first + 1)
    return best


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--talk", type=float, default=1.5)
    args = parser.parse_args()
    configure_logging("console", "error")
    server = RedisServer()
    server.start()
    try:
        await part1(server.url, args.contacts)
        print(f"\n## Part 2: {args.calls} calls through the service and the REST peer "
              f"(callees talk {args.talk} s)\n")  # fmt: skip
        print(
            "| CPS cap | concurrency cap | calls | actual CPS | most creates in 1 s | "
            "shortest gap | most live calls | campaign time |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for cps, concurrency in ((5.0, 20), (20.0, 8)):
            with contextlib.suppress(KeyboardInterrupt):
                await part2(server.url, args.calls, cps, concurrency, args.talk)
    finally:
        server.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
