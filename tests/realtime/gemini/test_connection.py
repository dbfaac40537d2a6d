"""GeminiLiveSession against the local Gemini Live peer over real sockets on 127.0.0.1.

The peer validates every client message against the google-genai SDK's Live types (strict)
and every message it sends against ``LiveServerMessage``; a dialect closes the socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import google.genai.types  # noqa: F401  (a test dependency: missing means failing, not skipping)
import pytest

from service.agent.hotline.tools import hotline_registry
from service.agent.profiles import HOTLINE_PROFILE
from service.audio.synthetic import SyntheticVoice
from service.peers.gemini_live import GeminiScript, GeminiTurn, LocalGeminiServer, ToolCall
from service.realtime.backends import session_config
from service.realtime.config import SessionConfig
from service.realtime.events import (
    AgentAudio,
    ModelClosed,
    ModelEvent,
    ResponseDone,
    ResponseStarted,
    SessionResumed,
    SpeechStarted,
    ToolCallCancelled,
    ToolCallRequested,
    Transcript,
)
from service.realtime.gemini.connection import GeminiLiveSession, open_gemini_session
from service.realtime.gemini.protocol import GeminiLiveProtocol
from service.realtime.session import ModelUnavailable
from service.settings import Settings
from tests.support.waiting import eventually

pytestmark = pytest.mark.network  # real sockets on loopback (or a real Redis)

SPEECH = b"".join(SyntheticVoice(seed=7).synthesize("caller speech here", 600, 8000))
SILENCE = bytes(16 * 700)  # 700 ms at 8 kHz: past the 500 ms silence that ends a turn
MARK = b"\x07\x00" * 160  # a recognisable 20 ms frame


class Events:
    """Collects a session's events in the background."""

    def __init__(self, session: GeminiLiveSession) -> None:
        self.items: list[ModelEvent] = []
        self.task = asyncio.create_task(self._run(session))

    async def _run(self, session: GeminiLiveSession) -> None:
        async for event in session.events():
            self.items.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.items if isinstance(e, kind)]

    async def until(self, check: Callable[[], object], within: float = 5.0) -> None:
        await eventually(check, within)

    async def until_event(self, match: Callable[[ModelEvent], bool], within: float = 5.0) -> Any:
        await eventually(lambda: any(match(e) for e in self.items), within)
        return next(e for e in self.items if match(e))


@pytest.fixture
async def sessions() -> AsyncIterator[Callable[..., GeminiLiveSession]]:
    made: list[GeminiLiveSession] = []

    def make(server: LocalGeminiServer, **kwargs: Any) -> GeminiLiveSession:
        protocol = GeminiLiveProtocol(SessionConfig(), model="gemini-test", input_rate=8000)
        kwargs.setdefault("resume_backoff_s", 0.01)
        session = GeminiLiveSession(server.url, {}, protocol, **kwargs)
        made.append(session)
        return session

    yield make
    for session in made:
        await session.close()


async def speak(session: GeminiLiveSession, audio: bytes = SPEECH + SILENCE) -> None:
    for i in range(0, len(audio), 320):
        assert await session.send_audio(audio[i : i + 320])


def done(events: Events, response_id: str) -> Callable[[ModelEvent], bool]:
    return lambda e: isinstance(e, ResponseDone) and e.response_id == response_id


async def test_greeting_audio_arrives(gemini_peer: Any, sessions: Any) -> None:
    server = await gemini_peer(pace=None)
    session = sessions(server)
    await session.open("Greet the caller.")
    assert session.greeting_requested
    assert session.input_format.sample_rate == 8000 and session.audio_format.sample_rate == 24000
    events = Events(session)
    finished = await events.until_event(done(events, "gem_resp_1"))
    assert finished.status == "completed"
    assert events.of(ResponseStarted) == [ResponseStarted("gem_resp_1", "greeting")]
    audio = sum(len(e.audio) for e in events.of(AgentAudio))
    assert audio == 48 * 1500  # the scripted 1.5 s at 24 kHz PCM16
    assert events.of(Transcript)[0].text.startswith("Hello! Thanks for calling.")
    peer_session = server.history[0]
    assert [next(iter(m)) for m in peer_session.received] == ["setup", "clientContent"]
    turns = peer_session.received[1]["clientContent"]["turns"]
    assert turns == [{"role": "user", "parts": [{"text": "Greet the caller."}]}]


