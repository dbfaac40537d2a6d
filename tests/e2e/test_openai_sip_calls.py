"""OpenAI SIP calls through the whole service: the stand-in rings us with a signed webhook,
we accept with the profile's session and drive the call over the sideband; real Redis,
uvicorn and WebSockets on loopback, the local model server behind the stand-in."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from service.agent.hotline.orders import seed_orders
from service.agent.profiles import HOTLINE_PROFILE
from service.demo import CALLER_VOICE
from service.modelserver.script import FunctionCall, Script, Turn
from service.modelserver.server import LocalRealtimeServer
from service.peers.openai_calls import OpenAICallsStandIn, StandInCall
from service.serving import RunningService
from tests.support.conformance import check_openai_client_event
from tests.support.waiting import eventually

SECRET = "whsec_" + base64.b64encode(b"test-webhook-secret-0123456789ab").decode()
API_KEY = "sk-test-openai-calls-0123456789"
VERIFY = FunctionCall("verify_caller", '{"order_number": "4217", "zip_code": "94107"}')


@dataclass
class Sip:
    model: LocalRealtimeServer
    standin: OpenAICallsStandIn
    service: RunningService

    async def record(self, call_id: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
        await self.service.services.writer.flush(timeout=5)
        store = self.service.services.store
        return await store.get_call(call_id), await store.get_events(call_id)

    async def audit(self, call_id: str) -> list[dict[str, str]]:
        services = self.service.services
        await services.writer.flush(timeout=5)
        assert services.audit is not None
        return await services.audit.call_entries(services.redis, call_id)

    async def ended(self, call_id: str, within: float = 10.0) -> dict[str, str]:
        async def over() -> bool:
            await self.service.services.writer.flush(timeout=5)
            return "end_reason" in await self.service.services.store.get_call(call_id)

        await eventually(over, within)
        return (await self.record(call_id))[0]


@pytest.fixture
async def sip(make_service, local_model) -> AsyncIterator[Any]:
    started: list[OpenAICallsStandIn] = []

    async def start(script: Script, **settings: Any) -> Sip:
        model = await local_model(script)
        standin = OpenAICallsStandIn(
            model.url, webhook_secret=SECRET, api_key=API_KEY, playback_rate=4.0
        )
        await standin.start()
        started.append(standin)
        service = await make_service(
            openai_webhook_secret=SECRET,
            openai_api_key=API_KEY,
            openai_base_url=standin.base_url,
            openai_realtime_url=standin.realtime_url,
            **settings,
        )
        standin.webhook_url = f"{service.base_url}/openai/webhook"
        await seed_orders(service.services.redis, service.services.settings.redis_key_prefix)
        return Sip(model, standin, service)

    yield start
    for standin in started:
        await standin.stop()
        assert standin.violations == []
        for call in standin.calls.values():
            for event in call.client_events:
                check_openai_client_event(event)


def states(entries: list[dict[str, str]], name: str) -> list[str]:
    return [e["state"] for e in entries if e["name"] == name]


async def test_signed_call_runs_a_tool_once_says_goodbye_then_hangs_up(sip) -> None:
    script = Script(
        greeting=Turn(text="Hello, let me check.", function_call=VERIFY),
        replies=[
            Turn(text="Thanks, you are verified.", function_call=FunctionCall("end_call")),
            Turn(text="Goodbye, and thanks for calling!"),
        ],
    )
    s = await sip(script)
    call_id, status = await s.standin.ring(extra_headers={"X-Twilio-CallSid": "CA" + "1" * 32})
    assert status == 200
    record = await s.ended(call_id)

    call = s.standin.calls[call_id]
    assert call.accept is not None
    # Accepted with the profile's session: instructions, voice, tools, VAD; no audio formats.
    assert call.accept["instructions"] == HOTLINE_PROFILE.instructions
    assert call.accept["audio"]["output"] == {"voice": HOTLINE_PROFILE.voice}
    assert call.accept["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert [t["name"] for t in call.accept["tools"]] == list(HOTLINE_PROFILE.tools)
    sent = {e["type"] for e in call.client_events}
    assert "input_audio_buffer.append" not in sent
    assert "conversation.item.truncate" not in sent

    # The tool ran once and its answer was heard; end_call waited for the goodbye to play out.
    entries = await s.audit(call_id)
    assert states(entries, "verify_caller") == ["requested", "started", "finished", "spoken"]
    assert "94107" not in str(entries)
    assert states(entries, "end_call")[:2] == ["requested", "started"]
    assert "spoken" in states(entries, "end_call")
    timeline = s.standin.timeline[call_id]
    assert timeline[0] == "accept"
    assert timeline[-1] == "hangup"
    assert timeline[-2] == "output_audio_buffer.stopped"  # the goodbye played out first
    assert call.hung_up_by == "client"

    assert record["carrier"] == "openai_sip"
    assert record["end_reason"] == "agent_hangup"
    assert record["twilio_call_sid"] == "CA" + "1" * 32
    assert record["from"] == "+15550100999"
    assert record["to"] == "+15550100001"
    outputs = [
        e
        for e in s.model.history[0].received
        if e["type"] == "conversation.item.create" and e["item"]["type"] == "function_call_output"
    ]
    assert len(outputs) == 2  # verify_caller's and end_call's


async def test_a_replayed_webhook_never_accepts_twice(sip) -> None:
    s = await sip(Script(greeting=Turn(text="Hello there.", duration_ms=3000)))
    call_id, _ = await s.standin.ring()
    await eventually(lambda: s.standin.calls[call_id].state == "accepted", 10)
    call = s.standin.calls[call_id]
    body = orjson.dumps(s.standin.incoming_event(call_id, call.sip_headers))
    headers = s.standin.signed_headers(body, webhook_id="wh_replayed")
    assert await s.standin.deliver(body, headers) == 200  # a retry with a new webhook-id
    assert await s.standin.deliver(body, headers) == 200  # the very same delivery again
    await s.standin.caller_hangs_up(call_id)
    record = await s.ended(call_id)
    assert [op for op, cid in s.standin.requests if cid == call_id].count("accept") == 1
    assert record["end_reason"] == "caller_hangup"
    metrics = s.service.services.metrics.render().decode()
    assert 'voice_openai_webhooks_total{outcome="duplicate"} 2.0' in metrics


async def test_bad_expired_and_missing_signatures_are_refused(sip) -> None:
    s = await sip(Script())
    standin = s.standin
    body = orjson.dumps(standin.incoming_event("rtc_forged", []))
    now = int(time.time())
    good = standin.signed_headers(body)
    wrong_secret = {**good, "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}
    expired = standin.signed_headers(body, timestamp=now - 310)
    too_new = standin.signed_headers(body, timestamp=now + 310)
    missing = {k: v for k, v in good.items() if k != "webhook-signature"}
    tampered_body = body.replace(b"rtc_forged", b"rtc_forgeX")
    for headers, payload in [
        (wrong_secret, body),
        (expired, body),
        (too_new, body),
        (missing, body),
        (good, tampered_body),
    ]:
        assert await standin.deliver(payload, headers) == 400
    assert standin.requests == []
    metrics = s.service.services.metrics.render().decode()
    assert 'voice_openai_webhooks_total{outcome="bad_signature"} 5.0' in metrics

    # Signed, but not a call: acknowledged and left alone.
    other = orjson.dumps({**orjson.loads(body), "type": "response.completed"})
    assert await standin.deliver(other, standin.signed_headers(other)) == 204
    assert standin.requests == []


async def test_transfer_uses_refer(sip) -> None:
    script = Script(
        greeting=Turn(
            text="Let me put you through.",
            function_call=FunctionCall("transfer_call", '{"target": "+15550109999"}'),
        ),
    )
    s = await sip(script)
    call_id, _ = await s.standin.ring()
    record = await s.ended(call_id)
    call = s.standin.calls[call_id]
    assert call.refer_target == "tel:+15550109999"
    _, events = await s.record(call_id)
    assert any(e["type"] == "transfer" and e["target"] == "+15550109999" for e in events)
    assert record["end_reason"]


async def test_a_dropped_sideband_is_reattached_by_call_id(sip) -> None:
    s = await sip(Script(greeting=Turn(text="Hello there.", duration_ms=1000)))
    call_id, _ = await s.standin.ring()
    await eventually(lambda: "response.created" in s.standin.timeline.get(call_id, []), 10)
    await s.standin.drop_sideband(call_id)
    await eventually(lambda: s.standin.calls[call_id].attaches == 2, 10)
    await eventually(lambda: s.standin.calls[call_id].sideband is not None, 10)
    await s.standin.press(call_id, "5")

    async def pressed() -> bool:
        _, events = await s.record(call_id)
        return any(e["type"] == "dtmf" and e["digit"] == "5" for e in events)

    await eventually(pressed, 10)
    await s.standin.caller_hangs_up(call_id)
    record = await s.ended(call_id)
    _, events = await s.record(call_id)
    assert any(e["type"] == "model_reconnected" for e in events)
    assert record["end_reason"] == "caller_hangup"
    assert record["model_reconnects"] == "1"


async def test_a_sideband_that_cannot_be_reattached_hangs_the_call_up(sip) -> None:
    s = await sip(Script(greeting=Turn(text="Hello there.", duration_ms=1000)))
    call_id, _ = await s.standin.ring()
    await eventually(lambda: "response.created" in s.standin.timeline.get(call_id, []), 10)
    s.standin.calls[call_id].refuse_attach = True
    await s.standin.drop_sideband(call_id)
    record = await s.ended(call_id)
    assert s.standin.calls[call_id].hung_up_by == "client"  # not left without an owner
    assert record["end_reason"] == "model_disconnected"
    _, events = await s.record(call_id)
    assert any(e["type"] == "error" and e["reason"] == "model_closed" for e in events)


async def test_calls_are_rejected_while_draining_and_for_unknown_profiles(sip) -> None:
    s = await sip(Script())
    unknown, status = await s.standin.ring(extra_headers={"x-profile": "no-such-profile"})
    assert status == 200
    await eventually(lambda: s.standin.calls[unknown].state == "rejected", 10)
    assert s.standin.calls[unknown].reject_status == 603

    s.service.services.draining = True
    busy, _ = await s.standin.ring()
    await eventually(lambda: s.standin.calls[busy].state == "rejected", 10)
    assert s.standin.calls[busy].reject_status == 486
    record = await s.ended(busy)
    assert record["end_reason"] == "rejected_draining"
    assert [op for op, _ in s.standin.requests] == ["reject", "reject"]


async def test_an_answer_talked_over_is_audited_as_interrupted(sip) -> None:
    script = Script(
        greeting=Turn(text="One moment.", duration_ms=400, function_call=VERIFY),
        replies=[Turn(text="You are verified. " * 40, duration_ms=30_000)],
    )
    s = await sip(script)
    call_id, _ = await s.standin.ring()
    await eventually(
        lambda: s.standin.timeline.get(call_id, []).count("output_audio_buffer.started") == 2,
        10,
    )
    speech = b"".join(CALLER_VOICE.synthesize("wait a second", 1200, 24_000))
    await s.standin.caller_says(call_id, speech + bytes(48 * 800))
    await eventually(lambda: "output_audio_buffer.cleared" in s.standin.timeline[call_id], 10)

    async def interrupted() -> bool:
        return states(await s.audit(call_id), "verify_caller")[-1:] == ["interrupted"]

    await eventually(interrupted, 10)
    await s.standin.caller_hangs_up(call_id)
    await s.ended(call_id)
    _, events = await s.record(call_id)
    assert not any(e["type"] == "truncated" for e in events)  # the server truncates itself


async def test_calls_past_max_calls_are_refused_busy(sip) -> None:
    s = await sip(Script(greeting=Turn(text="Hello there.", duration_ms=3000)), max_calls=1)
    first, _ = await s.standin.ring()
    await eventually(lambda: "response.created" in s.standin.timeline.get(first, []), 10)
    second, _ = await s.standin.ring()
    await eventually(lambda: s.standin.calls[second].state == "rejected", 10)
    assert s.standin.calls[second].reject_status == 486
    assert s.standin.calls[first].state == "accepted"
    metrics = s.service.services.metrics.render().decode()
    assert 'voice_refusals_total{reason="full"} 1.0' in metrics
    await s.standin.caller_hangs_up(first)
    await s.ended(first)


async def test_a_stopping_service_hangs_up_its_calls(sip) -> None:
    s = await sip(Script(greeting=Turn(text="Hello there.", duration_ms=3000)))
    call_id, _ = await s.standin.ring()
    await eventually(lambda: "response.created" in s.standin.timeline.get(call_id, []), 10)
    await s.service.__aexit__(None, None, None)
    assert s.standin.calls[call_id].hung_up_by == "client"  # not left running at OpenAI


OFFER = "v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
BROWSER_TOKEN = "browser-token-0123456789abcdef"


async def test_a_webrtc_offer_is_relayed_and_the_call_driven_over_the_sideband(sip) -> None:
    import httpx

    script = Script(
        greeting=Turn(text="Hello, let me check.", function_call=VERIFY),
        replies=[Turn(text="Thanks, you are verified.")],
    )
    s = await sip(script, webrtc_session_token=BROWSER_TOKEN, api_tokens="operator-token-1")
    url = f"{s.service.base_url}/v1/webrtc/session?profile=hotline"
    async with httpx.AsyncClient(timeout=5) as client:
        refused = await client.post(url, content=OFFER, headers={"content-type": "application/sdp"})
        reply = await client.post(
            url,
            content=OFFER,
            headers={"content-type": "application/sdp", "authorization": f"Bearer {BROWSER_TOKEN}"},
        )
        # An operator token (API_TOKENS) is as good as WEBRTC_SESSION_TOKEN here.
        not_sdp = await client.post(
            url, content="hello", headers={"authorization": "Bearer operator-token-1"}
        )
    assert refused.status_code == 401
    assert not_sdp.status_code == 400
    assert reply.status_code == 201
    assert reply.headers["content-type"].startswith("application/sdp")
    assert reply.text.startswith("v=0")
    call_id = reply.headers["x-call-id"]
    call = s.standin.calls[call_id]
    assert call.accept is not None
    assert call.accept["instructions"] == HOTLINE_PROFILE.instructions

    async def spoken() -> bool:
        return states(await s.audit(call_id), "verify_caller")[-1:] == ["spoken"]

    await eventually(spoken, 10)
    await s.standin.caller_hangs_up(call_id)
    record = await s.ended(call_id)
    assert record["carrier"] == "openai_webrtc"
    assert record["end_reason"] == "caller_hangup"


async def test_with_the_store_down_the_webhook_asks_for_a_retry_and_the_retry_accepts(
    sip, monkeypatch
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    s = await sip(Script(greeting=Turn(text="Hello there.", duration_ms=1000)))
    redis = s.service.services.redis
    real_set = redis.set
    failures = []

    async def call_claim_fails_once(name: str, *args: Any, **kwargs: Any) -> Any:
        if ":openai:call:" in name and not failures:  # the webhook-id is claimed by now
            failures.append(name)
            raise RedisConnectionError("redis went away")
        return await real_set(name, *args, **kwargs)

    monkeypatch.setattr(redis, "set", call_claim_fails_once)
    call_id = "rtc_retried0000000000000000"
    s.standin.calls[call_id] = StandInCall(call_id, [])
    body = orjson.dumps(s.standin.incoming_event(call_id, []))
    headers = s.standin.signed_headers(body, webhook_id="wh_retry")
    assert await s.standin.deliver(body, headers) == 503
    assert await s.standin.deliver(body, headers) == 200  # OpenAI's retry: same id, same body
    await eventually(lambda: s.standin.calls[call_id].state == "accepted", 10)
    assert [op for op, _ in s.standin.requests] == ["accept"]
    await s.standin.caller_hangs_up(call_id)
    await s.ended(call_id)
