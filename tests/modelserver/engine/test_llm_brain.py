"""The LLM brain streams: against a local OpenAI-compatible chat-completions stub on
127.0.0.1 (real HTTP, server-sent events), the engine's first audio comes once the first
sentence has arrived — not after the whole completion — and streamed tool calls are
assembled and made after the words."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from service.modelserver.engine import SpeechEngine
from service.modelserver.engine.hotline_brain import HotlineBrain
from service.modelserver.engine.llm_brain import LlmBrain, LlmConfig
from service.modelserver.engine.tts import SyntheticStreamingVoice
from service.modelserver.script import Script
from tests.support.session_driver import SessionDriver, only

pytestmark = pytest.mark.network  # a real HTTP server on 127.0.0.1

FIRST_TOKEN_S = 0.4  # the stub model's time to first token
PAUSE_S = 1.5  # and its pause before the second sentence
SAY = f'Greet the caller by saying exactly: "{"Hello there, this is the order line."}"'
TOOLS = [
    {
        "type": "function",
        "name": "lookup_order",
        "description": "d",
        "parameters": {"type": "object"},
    }
]


def _chunk(delta: dict[str, Any]) -> bytes:
    body = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
    return b"data: " + orjson.dumps(body) + b"\n\n"


class Stub:
    """A chat-completions endpoint that streams a canned reply with realistic pauses."""

    def __init__(self, replies: list[list[tuple[float, dict[str, Any]]]]) -> None:
        self.replies = replies
        self.bodies: list[dict[str, Any]] = []
        self.finished_at: list[float] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.bodies.append(body)
                reply = stub.replies[len(stub.bodies) - 1]
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for delay, delta in reply:
                    time.sleep(delay)
                    self.wfile.write(_chunk(delta))
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                stub.finished_at.append(time.monotonic())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Stub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def driver(brain: Any) -> SessionDriver:
    engine = SpeechEngine(
        transcriber=None,  # type: ignore[arg-type]
        voice=SyntheticStreamingVoice(),
        brain_factory=brain,
        vad="energy",
    )
    d = SessionDriver(Script(), engine=engine)
    d.update(tools=TOOLS)
    return d


def first_audio_after(d: SessionDriver, event: dict[str, Any], timeout: float = 10.0) -> float:
    """Wall seconds from sending ``event`` to the first audio delta."""
    started = time.monotonic()
    d.send(event)
    while time.monotonic() < started + timeout:
        if any(e["type"] == "response.output_audio.delta" for e in d.events):
            return time.monotonic() - started
        time.sleep(0.002)
        d.take(d.session.tick(d.now))
    raise AssertionError("no audio")


@pytest.fixture
def words() -> Iterator[Stub]:
    reply = [
        (FIRST_TOKEN_S, {"role": "assistant", "content": ""}),
        (0.0, {"content": "Hello"}),
        (0.05, {"content": " there, this is"}),
        (0.05, {"content": " the order line. "}),
        (PAUSE_S, {"content": "How can I help"}),
        (0.05, {"content": " you today?"}),
        (
            0.0,
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_s1",
                        "function": {"name": "lookup_order", "arguments": ""},
                    }
                ]
            },
        ),
        (0.0, {"tool_calls": [{"index": 0, "function": {"arguments": '{"order_'}}]}),
        (0.0, {"tool_calls": [{"index": 0, "function": {"arguments": 'number": "4217"}'}}]}),
    ]
    with Stub([reply]) as stub:
        yield stub


def test_first_audio_is_the_rule_brain_plus_first_token_not_the_whole_reply(
    words: Stub,
) -> None:
    rule = first_audio_after(
        driver(HotlineBrain), {"type": "response.create", "response": {"instructions": SAY}}
    )
    llm = driver(lambda: LlmBrain(LlmConfig(words.url, model="stub")))
    took = first_audio_after(llm, {"type": "response.create"})
    sent_at = time.monotonic() - took
    llm.finish(timeout=15)
    assert words.bodies[0]["stream"] is True and words.bodies[0]["model"] == "stub"
    # Streamed: the first sentence plays while the stub is still pausing before the second.
    assert took < words.finished_at[0] - sent_at - PAUSE_S / 2, (took, rule)
    assert took <= rule + FIRST_TOKEN_S + 0.5, (took, rule)  # 0.5 s: a loaded CI machine
    transcripts = [e["transcript"] for e in llm.events if e["type"].endswith("transcript.done")]
    assert transcripts == ["Hello there, this is the order line. How can I help you today?"]
    call = only(llm.events, "response.function_call_arguments.done")
    assert (call["call_id"], call["name"]) == ("call_s1", "lookup_order")
    assert orjson.loads(call["arguments"]) == {"order_number": "4217"}


def test_a_reply_of_tool_calls_only_and_a_text_only_session() -> None:
    calls_only = [
        (0.05, {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "lookup_order"}}]}),
        (0.0, {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
    ]
    text = [(0.05, {"content": "Sure."}), (0.1, {"content": " Anything else?"})]
    with Stub([calls_only, text]) as stub:
        d = driver(lambda: LlmBrain(LlmConfig(stub.url)))
        d.send({"type": "response.create"})
        d.finish(timeout=15)
        assert only(d.events, "response.function_call_arguments.done")["call_id"] == "c1"
        assert not [e for e in d.events if e["type"] == "response.output_audio.delta"]
        d.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
        d.finish(timeout=15)
        done = [e for e in d.events if e["type"] == "response.output_text.done"]
        assert done[-1]["text"] == "Sure. Anything else?"
