"""Campaigns end to end: two service instances share one campaign in one Redis, dialing the
Twilio REST peer (which plays each callee: person, machine, busy, no answer, 429s)."""

from __future__ import annotations

import csv
import io
from collections import Counter

import httpx

from service.campaigns.store import CampaignStore
from service.peers.twilio.rest import Behaviour, TwilioRestPeer
from tests.conftest import TEST_AUTH_TOKEN
from tests.e2e.test_outbound_calls import ACCOUNT, auth, outbound_service
from tests.support.waiting import eventually

PERSON, BUSY, NO_ANSWER, MACHINE = "+1312555", "+1212555", "+1415555", "+1617555"


def numbers(prefix: str, n: int, start: int = 0) -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(start, start + n)]


def max_in_window(times_ms: list[int], window_ms: int = 1000) -> int:
    """Most events in any half-open window of ``window_ms``."""
    times = sorted(times_ms)
    best, first = 0, 0
    for last, t in enumerate(times):
        while t - times[first] >= window_ms:
            first += 1
        best = max(best, last - first + 1)
    return best


async def test_two_services_share_one_campaign(make_service, monkeypatch) -> None:
    claims: list[int] = []
    original = CampaignStore.claim

    async def recording_claim(self, campaign_id, now, **kwargs):  # type: ignore[no-untyped-def]
        result = await original(self, campaign_id, now, **kwargs)
        if result.kind == "claim":
            claims.append(now)
        return result

    monkeypatch.setattr(CampaignStore, "claim", recording_claim)
    async with TwilioRestPeer(ACCOUNT, TEST_AUTH_TOKEN, speed=2.0) as twilio:
        people = numbers(PERSON, 10)
        busy = numbers(BUSY, 3)
        unanswered = numbers(NO_ANSWER, 2)
        machines = numbers(MACHINE, 2)
        for number in people:
            twilio.behaviours[number] = Behaviour("person", talk_s=1.0)
        for number in busy:
            twilio.behaviours[number] = Behaviour("busy")
        for number in unanswered:
            twilio.behaviours[number] = Behaviour("no-answer", ring_s=0.6)
        for number in machines:
            twilio.behaviours[number] = Behaviour("machine", greeting_s=0.4)
        twilio.rate_limit = 2  # the first two creates get 429 / 20429
        settings = {"twilio_account_cps": 10.0, "campaign_lease_seconds": 5.0}
        first = await outbound_service(make_service, twilio, **settings)
        second = await outbound_service(make_service, twilio, **settings)
        everyone = [*people, *busy, *unanswered, *machines, "+13125559999"]
        rows = ["contact_id,phone,customer_name"]
        rows += [f"k{i},{number},N{i}" for i, number in enumerate(everyone)]
        rows += ["bad1,+1555,X", "bad2,3125550000,Y"]  # invalid; not E.164
        async with httpx.AsyncClient(base_url=first.base_url, timeout=10) as http:
            assert (
                await http.post("/v1/dnc", headers=auth(), json={"numbers": ["+13125559999"]})
            ).json()["added"] == 1
            created = await http.post("/v1/campaigns", headers=auth(), json={
                "profile": "hotline", "concurrency": 3, "cps": 4,
                "retry": {"max_attempts": 2, "rules": {"busy": {"delay_s": 0.5},
                                                       "no_answer": {"delay_s": 0.5},
                                                       "machine": {"retry": False}}},
            })  # fmt: skip
            assert created.status_code == 201, created.text
            campaign_id = created.json()["id"]
            csv_body = "\n".join(rows).encode()
            upload = await http.post(f"/v1/campaigns/{campaign_id}/contacts", headers={
                **auth(), "Content-Type": "text/csv"}, content=csv_body)  # fmt: skip
            assert upload.status_code == 200, upload.text
            assert upload.json()["added"] == len(everyone)
            assert [e["contact_id"] for e in upload.json()["errors"]] == ["bad1", "bad2"]
            again = await http.post(f"/v1/campaigns/{campaign_id}/contacts", headers={
                **auth(), "Content-Type": "text/csv"}, content=csv_body)  # fmt: skip
            assert again.json()["added"] == 0 and again.json()["duplicates"] == len(everyone)

            async def finished() -> bool:
                status = (await http.get(f"/v1/campaigns/{campaign_id}", headers=auth())).json()
                return status["state"] == "done"

            await eventually(finished, within=60)
            status = (await http.get(f"/v1/campaigns/{campaign_id}", headers=auth())).json()
            exported = await http.get(f"/v1/campaigns/{campaign_id}/results.csv", headers=auth())
        dials = Counter(call.form["To"] for call in twilio.calls.values())
        # Nobody dialed twice except by retry policy; the DNC number never.
        assert all(dials[n] == 1 for n in [*people, *machines])
        assert all(dials[n] == 2 for n in [*busy, *unanswered])
        assert "+13125559999" not in dials
        # Caps as the carrier saw them, across both services.
        assert twilio.max_live <= 3
        assert max_in_window(claims) <= 4
        assert len(twilio.refused) == 2
        counters = status["counters"]
        assert counters["dialed"] == sum(dials.values()) == 22
        assert counters["answered"] == 10 and counters["machine"] == 2
        assert counters["busy"] == 6 and counters["no_answer"] == 4  # per attempt
        assert (counters["dnc"], counters["rejected"], counters["backoffs"]) == (1, 2, 2)
        results = {row["contact_id"]: row for row in csv.DictReader(io.StringIO(exported.text))}
        assert results["k0"]["result"] == "answered" and results["k0"]["answered_by"] == "human"
        assert results["k10"]["result"] == "busy" and results["k10"]["attempts"] == "2"
        assert len(results["k10"]["call_sids"].split()) == 2
        assert results["k15"]["result"] == "machine"
        assert results["k17"]["result"] == "dnc" and results["k17"]["attempts"] == "0"
        assert results["bad1"]["state"] == "rejected" and "valid" in results["bad1"]["last_error"]
        # Both services dialed (the work is shared, not owned by one).
        placed = Counter(
            service for service in (first, second)
            for _ in range(service.services.dispatcher.decisions)
        )  # fmt: skip
        assert all(placed[s] > 0 for s in (first, second))
