"""Bad input on the Twilio side through the whole service (issue 11, items 2, 4, 6, 7, 8).

Real uvicorn, a real Redis, raw WebSocket clients that send what Twilio never would.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from service.modelserver.script import Script, Turn
from service.serving import MAX_WS_MESSAGE_BYTES, RunningService
from service.telephony.twilio import stream as stream_module
from tests.conftest import TEST_AUTH_TOKEN
from tests.support.twilio_peer import (
    OpenedCall,
    inbound_params,
    media,
    open_call,
    post_webhook,
    sign,
    stream_from_twiml,
)
from tests.support.waiting import eventually

SILENCE = base64.b64encode(b"\xff" * 160).decode()


def refusals(service: RunningService, reason: str) -> float:
    registry = service.services.metrics.registry
    return registry.get_sample_value("voice_refusals_total", {"reason": reason}) or 0.0


async def end_reason(service: RunningService, call_sid: str) -> str:
    return (await service.services.store.get_call(call_sid)).get("end_reason", "")


async def events_of(service: RunningService, call_sid: str) -> list[dict[str, str]]:
    await service.services.writer.flush(timeout=5)
    return await service.services.store.get_events(call_sid)


async def hang_up(service: RunningService, call: OpenedCall) -> None:
    await call.send({"event": "stop", "stop": {"callSid": call.call_sid}})
    await eventually(lambda: end_reason(service, call.call_sid))


async def closed_with(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    return info.value.rcvd.code if info.value.rcvd else None


async def test_numbers_int_cannot_read_are_violations_and_the_call_carries_on(
    make_service,
) -> None:
    service = await make_service()
    call = await open_call(service.base_url, TEST_AUTH_TOKEN)
    bad = [
        {**media(SILENCE), "media": {**media(SILENCE)["media"], "timestamp": "²"}},
        {**media(SILENCE), "media": {**media(SILENCE)["media"], "chunk": "①"}},
        {**media(SILENCE), "media": {**media(SILENCE)["media"], "timestamp": "9" * 5000}},
        {**media(SILENCE), "media": {**media(SILENCE)["media"], "chunk": True}},
    ]
    for frame in bad:
        await call.send(frame)
    # Mark names are parsed by the playback ledger: not ours, ignored (no exception).
    for name in ("²:item:10", "9" * 5000 + ":item:10", "①:x:1"):
        await call.send({"event": "mark", "mark": {"name": name}})
    for chunk in range(1, 6):
        await call.send(media(SILENCE, chunk))
    await hang_up(service, call)

    record = await service.services.store.get_call(call.call_sid)
    assert record["end_reason"] == "caller_hangup"
    assert record["frames_in"] == "5"
    assert record["protocol_violations"] == str(len(bad))
    assert record["protocol_violation_kinds"] == "media_invalid"
    assert refusals(service, "protocol_violation") == len(bad)


async def test_frames_up_to_the_transport_limit_are_refused_and_the_call_carries_on(
    make_service,
) -> None:
    service = await make_service()
    call = await open_call(service.base_url, TEST_AUTH_TOKEN)
    for size in (service.services.settings.max_frame_bytes + 1, MAX_WS_MESSAGE_BYTES):
        await call.send("x" * size)
    await call.send(media(SILENCE))
    await hang_up(service, call)
    record = await service.services.store.get_call(call.call_sid)
    assert record["end_reason"] == "caller_hangup" and record["frames_in"] == "1"
    assert record["protocol_violation_kinds"] == "frame_too_large"
    assert refusals(service, "oversized_frame") == 2


async def test_a_frame_over_the_transport_limit_ends_the_call_with_a_recorded_reason(
    make_service,
) -> None:
    service = await make_service()
    call = await open_call(service.base_url, TEST_AUTH_TOKEN)
    await eventually(lambda: len(service.services.calls) == 1)
    await call.send("x" * (MAX_WS_MESSAGE_BYTES + 1))
    assert await closed_with(call.ws) == 1009
    await eventually(lambda: end_reason(service, call.call_sid))
    assert await end_reason(service, call.call_sid) == "frame_too_large"
    events = await events_of(service, call.call_sid)
    assert any(e["type"] == "error" and e["reason"] == "frame_too_large" for e in events)
    assert refusals(service, "oversized_frame") == 1


async def replay(service: RunningService, first: OpenedCall) -> ClientConnection:
    """Open a stream for ``first``'s call with ``first``'s token, as a replayed start would."""
    stream_url = service.services.settings.public_ws_scheme + "://"
    stream_url += service.services.settings.public_host + stream_module.MEDIA_PATH
    ws = await connect(
        service.base_url.replace("http", "ws", 1) + stream_module.MEDIA_PATH,
        additional_headers={"X-Twilio-Signature": sign(TEST_AUTH_TOKEN, stream_url, {})},
        open_timeout=5,
    )
    start = {"streamSid": "MZ" + secrets.token_hex(16), "callSid": first.call_sid}
    start["customParameters"] = first.parameters  # type: ignore[assignment]
    await ws.send(orjson.dumps({"event": "start", "start": start}).decode())
    return ws


async def test_a_stream_token_opens_one_stream_only_on_any_replica(make_service) -> None:
    service = await make_service()
    replica = await make_service()  # same Redis, key prefix and token key: another process
    first = await open_call(service.base_url, TEST_AUTH_TOKEN)
    await first.send(media(SILENCE))
    await hang_up(service, first)

    for target in (service, replica):
        assert await closed_with(await replay(target, first)) == 1008
        assert refusals(target, "replayed_token") == 1
    events = await events_of(service, first.call_sid)
    assert [e["type"] for e in events].count("started") == 1
    assert [e["reason"] for e in events if e["type"] == "refused"] == ["replayed_token"] * 2
    keys = await service.services.redis.keys("test:stream_token:*")
    assert len(keys) == 1 and 0 < await service.services.redis.ttl(keys[0]) <= 300 + 60


async def test_every_refusal_is_counted_in_metrics(make_service) -> None:
    service = await make_service()
    # A webhook and a stream upgrade without a valid signature.
    response = await post_webhook(
        service.base_url, TEST_AUTH_TOKEN, "/twilio/voice", inbound_params("CA1"), signature="x"
    )
    assert response.status_code == 403
    with pytest.raises(InvalidStatus):  # HTTP 403
        await connect(service.base_url.replace("http", "ws", 1) + "/twilio/media")
    # A token minted for another call.
    other = await open_call(service.base_url, TEST_AUTH_TOKEN, send_start=False)
    start = {"callSid": "CA" + "4" * 32, "streamSid": other.stream_sid}
    await other.send({"event": "start", "start": {**start, "customParameters": other.parameters}})
    assert await closed_with(other.ws) == 1008
    # A second stream for a live call.
    live = await open_call(service.base_url, TEST_AUTH_TOKEN)
    await eventually(lambda: len(service.services.calls) == 1)
    twin = await open_call(service.base_url, TEST_AUTH_TOKEN, call_sid=live.call_sid)
    assert await closed_with(twin.ws) == 1008
    await hang_up(service, live)

    async with httpx.AsyncClient() as client:
        text = (await client.get(service.base_url + "/metrics")).text
    assert 'voice_refusals_total{reason="bad_signature"} 2.0' in text
    assert 'voice_refusals_total{reason="bad_token"} 1.0' in text
    assert 'voice_refusals_total{reason="duplicate_stream"} 1.0' in text
    assert 'voice_refusals_total{reason="replayed_token"} 0.0' in text
    events = await events_of(service, live.call_sid)
    assert [e["reason"] for e in events if e["type"] == "refused"] == ["duplicate_stream"]


async def open_stuck_caller(
    service: RunningService,
) -> tuple[ClientConnection, str, asyncio.BaseTransport]:
    """A caller that never reads, with small socket buffers on both ends (a slow link), so
    the buffers fill after ~100 KB rather than the several MB loopback would allow."""
    call_sid = "CA" + secrets.token_hex(16)
    response = await post_webhook(
        service.base_url, TEST_AUTH_TOKEN, "/twilio/voice", inbound_params(call_sid)
    )
    stream_url, parameters = stream_from_twiml(response.text)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    port = int(service.base_url.rsplit(":", 1)[1])
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    ws = await connect(
        service.base_url.replace("http", "ws", 1) + stream_module.MEDIA_PATH,
        sock=sock,
        additional_headers={"X-Twilio-Signature": sign(TEST_AUTH_TOKEN, stream_url, {})},
        max_queue=1,  # the client library stops reading from the socket at once
        open_timeout=5,
    )
    here = sock.getsockname()[:2]
    [server_side] = [
        connection.transport
        for connection in service.server.server_state.connections
        if connection.transport.get_extra_info("peername")[:2] == here
    ]
    server_side.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    stream_sid = "MZ" + secrets.token_hex(16)
    start = {"streamSid": stream_sid, "callSid": call_sid, "customParameters": parameters}
    await ws.send(
        orjson.dumps({"event": "start", "streamSid": stream_sid, "start": start}).decode()
    )
    return ws, call_sid, server_side


async def test_a_caller_that_stops_reading_is_detected_counted_and_ended(
    make_service, local_model, monkeypatch
) -> None:
    monkeypatch.setattr(stream_module, "CALLER_SEND_TIMEOUT_SECONDS", 0.5)
    # 20 s of agent audio at 20× real time: far more than the small buffers hold.
    script = Script(greeting=Turn(text="Hello", duration_ms=20_000), pace=20, chunk_ms=200)
    model = await local_model(script)
    service = await make_service(
        realtime_backend="local", local_realtime_url=model.url, audio_mode="passthrough"
    )
    other = await open_call(service.base_url, TEST_AUTH_TOKEN)  # a healthy call alongside
    ws, call_sid, server_side = await open_stuck_caller(service)
    await eventually(lambda: end_reason(service, call_sid), 15)

    assert await end_reason(service, call_sid) == "caller_stuck"
    events = await events_of(service, call_sid)
    assert [e["reason"] for e in events if e["type"] == "error"] == ["caller_stuck"]
    metrics = service.services.metrics.registry
    assert metrics.get_sample_value("voice_stuck_callers_total") == 1
    # The connection was dropped (not left waiting on a close the caller would never read).
    await eventually(server_side.is_closing, 5)
    assert [w.call_sid for w in service.services.calls.values()] == [other.call_sid]
    await hang_up(service, other)
    ws.transport.abort()  # it reads nothing, so a closing handshake would only time out
