"""The local Realtime server over real sockets on 127.0.0.1 (``websockets`` client and the
``openai`` SDK's own realtime client). Every server event received is validated against the
SDK's server event union (strictly, see ``validate_server_event``)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from openai import AsyncOpenAI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from service.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from service.audio.vad import EnergyVad, VoiceStarted
from service.modelserver import LocalRealtimeServer, Script, SyntheticVoice, Turn
from service.modelserver.protocol import validate_server_event

pytestmark = pytest.mark.network  # real sockets on loopback (or a real Redis)

KEY = "sk-local-test-key"
PCMU = {"type": "audio/pcmu"}
Event = dict[str, Any]


class Client:
    """A raw GA client: JSON over a websocket, every received event validated."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[Event] = []

    async def send(self, event: Event) -> None:
        await self.ws.send(orjson.dumps(event).decode())

    async def recv(self, timeout: float = 5.0) -> Event:  # noqa: ASYNC109
        event = orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        validate_server_event(event)
        self.events.append(event)
        return event

    async def until(self, kind: str, timeout: float = 5.0) -> list[Event]:  # noqa: ASYNC109
        """Events up to and including the next ``kind``."""
        out: list[Event] = []
        async with asyncio.timeout(timeout):
            while True:
                out.append(await self.recv())
                if out[-1]["type"] == kind:
                    return out

    async def stream_pcmu(self, pcm8k: bytes, chunk_ms: int = 20, speedup: float = 10.0) -> None:
        step = 8 * chunk_ms * 2
        for i in range(0, len(pcm8k), step):
            audio = base64.b64encode(pcm16_to_ulaw(pcm8k[i : i + step])).decode()
            await self.send({"type": "input_audio_buffer.append", "audio": audio})
            await asyncio.sleep(chunk_ms / 1000 / speedup)


def speech(ms: int) -> bytes:
    return b"".join(SyntheticVoice(seed=11).synthesize("the caller talks", ms, 8000))


def silence(ms: int) -> bytes:
    return bytes(8 * ms * 2)


@pytest.fixture
async def server() -> AsyncIterator[LocalRealtimeServer]:
    async with LocalRealtimeServer(Script(pace=8.0), api_key=KEY) as running:
        yield running


async def open_client(server: LocalRealtimeServer, **kwargs: Any) -> Client:
    headers = kwargs.pop("headers", {"Authorization": f"Bearer {KEY}"})
    ws = await connect(server.url + "?model=gpt-realtime", additional_headers=headers, **kwargs)
    client = Client(ws)
    assert (await client.recv())["type"] == "session.created"
    return client


async def test_handshake_auth_path_and_no_compression(server: LocalRealtimeServer) -> None:
    client = await open_client(server)
    assert client.ws.response is not None
    assert "Sec-WebSocket-Extensions" not in client.ws.response.headers  # deflate offered, refused
    assert client.events[0]["session"]["model"] == "gpt-realtime"
    await client.ws.close()
    azure = f"ws://127.0.0.1:{server.port}/openai/v1/realtime?model=my-deployment"
    async with connect(azure, additional_headers={"api-key": KEY}) as ws:
        created = orjson.loads(await ws.recv())
        validate_server_event(created)
        assert created["session"]["model"] == "my-deployment"
    for headers in ({"Authorization": "Bearer wrong"}, {}):
        with pytest.raises(InvalidStatus) as caught:
            await connect(server.url, additional_headers=headers)
        assert caught.value.response.status_code == 401
        assert b"invalid_api_key" in caught.value.response.body
    with pytest.raises(InvalidStatus) as caught:
        await connect(f"ws://127.0.0.1:{server.port}/v1/other", additional_headers={"api-key": KEY})
    assert caught.value.response.status_code == 404


async def test_pcmu_conversation_end_to_end(server: LocalRealtimeServer) -> None:
    client = await open_client(server)
    await client.send(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "instructions": "Be brief.",
                "audio": {"input": {"format": PCMU}, "output": {"format": PCMU, "voice": "marin"}},
            },
        }
    )
    updated = (await client.until("session.updated"))[-1]["session"]
    assert updated["audio"]["input"]["format"] == PCMU == updated["audio"]["output"]["format"]

    # 1. The greeting: response.create → μ-law deltas → response.done.
    await client.send({"type": "response.create"})
    greeting = await client.until("response.done")
    ulaw = b"".join(
        base64.b64decode(e["delta"]) for e in greeting if e["type"] == "response.output_audio.delta"
    )
    assert len(ulaw) == 1500 * 8  # 1.5 s at 8 kHz, one byte per sample
    assert greeting[-1]["response"]["status"] == "completed"
    # What we were sent is speech the caller's side can hear (and a VAD would detect).
    vad_events = EnergyVad(8000).process(ulaw_to_pcm16(ulaw) + silence(600))
    assert isinstance(vad_events[0], VoiceStarted)

    # 2. The caller speaks, then is silent: VAD turn, commit, automatic answer.
    await client.stream_pcmu(silence(400) + speech(1000) + silence(800))
    turn = await client.until("response.done")
    kinds = [e["type"] for e in turn]
    for expected in (
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "response.created",
    ):
        assert expected in kinds
    assert kinds.index("input_audio_buffer.committed") < kinds.index("response.created")
    started = next(e for e in turn if e["type"] == "input_audio_buffer.speech_started")
    # The input clock counts only audio we sent: 400 ms of silence minus 300 ms of padding.
    assert abs(started["audio_start_ms"] - 100) <= 40

    # 3. Barge-in: the caller talks over the next answer → cancelled, turn_detected.
    server.script.pace = 1.0  # a 3 s answer in real time: the caller surely talks over it
    await client.send({"type": "response.create"})
    await client.until("response.output_audio.delta")
    await client.stream_pcmu(speech(400), speedup=1.0)
    barge = await client.until("response.done")
    kinds = [e["type"] for e in barge]
    assert kinds.index("input_audio_buffer.speech_started") < kinds.index("response.done")
    assert barge[-1]["response"]["status"] == "cancelled"
    assert barge[-1]["response"]["status_details"]["reason"] == "turn_detected"

    # The server kept a bounded log of what we sent, for tests to assert on.
    session = server.history[0]
    assert session.received[0]["type"] == "session.update"
    await client.ws.close()


