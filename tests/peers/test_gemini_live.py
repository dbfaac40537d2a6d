"""The local Gemini Live peer itself: it refuses what the real service would, and everything it
sends is a ``LiveServerMessage`` (so the client tests cannot pass against a dialect)."""

from __future__ import annotations

import base64
from typing import Any

import google.genai.types  # noqa: F401  (a test dependency: missing means failing, not skipping)
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from service.audio.synthetic import SyntheticVoice
from service.peers.gemini_live import (
    GeminiPeerSession,
    GeminiScript,
    GeminiTurn,
    HandleBook,
    LocalGeminiServer,
    check_server_message,
)
from service.peers.gemini_live.session import duration_string
from service.realtime.config import SessionConfig
from service.realtime.gemini.protocol import GeminiLiveProtocol

pytestmark = pytest.mark.network  # real sockets on loopback (or a real Redis)


def setup_message(**overrides: Any) -> dict[str, Any]:
    message = GeminiLiveProtocol(SessionConfig(), model="m").setup()
    message["setup"].update(overrides)
    return message


class Driver:
    """A peer session on a simulated clock; every message it emits is SDK-validated."""

    def __init__(self, script: GeminiScript, book: HandleBook | None = None) -> None:
        self.session = GeminiPeerSession(script, book or HandleBook())
        self.now = 0.0
        self.out: list[dict[str, Any]] = []

    def take(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for message in messages:
            check_server_message(message)
        self.out += messages
        return messages

    def send(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        return self.take(self.session.receive(orjson.dumps(message), self.now))

    def run(self, seconds: float = 10.0) -> list[dict[str, Any]]:
        end, out = self.now + seconds, []
        while (deadline := self.session.next_deadline()) is not None and deadline <= end:
            self.now = max(self.now, deadline)
            out += self.take(self.session.tick(self.now))
        return out


def kinds(messages: list[dict[str, Any]]) -> list[str]:
    names = []
    for message in messages:
        key = next(iter(message))
        names.append(f"{key}.{next(iter(message[key]), '')}" if key == "serverContent" else key)
    return names


def test_a_conversation_speaks_only_sdk_messages() -> None:
    d = Driver(GeminiScript(pace=None, chunk_ms=500))
    out = d.send(setup_message())
    assert kinds(out) == ["setupComplete", "sessionResumptionUpdate"]
    out = d.send(
        {
            "clientContent": {
                "turns": [{"role": "user", "parts": [{"text": "Hi"}]}],
                "turnComplete": True,
            }
        }
    )
    out += d.run()
    assert kinds(out)[0] == "sessionResumptionUpdate"  # resumable: false while generating
    assert out[0]["sessionResumptionUpdate"] == {"newHandle": "", "resumable": False}
    assert kinds(out)[-3:] == [
        "serverContent.generationComplete",
        "serverContent.turnComplete",
        "sessionResumptionUpdate",
    ]
    audio = [m for m in out if "modelTurn" in m.get("serverContent", {})]
    assert len(audio) == 3  # 1.5 s in 500 ms chunks
    blob = audio[0]["serverContent"]["modelTurn"]["parts"][0]["inlineData"]
    assert (
        blob["mimeType"] == "audio/pcm;rate=24000" and len(base64.b64decode(blob["data"])) == 24000
    )


def test_no_interruption_setting_is_honoured() -> None:
    d = Driver(GeminiScript(pace=1.0, greeting=GeminiTurn(text="Long.", duration_ms=3000)))
    ric = {"activityHandling": "NO_INTERRUPTION"}
    d.send(setup_message(realtimeInputConfig=ric))
    d.send(
        {
            "clientContent": {
                "turns": [{"role": "user", "parts": [{"text": "Hi"}]}],
                "turnComplete": True,
            }
        }
    )
    d.run(0.3)
    speech = b"".join(SyntheticVoice(seed=1).synthesize("talking", 500, 16000))
    audio = {"data": base64.b64encode(speech).decode(), "mimeType": "audio/pcm;rate=16000"}
    out = d.send({"realtimeInput": {"audio": audio}})
    assert not [m for m in out if m.get("serverContent", {}).get("interrupted")]


def test_a_handle_resumes_the_conversation_as_it_was() -> None:
    book = HandleBook()
    first = Driver(GeminiScript(pace=None), book)
    first.send(setup_message())
    handle = first.session.handles_sent[-1]
    first.send({"clientContent": {"turns": [], "turnComplete": True}})
    first.run()
    assert first.session.conversation.turns == 1
    second = Driver(GeminiScript(pace=None), book)
    second.send(setup_message(sessionResumption={"handle": handle}))
    assert second.session.resumed and second.session.conversation.turns == 0
    third = Driver(GeminiScript(pace=None), book)
    third.send(setup_message(sessionResumption={"handle": "nope"}))
    assert third.session.close_request.code == 1008


def test_durations() -> None:
    assert [duration_string(s) for s in (1, 0.5, 12.25)] == ["1s", "0.500s", "12.250s"]


async def test_the_peer_refuses_dialects_and_bad_order_over_a_socket() -> None:
    async with LocalGeminiServer(GeminiScript(), api_key="k") as server:
        headers = {"x-goog-api-key": "k"}
        async with connect(server.url, additional_headers=headers) as ws:
            await ws.send(orjson.dumps({"clientContent": {"turnComplete": True}}).decode())
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 1007 and "first" in closed.value.rcvd.reason
        async with connect(server.url, additional_headers=headers) as ws:
            await ws.send(orjson.dumps({"realtime_input": {"audioStreamEnd": True}}).decode())
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 1007
        async with connect(server.url + "?key=k") as ws:
            await ws.send(orjson.dumps(setup_message()).decode())
            assert isinstance(await ws.recv(), bytes)  # binary frames by default (D.1)
        with pytest.raises(InvalidStatus, match="403"):
            async with connect(server.url):
                pass
        with pytest.raises(InvalidStatus, match="404"):
            async with connect(
                f"ws://127.0.0.1:{server.port}/v1/realtime", additional_headers=headers
            ):
                pass