async def test_caller_speech_gets_a_model_turn(gemini_peer: Any, sessions: Any) -> None:
    server = await gemini_peer(pace=None, user_transcripts=["Where is my order?"])
    session = sessions(server)
    await session.open(None)
    events = Events(session)
    await speak(session)
    await events.until_event(done(events, "gem_resp_1"))
    assert events.of(ResponseStarted) == [ResponseStarted("gem_resp_1", "")]
    assert Transcript("caller", "gem_user_1", "Where is my order?") in events.items
    audio = [m for m in server.history[0].received if "realtimeInput" in m]
    assert {m["realtimeInput"]["audio"]["mimeType"] for m in audio} == {"audio/pcm;rate=8000"}


async def test_barge_in_interrupts_and_cancels(gemini_peer: Any, sessions: Any) -> None:
    server = await gemini_peer(
        pace=2.0, greeting=GeminiTurn(text="A long greeting.", duration_ms=4000)
    )
    session = sessions(server)
    await session.open("Greet the caller.")
    events = Events(session)
    await events.until(lambda: events.of(AgentAudio))
    await speak(session, SPEECH)
    barge = await events.until_event(lambda e: isinstance(e, SpeechStarted))
    assert barge.received_at > 0
    cut = await events.until_event(done(events, "gem_resp_1"))
    assert (cut.status, cut.reason) == ("cancelled", "turn_detected")
    after = events.items[events.items.index(barge) :]
    assert not [e for e in after if isinstance(e, AgentAudio) and e.response_id == "gem_resp_1"]
    assert sum(len(e.audio) for e in events.of(AgentAudio)) < 48 * 4000


async def test_text_waits_for_the_turn_instead_of_interrupting_it(
    gemini_peer: Any, sessions: Any
) -> None:
    server = await gemini_peer(pace=8.0)
    session = sessions(server)
    await session.open("Greet the caller.")
    events = Events(session)
    await events.until(lambda: events.of(AgentAudio))
    assert await session.send_user_text("The caller pressed 1 2 3.")
    assert await session.create_response(purpose="reply")
    assert not [m for m in server.history[0].received if "clientContent" in m][1:]
    await events.until_event(done(events, "gem_resp_2"))
    assert not events.of(SpeechStarted)  # our own text never looked like a barge-in
    assert [e.status for e in events.of(ResponseDone)] == ["completed", "completed"]
    assert events.of(ResponseStarted)[1].purpose == "reply"
    assert not await session.create_response("Say hold on.", purpose="filler", out_of_band=True)


async def test_tool_call_round_trip(gemini_peer: Any, sessions: Any) -> None:
    call = ToolCall("lookup_order", {"order_number": "4217"}, id="fc_1")
    server = await gemini_peer(
        pace=None,
        greeting=GeminiTurn(text="Let me check.", tool_call=call),
        replies=[GeminiTurn(text="It shipped yesterday.")],
    )
    session = sessions(server)
    await session.open("Greet the caller.")
    events = Events(session)
    request = await events.until_event(lambda e: isinstance(e, ToolCallRequested))
    assert request == ToolCallRequested("fc_1", "lookup_order", '{"order_number":"4217"}')
    assert session.active_response_id is None  # the worker may answer now
    assert await session.function_output("fc_1", '{"status": "shipped"}')
    assert await session.create_response(purpose="tool_answer")
    answer = await events.until_event(
        lambda e: isinstance(e, ResponseStarted) and e.purpose == "tool_answer"
    )
    assert answer == ResponseStarted("gem_resp_2", "tool_answer")
    await events.until_event(done(events, "gem_resp_2"))
    peer_session = server.history[0]
    responses = [m["toolResponse"] for m in peer_session.received if "toolResponse" in m]
    assert responses == [
        {
            "functionResponses": [
                {
                    "id": "fc_1",
                    "name": "lookup_order",
                    "response": {"output": {"status": "shipped"}},
                }
            ]
        }
    ]
    assert peer_session.errors == []


async def test_tool_call_cancellation(gemini_peer: Any, sessions: Any) -> None:
    call = ToolCall("lookup_order", {"order_number": "1"}, id="fc_9", cancel_after_ms=50)
    server = await gemini_peer(pace=None, greeting=GeminiTurn(tool_call=call))
    session = sessions(server)
    await session.open("Greet the caller.")
    events = Events(session)
    assert await events.until_event(lambda e: isinstance(e, ToolCallCancelled)) == (
        ToolCallCancelled(("fc_9",))
    )
    assert not await session.function_output("fc_9", "{}")
    await asyncio.sleep(0.1)
    assert not [m for m in server.history[0].received if "toolResponse" in m]


