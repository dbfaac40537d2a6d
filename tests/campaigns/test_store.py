"""The campaign store's atomic steps on a real Redis, with an explicit clock (ms)."""

from __future__ import annotations

import pytest

from service.campaigns.contacts import Contact
from service.campaigns.rules import CampaignRules
from service.campaigns.store import CampaignStore

pytestmark = pytest.mark.network
T0 = 1_800_000_000_000


def contacts(n: int, start: int = 0) -> list[Contact]:
    return [
        Contact(f"c{i}", f"+1312555{i:04d}", ("America/Chicago",), {"name": f"n{i}"})
        for i in range(start, start + n)
    ]


async def new_campaign(redis_client, **rules: object) -> CampaignStore:
    store = CampaignStore(redis_client, "t:")
    fields = CampaignRules(profile="p", **rules).to_fields()  # type: ignore[arg-type]
    assert await store.create("k1", fields)
    assert not await store.create("k1", fields)
    return store


async def claim(store: CampaignStore, now: int, account_interval: float = 1.0):
    return await store.claim("k1", now, lease_ms=30_000, account_interval_ms=account_interval)


async def test_upload_is_idempotent_by_contact_id(redis_client) -> None:
    store = await new_campaign(redis_client)
    batch = contacts(3)
    assert await store.add_contacts("k1", batch, [T0] * 3) == 3
    assert await store.add_contacts("k1", [*batch, *contacts(1, 3)], [T0] * 4) == 1
    assert await store.contact_ids("k1") == ["c0", "c1", "c2", "c3"]
    assert (await store.get("k1"))["total"] == "4"


async def test_concurrency_cap_and_pace(redis_client) -> None:
    store = await new_campaign(redis_client, concurrency=2, cps=2.0)
    await store.add_contacts("k1", contacts(4), [T0] * 4)
    first = await claim(store, T0)
    assert first.kind == "claim" and first.contact_id == "c0"
    paced = await claim(store, T0 + 100)
    assert paced.kind == "pace" and paced.at_ms == T0 + 500
    second = await claim(store, T0 + 500)
    assert second.kind == "claim"
    assert (await claim(store, T0 + 1000)).kind == "full"  # two live
    assert await store.dialed("k1", "c0", "CA0", T0 + 1000, T0 + 999_000)
    assert (await claim(store, T0 + 1000)).kind == "full"  # still live until final status
    assert await store.finish("k1", "c0", call_sid="CA0", result="answered", retry_at=None)
    assert not await store.finish("k1", "c0", call_sid="CA0", result="answered", retry_at=None)
    third = await claim(store, T0 + 1000)
    assert third.kind == "claim" and third.contact_id == "c2"


async def test_account_pace_is_shared_by_campaigns(redis_client) -> None:
    store = await new_campaign(redis_client, cps=10.0)
    await store.add_contacts("k1", contacts(2), [T0] * 2)
    assert (await claim(store, T0, account_interval=1000)).kind == "claim"
    assert (await claim(store, T0 + 200, account_interval=1000)).kind == "pace"


async def test_expired_lease_goes_back_to_due_and_is_claimed_once(redis_client) -> None:
    store = await new_campaign(redis_client, concurrency=5, cps=100.0)
    await store.add_contacts("k1", contacts(1), [T0])
    assert (await claim(store, T0)).contact_id == "c0"  # this dispatcher then dies
    assert (await claim(store, T0 + 10_000)).kind == "idle"
    again = await claim(store, T0 + 30_000)
    assert again.kind == "claim" and again.contact_id == "c0"
    assert (await store.get("k1"))["lease_expired"] == "1"
    # The dead dispatcher's late "dialed" after its lease was re-taken: it still holds a
    # lease entry (the new one), so the store cannot tell — the lease must outlast a dial.
    assert await store.dialed("k1", "c0", "CA1", T0 + 30_001, T0 + 900_000)
    assert (await claim(store, T0 + 60_000)).kind == "idle"


async def test_release_retry_and_done(redis_client) -> None:
    store = await new_campaign(redis_client, concurrency=5, cps=100.0)
    await store.add_contacts("k1", contacts(1), [T0])
    assert (await claim(store, T0)).kind == "claim"
    assert await store.release("k1", "c0", T0 + 5000, "HTTP 429", "backoffs")
    assert (await store.contact("k1", "c0"))["attempts"] == "0"
    assert (await claim(store, T0 + 100)).kind == "wait"
    assert (await claim(store, T0 + 5000)).kind == "claim"
    assert await store.dialed("k1", "c0", "CA1", T0 + 5000, T0 + 900_000)
    # busy → retry in a minute; a stale callback for another sid changes nothing.
    assert not await store.finish("k1", "c0", call_sid="CAx", result="busy", retry_at=None)
    assert await store.finish("k1", "c0", call_sid="CA1", result="busy", retry_at=T0 + 65_000)
    contact = await store.contact("k1", "c0")
    assert contact["state"] == "waiting" and contact["attempts"] == "1"
    assert (await claim(store, T0 + 65_000)).kind == "claim"
    assert await store.dialed("k1", "c0", "CA2", T0 + 65_000, T0 + 900_000)
    assert await store.finish("k1", "c0", call_sid="CA2", result="answered", retry_at=None)
    contact = await store.contact("k1", "c0")
    assert contact["call_sids"] == "CA1 CA2" and contact["result"] == "answered"
    assert (await claim(store, T0 + 70_000)).kind == "done"
    campaign = await store.get("k1")
    assert campaign["state"] == "done" and campaign["busy"] == "1" and campaign["done"] == "1"
    assert await store.active_ids() == []


async def test_pause_resume_cancel(redis_client) -> None:
    store = await new_campaign(redis_client)
    await store.add_contacts("k1", contacts(2), [T0] * 2)
    assert await store.set_state("k1", "paused", only_from=("running",))
    assert (await claim(store, T0)).kind == "state"
    assert not await store.set_state("k1", "paused", only_from=("running",))
    assert await store.set_state("k1", "running", only_from=("paused",))
    assert (await claim(store, T0)).kind == "claim"
    assert await store.set_state("k1", "canceled", only_from=("running", "paused"))
    assert (await claim(store, T0 + 5000)).kind == "state"
    assert await store.active_ids() == []
