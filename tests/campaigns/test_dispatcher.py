"""The dispatcher on a frozen clock against a real Redis: windows, DNC, back-off, pause."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from service.agent.profiles import HOTLINE_PROFILE, AgentProfile
from service.campaigns.campaigns import Campaigns
from service.campaigns.dispatcher import Dispatcher
from service.campaigns.outbound import OutboundRequest, PlacedCall
from service.campaigns.rules import CampaignRules
from service.campaigns.store import CampaignStore
from service.campaigns.windows import parse_windows
from service.settings import Settings
from service.telephony.events import CarrierError

pytestmark = pytest.mark.network


class Busy(CarrierError):
    retryable = True


class FakeOutbound:
    """Records dials; raises ``Busy`` for the first ``refuse`` of them."""

    def __init__(self) -> None:
        self.settings = Settings(outbound_from_number="+14155550100")
        self.dialed: list[str] = []
        self.refuse = 0

    def profile(self, name: str) -> AgentProfile:
        return HOTLINE_PROFILE

    async def place(self, request: OutboundRequest) -> PlacedCall:
        if self.refuse:
            self.refuse -= 1
            raise Busy("HTTP 429, Twilio error 20429")
        self.dialed.append(request.contact_id)
        return PlacedCall(f"CA{len(self.dialed)}", "d", request.to, "+14155550100", "p")


class Clock:
    def __init__(self, at: datetime) -> None:
        self.now = at.timestamp()

    def __call__(self) -> float:
        return self.now


async def setup(redis_client, clock: Clock, outbound: FakeOutbound):
    store = CampaignStore(redis_client, "d:")
    campaigns = Campaigns(store, outbound, ring_s=30, clock=clock)  # type: ignore[arg-type]
    rules = CampaignRules(profile="p", concurrency=10, cps=100.0,
                          windows=parse_windows("Mon-Fri 09:00-20:00"))  # fmt: skip
    assert await store.create("w", rules.to_fields())
    dispatcher = Dispatcher(campaigns, account_cps=100, lease_s=30, ring_s=30,
                            time_limit_s=600, clock=clock)  # fmt: skip
    return store, campaigns, dispatcher


async def run_steps(dispatcher: Dispatcher, n: int = 3) -> None:
    """A few passes, each a second later (the pace lets one dial through per pass)."""
    clock = dispatcher.clock
    assert isinstance(clock, Clock)
    for _ in range(n):
        clock.now += 1
        await dispatcher.step()
        if dispatcher._in_flight:
            await asyncio.wait(set(dispatcher._in_flight))


async def test_windows_dnc_and_backoff_on_a_frozen_clock(redis_client) -> None:
    # Wednesday 2026-03-04 14:30 UTC: 08:30 in Chicago, 09:30 in New York.
    clock = Clock(datetime(2026, 3, 4, 14, 30, tzinfo=UTC))
    outbound = FakeOutbound()
    store, campaigns, dispatcher = await setup(redis_client, clock, outbound)
    await store.add_dnc(["+12125550199"])
    csv = "contact_id,phone\nchicago,+13125550100\nnewyork,+12125550123\ndnc,+12125550199\n"
    upload = await campaigns.upload("w", csv, "csv")
    assert upload["added"] == 3
    await run_steps(dispatcher)
    assert outbound.dialed == ["newyork"]  # Chicago's 09:00 has not come yet
    assert (await store.contact("w", "dnc"))["result"] == "dnc"
    clock.now += 30 * 60  # 09:00 Chicago
    outbound.refuse = 1  # the carrier says 429 once: back-off, no attempt counted
    await run_steps(dispatcher, 1)
    chicago = await store.contact("w", "chicago")
    assert chicago["attempts"] == "0" and "20429" in chicago["last_error"]
    clock.now += 60
    await run_steps(dispatcher)
    assert outbound.dialed == ["newyork", "chicago"]
    assert (await store.contact("w", "chicago"))["attempts"] == "1"


async def test_a_contact_claimed_after_hours_waits_for_the_next_window(redis_client) -> None:
    clock = Clock(datetime(2026, 3, 4, 12, 0, tzinfo=UTC))  # 07:00 in New York
    outbound = FakeOutbound()
    store, campaigns, dispatcher = await setup(redis_client, clock, outbound)
    await campaigns.upload("w", "contact_id,phone\nny,+12125550123\n", "csv")
    # Due at 09:00 NY; then the clock jumps to 19:59:45 NY: the ring would end after 20:00.
    clock.now = datetime(2026, 3, 5, 0, 59, 45, tzinfo=UTC).timestamp()
    await run_steps(dispatcher)
    assert outbound.dialed == []
    contact = await store.contact("w", "ny")
    assert contact["state"] == "waiting" and contact["last_error"] == "outside calling window"
    assert int(contact["next_at_ms"]) == int(
        datetime(2026, 3, 5, 14, 0, tzinfo=UTC).timestamp() * 1000  # Thu 09:00 EST
    )


async def test_pause_resume_cancel_through_campaigns(redis_client) -> None:
    clock = Clock(datetime(2026, 3, 4, 15, 0, tzinfo=UTC))
    outbound = FakeOutbound()
    _, campaigns, dispatcher = await setup(redis_client, clock, outbound)
    assert await campaigns.change("w", "pause") == "paused"
    await campaigns.upload("w", "contact_id,phone\na,+12125550123\nb,+12125550124\n", "csv")
    await run_steps(dispatcher)
    assert outbound.dialed == []
    with pytest.raises(ValueError, match="cannot pause"):
        await campaigns.change("w", "pause")
    assert await campaigns.change("w", "resume") == "running"
    await run_steps(dispatcher)
    assert sorted(outbound.dialed) == ["a", "b"]
    assert await campaigns.change("w", "cancel") == "canceled"
    with pytest.raises(ValueError, match="cannot resume"):
        await campaigns.change("w", "resume")
    exported = await campaigns.export_csv("w")
    assert exported.splitlines()[0].startswith("contact_id,phone,state,result")
    assert len(exported.splitlines()) == 3
