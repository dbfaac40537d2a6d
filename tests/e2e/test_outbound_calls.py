"""Outbound calls end to end: the operator API, the service, Redis and the Twilio REST peer
(which dials back into the service as the callee, with signed callbacks)."""

from __future__ import annotations

import httpx

from service.peers.twilio.rest import Behaviour, TwilioRestPeer
from tests.conftest import TEST_AUTH_TOKEN
from tests.support.waiting import eventually

ACCOUNT = "AC" + "1" * 32
OPERATOR = "operator-token-1"
FROM = "+14155550100"


async def outbound_service(make_service, twilio: TwilioRestPeer, **overrides: object):
    return await make_service(
        twilio_account_sid=ACCOUNT,
        twilio_api_base_url=twilio.base_url,
        api_tokens=f"other-token,{OPERATOR}",
        outbound_from_number=FROM,
        **overrides,
    )


def auth(token: str = OPERATOR) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_operator_routes_need_a_bearer_token(make_service) -> None:
    async with TwilioRestPeer(ACCOUNT, TEST_AUTH_TOKEN) as twilio:
        service = await outbound_service(make_service, twilio)
        async with httpx.AsyncClient(base_url=service.base_url) as http:
            for method, path in (("GET", "/calls/CA123"), ("POST", "/v1/calls"),
                                 ("GET", "/v1/campaigns/x"), ("POST", "/v1/dnc")):  # fmt: skip
                for headers in ({}, auth("wrong"), {"Authorization": OPERATOR}):
                    reply = await http.request(method, path, headers=headers)
                    assert reply.status_code == 401, (method, path, headers)
                    assert reply.headers["www-authenticate"].startswith("Bearer")
            assert (await http.get("/calls/CA123", headers=auth())).status_code == 404
            assert (await http.get("/calls/CA123", headers=auth("other-token"))).status_code == 404
        assert not twilio.created


async def test_one_outbound_call_is_placed_answered_and_recorded(make_service) -> None:
    async with TwilioRestPeer(ACCOUNT, TEST_AUTH_TOKEN) as twilio:
        twilio.behaviours["+12125550123"] = Behaviour("person", talk_s=1.0)
        service = await outbound_service(make_service, twilio)
        async with httpx.AsyncClient(base_url=service.base_url) as http:
            bad = await http.post("/v1/calls", headers=auth(), json={"to": "+1555"})
            assert bad.status_code == 400 and "not a valid phone number" in bad.json()["error"]
            unknown = await http.post(
                "/v1/calls", headers=auth(), json={"to": "+12125550123", "profile": "nope"}
            )
            assert unknown.status_code == 400 and "unknown profile" in unknown.json()["error"]
            reply = await http.post("/v1/calls", headers=auth(), json={"to": "(212) 555-0123"})
            assert reply.status_code == 400  # not E.164
            assert len(twilio.created) == 0
            reply = await http.post(
                "/v1/calls", headers=auth(), json={"to": "+12125550123", "variables": {"a": "1"}}
            )
            assert reply.status_code == 201, reply.text
            call_sid = reply.json()["call_sid"]
        assert await twilio.wait_idle(15)
        form = twilio.calls[call_sid].form
        assert form["MachineDetection"] == "Enable" and form["AsyncAmd"] == "true"
        assert form["Timeout"] == "30" and form["TimeLimit"] == "600" and form["From"] == FROM
        assert twilio.calls[call_sid].events == ["initiated", "ringing", "answered", "completed"]
        store = service.services.store

        async def recorded() -> bool:
            await service.services.writer.flush(timeout=5)
            record = await store.get_call(call_sid)
            return record.get("status") == "completed" and bool(record.get("end_reason"))

        await eventually(recorded, within=10)
        record = await store.get_call(call_sid)
        assert record["direction"] == "outbound-api"
        assert record["to"] == "+12125550123" and record["from"] == FROM
        assert record["answered_by"] == "human"
        assert record["profile"] == "hotline"
