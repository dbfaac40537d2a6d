"""The call worker driving a Gemini Live session (over real sockets, against the local peer):
greeting played to the caller, a tool call run and answered with the matching id, the answer
tagged and played, a barge-in clearing the carrier. Redis is fakeredis: the store is not the
subject here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import google.genai.types  # noqa: F401  (a test dependency: missing means failing, not skipping)
import pytest

from service.agent.tools import ToolRegistry, build_spec
from service.audio.g711 import pcm16_to_ulaw
from service.audio.synthetic import SyntheticVoice
from service.calls.worker import CallWorker
from service.peers.gemini_live import GeminiScript, GeminiTurn, LocalGeminiServer, ToolCall
from service.realtime.config import SessionConfig
from service.realtime.gemini.connection import GeminiLiveSession
from service.realtime.gemini.protocol import GeminiLiveProtocol
from service.store.calls import CallStore
from service.store.writer import StoreWriter
from service.telephony.events import CallerAudio, CallStarted, ClearPlayback, PlayAudio
from tests.support.waiting import eventually


async def check_order(order_number: str) -> dict:
    """Check an order."""
    return {"status": "shipped", "order": order_number}


@pytest.fixture
async def store() -> AsyncIterator[CallStore]:
    redis = fakeredis.FakeAsyncRedis()
    writer = StoreWriter(redis)
    writer.start()
    yield CallStore(redis, writer)
    await writer.close()


async def test_worker_runs_tools_and_barge_in_over_gemini(store: CallStore) -> None:
    call = ToolCall("check_order", {"order_number": "42"}, id="fc_1")
    script = GeminiScript(
        pace=3.0,
        greeting=GeminiTurn(text="Let me check that.", duration_ms=600, tool_call=call),
        replies=[GeminiTurn(text="Order 42 has shipped, it arrives soon.", duration_ms=3000)],
    )
    registry = ToolRegistry([build_spec(check_order)])
    sent: list[Any] = []

    async def send(command: Any) -> None:
        sent.append(command)

    async with LocalGeminiServer(script) as server:
        config = SessionConfig(tools=tuple(registry.openai_tools()))
        session = GeminiLiveSession(server.url, {}, GeminiLiveProtocol(config, model="m"))
        worker = CallWorker(
            CallStarted("CA1", "test", carrier_fields={"stream_sid": "MZ1"}),
            store=store,
            send=send,
            model=session,
            backend="gemini",
            greeting="Greet the caller.",
            tools=registry,
        )
        worker.start()
        try:
            peer = await server.wait_for_session()

            def answered() -> list[dict[str, Any]]:
                return [m["toolResponse"] for m in peer.received if "toolResponse" in m]

            await eventually(answered)
            response = answered()[0]["functionResponses"][0]
            assert response["id"] == "fc_1" and response["name"] == "check_order"
            assert response["response"]["output"]["status"] == "shipped"
            # The answer turn starts playing; the caller talks over it.
            await eventually(lambda: peer.conversation.turns == 2 and worker.ms_out > 1500)
            speech = b"".join(SyntheticVoice(seed=5).synthesize("wait", 500, 8000))
            ulaw = pcm16_to_ulaw(speech)
            for i in range(0, len(ulaw), 160):
                await worker.on_event(CallerAudio(ulaw[i : i + 160]))
            await eventually(lambda: any(isinstance(c, ClearPlayback) for c in sent))
            assert worker.barge_ins == 1
            assert sum(1 for c in sent if isinstance(c, PlayAudio)) > 5
            assert peer.errors == [] and worker.end_reason is None
        finally:
            await worker.close()