async def test_truncate_is_validated_and_observed(server: LocalRealtimeServer) -> None:
    seen: list[Event] = []
    server.script.on_client_event = lambda _sid, event: seen.append(event)
    client = await open_client(server)
    await client.send({"type": "response.create"})
    item_id = (await client.until("response.done"))[-1]["response"]["output"][0]["id"]
    await client.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 2000,
        }
    )
    error = (await client.until("error"))[-1]["error"]
    assert error["message"] == "Audio content of 1500ms is already shorter than 2000ms"
    await client.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 640,
        }
    )
    assert (await client.until("conversation.item.truncated"))[-1]["audio_end_ms"] == 640
    assert [e["audio_end_ms"] for e in seen if e["type"] == "conversation.item.truncate"] == [
        2000,
        640,
    ]
    await client.ws.close()


async def test_bad_input_does_not_end_the_connection(server: LocalRealtimeServer) -> None:
    client = await open_client(server)
    await client.ws.send("this is not json")
    assert (await client.recv())["error"]["code"] == "invalid_json"
    await client.send({"type": "session.update", "session": {"modalities": ["audio"]}})
    assert (await client.recv())["error"]["param"] == "session.type"
    await client.send({"type": "response.cancel", "event_id": "c1"})
    error = (await client.recv())["error"]
    assert (error["code"], error["event_id"]) == ("response_cancel_not_active", "c1")
    await client.send({"type": "input_audio_buffer.clear"})
    assert (await client.recv())["type"] == "input_audio_buffer.cleared"
    await client.ws.close()


async def test_scripted_drops_and_silent_session_update() -> None:
    script = Script(
        greeting=Turn(text="Hello", duration_ms=2000, drop_after_ms=500),
        answer_session_update=False,
        pace=None,
    )
    async with LocalRealtimeServer(script) as server:
        client = await open_client(server, headers={})
        await client.send({"type": "session.update", "session": {"type": "realtime"}})
        with pytest.raises(TimeoutError):  # a server that never answers session.update
            await client.recv(timeout=0.3)
        await client.send({"type": "response.create"})
        with pytest.raises(ConnectionClosed) as caught:
            await client.until("response.done")
        assert caught.value.rcvd is None  # aborted: no close frame, like a network drop
        deltas = [e for e in client.events if e["type"] == "response.output_audio.delta"]
        assert sum(len(base64.b64decode(e["delta"])) for e in deltas) == 500 * 48
        assert len(server.history) == 1 and server.sessions == []

    script = Script(greeting=Turn(drop_after_ms=0, drop_close_code=1011))
    async with LocalRealtimeServer(script) as server:
        client = await open_client(server, headers={})
        await client.send({"type": "response.create"})
        with pytest.raises(ConnectionClosed) as caught:
            await client.until("response.done")
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 1011
        assert [e["type"] for e in client.events][-1] == "rate_limits.updated"


async def test_push_and_beta_header() -> None:
    async with LocalRealtimeServer() as server:
        client = await open_client(server, headers={})
        session = await server.wait_for_session()
        await server.push(
            session,
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "code": "session_expired",
                    "message": "Your session hit the maximum duration of 60 minutes.",
                },
            },
        )
        assert (await client.recv())["error"]["code"] == "session_expired"
        await client.ws.close()
        async with connect(server.url, additional_headers={"OpenAI-Beta": "realtime=v1"}) as ws:
            error = orjson.loads(await ws.recv())  # no session.created for a beta client
            validate_server_event(error)
            assert error["error"]["code"] == "beta_api_shape_disabled"
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 4000


async def test_the_openai_sdk_client_talks_to_it(server: LocalRealtimeServer) -> None:
    """Compatibility with the SDK's GA client (URL building, headers, event parsing)."""
    client = AsyncOpenAI(api_key=KEY, websocket_base_url=server.base_url)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(
            session={"type": "realtime", "audio": {"output": {"format": PCMU}}}
        )
        await conn.response.create()
        kinds = []
        async for event in conn:
            kinds.append(event.type)
            if event.type == "response.done":
                assert event.response.status == "completed"
                break
    assert kinds[:2] == ["session.created", "session.updated"]
    assert "response.output_audio.delta" in kinds