async def test_go_away_resumes_with_the_newest_handle(gemini_peer: Any, sessions: Any) -> None:
    gap_frames: list[int] = []

    def hook(index: int, message: dict[str, Any]) -> None:
        audio = message.get("realtimeInput", {}).get("audio")
        if audio and audio["data"].startswith("BwAHAAcA"):  # base64 of MARK
            gap_frames.append(index)

    server = await gemini_peer(
        pace=None,
        go_away_after_s=0.2,
        go_away_time_left_s=5.0,
        resume_setup_delay_ms=150,
        on_client_message=hook,
        replies=[GeminiTurn(text="Still here after the reconnect.", duration_ms=800)],
    )
    session = sessions(server)
    await session.open("Greet the caller.")
    events = Events(session)
    await events.until_event(done(events, "gem_resp_1"))
    first = server.history[0]
    second = await server.wait_for_session(2)
    for _ in range(10):  # caller audio while the new connection is being set up
        assert await session.send_audio(MARK)
    resumed = await events.until_event(lambda e: isinstance(e, SessionResumed))
    assert resumed.reason == "go_away" and resumed.gap_ms >= 100
    assert second.resumed and second.conversation is first.conversation
    # The newest resumable handle of the first connection (non-resumable updates came between).
    assert second.setup["sessionResumption"] == {"handle": first.handles_sent[-1]}
    assert len(first.handles_sent) == 2
    await speak(session)
    reply = await events.until_event(done(events, "gem_resp_2"))
    assert reply.status == "completed"
    assert events.of(Transcript)[-1].text == "Still here after the reconnect."
    assert gap_frames == [1] * 10  # all held frames went to the new connection
    assert not events.of(ModelClosed)


async def test_connection_drop_is_resumed(gemini_peer: Any, sessions: Any) -> None:
    server = await gemini_peer(
        pace=4.0, greeting=GeminiTurn(text="Hello there.", drop_after_ms=300)
    )
    session = sessions(server)
    await session.open("Greet the caller.")
    events = Events(session)
    lost = await events.until_event(done(events, "gem_resp_1"))
    assert (lost.status, lost.reason) == ("incomplete", "connection_lost")
    resumed = await events.until_event(lambda e: isinstance(e, SessionResumed))
    assert resumed.reason.startswith("connection_lost")
    assert server.history[1].resumed
    await speak(session)
    await events.until_event(done(events, "gem_resp_2"))
    assert session.resumptions == 1 and not events.of(ModelClosed)


async def test_resumption_gives_up_after_n_attempts(gemini_peer: Any, sessions: Any) -> None:
    server = await gemini_peer(pace=None, reject_resumptions=99)
    session = sessions(server, resume_attempts=3)
    await session.open("Greet the caller.")
    events = Events(session)
    await events.until_event(done(events, "gem_resp_1"))
    await server.drop(server.history[0])
    closed = await events.until_event(lambda e: isinstance(e, ModelClosed))
    assert "3 attempts failed" in closed.reason and "1008" in closed.reason
    assert len(server.history) == 4 and events.items[-1] == closed
    assert not await session.send_audio(MARK)  # nothing is held for a session that is gone


async def test_no_handle_means_no_resumption(gemini_peer: Any, sessions: Any) -> None:
    server = await gemini_peer(pace=None, resumption_updates=False)
    session = sessions(server)
    await session.open(None)
    events = Events(session)
    await server.drop(server.history[0], code=1011)
    closed = await events.until_event(lambda e: isinstance(e, ModelClosed))
    assert "no resumption handle" in closed.reason and len(server.history) == 1


async def test_open_times_out_without_setup_complete(gemini_peer: Any, sessions: Any) -> None:
    server = await gemini_peer(answer_setup=False)
    with pytest.raises(ModelUnavailable, match="setupComplete"):
        await sessions(server, ready_timeout=0.3).open("hi")


async def test_factory_builds_a_session_from_settings(gemini_peer: Any) -> None:
    server = LocalGeminiServer(GeminiScript(pace=None, binary=False), api_key="k-123")
    await server.start()
    try:
        settings = Settings(
            gemini_api_key="k-123",  # type: ignore[arg-type]
            gemini_live_url=server.url,
            gemini_model="gemini-x",
            gemini_input_rate=16000,
        )
        config = session_config(
            settings,
            instructions=HOTLINE_PROFILE.instructions,
            voice=HOTLINE_PROFILE.voice,
            tools=tuple(hotline_registry().openai_tools()),
        )
        session = open_gemini_session(settings, config)
        assert session.headers == {"x-goog-api-key": "k-123"}
        assert session.input_format.sample_rate == 16000
        await session.open("Greet the caller.")  # text frames this time
        events = Events(session)
        await events.until_event(done(events, "gem_resp_1"))
        setup = server.history[0].received[0]["setup"]
        assert setup["model"] == "models/gemini-x"
        names = [d["name"] for d in setup["tools"][0]["functionDeclarations"]]
        assert names == ["verify_caller", "lookup_order"]
        await session.close()
    finally:
        await server.stop()
