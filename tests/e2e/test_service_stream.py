"""The service end to end over real sockets: uvicorn on 127.0.0.1, a real Redis.

Each test drives the Twilio side by hand (tests/support/twilio_peer.py) so it can send what a
well-behaved carrier never would.
"""

from __future__ import annotations

import asyncio
import base64

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from service.serving import RunningService
from tests.conftest import TEST_AUTH_TOKEN
from tests.support.twilio_peer import (
    inbound_params,
    media,
    open_call,
    post_webhook,
    sign,
    stream_from_twiml,
)
from tests.support.waiting import eventually

SILENCE = base64.b64encode(b"\xff" * 160).decode()


async def call_record(service: RunningService, call_sid: str) -> dict[str, str]:
    return await service.services.store.get_call(call_sid)


async def ended(service: RunningService, call_sid: str) -> bool:
    return bool((await call_record(service, call_sid)).get("end_reason"))


async def test_voice_webhook_answers_stream_twiml(make_service) -> None:
    service = await make_service(public_url="https://agent.example.test")
    params = inbound_params("CA" + "1" * 32)
    # Signed over the PUBLIC url, as Twilio would, while we connect to loopback.
    signature = sign(TEST_AUTH_TOKEN, "https://agent.example.test/twilio/voice", params)
    response = await post_webhook(
        service.base_url, TEST_AUTH_TOKEN, "/twilio/voice", params, signature=signature
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    url, parameters = stream_from_twiml(response.text)
    assert url == "wss://agent.example.test/twilio/media"
    assert parameters["from"] == "+15550100001" and parameters["to"] == "+15550100002"
    assert parameters["token"]
    assert "<Say>" in response.text.split("</Connect>")[1]  # fallback after the stream


@pytest.mark.parametrize("signature", ["", "bm90LWEtc2lnbmF0dXJl"])
async def test_unsigned_webhooks_are_forbidden(make_service, signature: str) -> None:
    service = await make_service()
    for path in ("/twilio/voice", "/twilio/status"):
        response = await post_webhook(
            service.base_url,
            TEST_AUTH_TOKEN,
            path,
            inbound_params("CA" + "2" * 32),
            signature=signature,
        )
        assert response.status_code == 403


async def test_webhooks_with_missing_fields_are_refused_clearly(make_service) -> None:
    service = await make_service()
    response = await post_webhook(
        service.base_url, TEST_AUTH_TOKEN, "/twilio/voice", {"From": "+1"}
    )
    assert response.status_code == 400 and "CallSid" in response.text
    response = await post_webhook(
        service.base_url, TEST_AUTH_TOKEN, "/twilio/status", {"CallSid": "CA9"}
    )
    assert response.status_code == 400 and "CallStatus" in response.text


async def test_signature_checks_can_be_switched_off_explicitly(make_service) -> None:
    service = await make_service(twilio_validate_signatures=False)
    response = await post_webhook(
        service.base_url,
        TEST_AUTH_TOKEN,
        "/twilio/voice",
        inbound_params("CA" + "3" * 32),
        signature="",
    )
    assert response.status_code == 200


async def test_upgrade_without_signature_is_refused(make_service) -> None:
    from websockets.asyncio.client import connect

    service = await make_service()
    with pytest.raises(InvalidStatus) as info:
        await connect(service.base_url.replace("http", "ws") + "/twilio/media", open_timeout=5)
    assert info.value.response.status_code == 403


async def test_start_with_a_foreign_token_closes_1008(make_service) -> None:
    service = await make_service()
    other = await open_call(service.base_url, TEST_AUTH_TOKEN, send_start=False)
    victim_sid = "CA" + "4" * 32
    # A token minted for another call cannot open this one.
    await other.send(
        {
            "event": "start",
            "sequenceNumber": "1",
            "start": {
                "callSid": victim_sid,
                "streamSid": other.stream_sid,
                "accountSid": "AC",
                "customParameters": other.parameters,
            },
        }
    )
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(other.ws.recv(), 5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008


async def test_second_stream_for_a_live_call_is_refused(make_service) -> None:
    service = await make_service()
    first = await open_call(service.base_url, TEST_AUTH_TOKEN)
    await eventually(lambda: len(service.services.calls) == 1)
    second = await open_call(service.base_url, TEST_AUTH_TOKEN, call_sid=first.call_sid)
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(second.ws.recv(), 5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1008
    # The live call is untouched.
    await first.send(media(SILENCE))
    assert len(service.services.calls) == 1
    await first.ws.close()


async def test_bad_frames_are_logged_counted_and_the_call_carries_on(make_service) -> None:
    service = await make_service()
    call = await open_call(service.base_url, TEST_AUTH_TOKEN)
    bad_frames: list[dict | str | bytes] = [
        "{not json",
        {"event": "surprise"},
        {"event": "surprise"},
        media("!!!not base64"),
        media("abc"),
        "x" * (70 * 1024),
        b"\x00\x01binary",
        {"event": "start", "start": {"callSid": call.call_sid, "streamSid": call.stream_sid}},
    ]
    for frame in bad_frames:
        await call.send(frame)
    for chunk in range(1, 11):
        await call.send(media(SILENCE, chunk))
    await call.send({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": "5"}})
    await call.send({"event": "stop", "stop": {"accountSid": "AC", "callSid": call.call_sid}})
    await eventually(lambda: ended(service, call.call_sid))
    record = await call_record(service, call.call_sid)
    assert record["end_reason"] == "caller_hangup"
    assert record["frames_in"] == "10"
    assert int(record["protocol_violations"]) == len(bad_frames)
    assert set(record["protocol_violation_kinds"].split(",")) == {
        "malformed_json",
        "unknown_event",
        "bad_base64",
        "frame_too_large",
        "binary_frame",
        "duplicate_start",
    }
    events = await service.services.store.get_events(call.call_sid)
    errors = [e for e in events if e["type"] == "error"]
    # Once per reason per call, not once per frame.
    assert sorted(e["reason"] for e in errors) == sorted(
        set(record["protocol_violation_kinds"].split(","))
    )
    assert any(e["type"] == "dtmf" and e["digit"] == "5" for e in events)


async def test_media_before_start_then_no_start_times_out_cleanly(make_service) -> None:
    service = await make_service()
    call = await open_call(service.base_url, TEST_AUTH_TOKEN, send_start=False)
    await call.send(media(SILENCE))
    # The service keeps the socket open waiting for start; the process stays healthy.
    async with httpx.AsyncClient() as client:
        health = await client.get(service.base_url + "/healthz")
    assert health.status_code == 200
    await call.ws.close()


async def test_dead_redis_at_start_service_runs_and_calls_flow(
    make_service, own_redis_server
) -> None:
    own_redis_server.stop()
    service = await make_service(redis_url=own_redis_server.url)
    async with httpx.AsyncClient() as client:
        health = (await client.get(service.base_url + "/healthz")).json()
    assert health["redis"] == "down"
    call = await open_call(service.base_url, TEST_AUTH_TOKEN)
    for chunk in range(1, 6):
        await call.send(media(SILENCE, chunk))
    await call.send({"event": "stop", "stop": {"accountSid": "AC", "callSid": call.call_sid}})
    await call.ws.wait_closed()
    assert service.services.writer.pending > 0  # held, not dropped
    own_redis_server.start()
    await eventually(lambda: ended(service, call.call_sid), within=10)
    assert service.services.writer.dropped == 0
