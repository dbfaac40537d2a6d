"""The README's main job: a real conversation on one machine, and what Redis kept of it.

The service runs on loopback with the embedded store (unless ``REDIS_URL`` is set), talking to
the local OpenAI-Realtime-compatible server (unless another backend is configured). The
softphone calls it the way Twilio would, hears the greeting, speaks, lets the agent answer, and
talks over the agent mid-answer. Then the call's event stream is printed from Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from service.app import Services, create_app
from service.logging import configure_logging
from service.realtime.local.hotline_script import HotlineScript
from service.realtime.local.script import ResponseRequest, Script, Turn
from service.realtime.local.server import LocalRealtimeServer
from service.realtime.local.voice import SyntheticVoice
from service.settings import Settings
from service.softphone import CallSummary, Softphone

__all__ = ["ConversationResult", "RunningService", "converse", "free_port", "run_demo"]

CALLER_VOICE = SyntheticVoice(seed=7, level_dbfs=-16.0)
DEMO_SCRIPT = Script(
    greeting=Turn(
        text="Hello, thanks for calling Acme. How can I help you today?", duration_ms=1800
    ),
    replies=(
        Turn(
            text="Of course. Your order shipped yesterday and should arrive on Thursday. "
            "Is there anything else I can help with?",
            duration_ms=4000,
        ),
        Turn(text="Sorry, go ahead.", duration_ms=1200),
    ),
)


class DemoHotlineScript(HotlineScript):
    """The caller's first question goes through the tools; later turns get a short reply."""

    def caller_turn(self, request: ResponseRequest) -> Turn:
        if request.index <= 1:
            return super().caller_turn(request)
        return Turn(text="Of course. It's coming with UPS. Anything else I can help with?")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningService:
    """Serve the app with uvicorn on 127.0.0.1 inside the current event loop."""

    def __init__(self, settings: Settings, port: int) -> None:
        from service.cli import uvicorn_config

        self.app = create_app(settings)
        config = uvicorn_config(settings, host="127.0.0.1", port=port)
        config.app = self.app
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.base_url = f"http://127.0.0.1:{port}"
        self._task: asyncio.Task[None] | None = None

    @property
    def services(self) -> Services:
        return self.app.state.services

    async def __aenter__(self) -> RunningService:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():
                # uvicorn exits (SystemExit) when the lifespan fails; its log says why.
                with contextlib.suppress(BaseException):
                    self._task.result()
                raise RuntimeError("the service stopped during start-up")
            await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task


@dataclass
class ConversationResult:
    phone: Softphone
    summary: CallSummary
    barge_in_at_s: float


async def converse(
    service: RunningService,
    auth_token: str,
    *,
    record: Path | None = None,
    **phone_options: Any,
) -> ConversationResult:
    """Greeting → caller question → agent answer → caller talks over the answer → goodbye."""
    phone = Softphone(
        service.base_url,
        auth_token=auth_token,
        public_url=service.services.settings.public_url,
        seconds=12.0,
        record=record,
        status_callback=True,
        **phone_options,
    )
    await phone.dial()
    await phone.connect()

    def speak(ms: int, text: str) -> None:
        phone.speak(b"".join(CALLER_VOICE.synthesize(text, ms, 8000)), sample_rate=8000)

    # Let the greeting play out, then ask (about 1.4 s of speech).
    await phone.wait_for_agent_audio(500, timeout=8)
    await phone.wait_for(lambda p: p.playback.buffered_ms == 0, timeout=8)
    await asyncio.sleep(0.4)
    speak(1600, "Hi, where is my order 4 2 1 7? My ZIP code is 9 4 1 0 7.")
    # Wait for the answer to be well under way, then talk over it.
    await phone.wait_for(lambda p: p.caller_ms_pending == 0, timeout=5)
    played_before = phone.playback.played_ms
    await phone.wait_for(lambda p: p.playback.played_ms > played_before + 1500, timeout=8)
    barge_in_at = phone.elapsed
    speak(900, "Wait, which carrier?")
    summary = await phone.finished()
    return ConversationResult(phone, summary, barge_in_at)


async def run_demo(*, seconds: float = 12.0, record: Path = Path("demo-call.wav")) -> int:
    del seconds  # the scripted conversation sets its own length
    port = free_port()
    base = Settings()
    auth_token = base.twilio_auth_token.get_secret_value() or secrets.token_hex(16)
    configure_logging(base.log_format, base.log_level)
    async with contextlib.AsyncExitStack() as stack:
        overrides: dict[str, object] = {}
        if base.realtime_backend == "local":
            model = await stack.enter_async_context(LocalRealtimeServer(DemoHotlineScript()))
            overrides["local_realtime_url"] = model.url
        settings = Settings(
            public_url=f"http://127.0.0.1:{port}", twilio_auth_token=auth_token, **overrides
        )  # type: ignore[arg-type]
        service = await stack.enter_async_context(RunningService(settings, port))
        result = await converse(service, auth_token, record=record)
        services = service.services
        await services.writer.flush(timeout=5.0)
        call = await services.store.get_call(result.summary.call_sid)
        events = await services.store.get_events(result.summary.call_sid)
        audit = (
            await services.audit.call_entries(services.redis, result.summary.call_sid)
            if services.audit is not None
            else []
        )
    print("\n== Softphone ==")
    print(result.summary.to_table())
    print(f"\n== Redis: call {result.summary.call_sid} ==")
    for key in sorted(call):
        print(f"  {key:<24} {call[key]}")
    print("\n== Redis: call events ==")
    for event in events:
        fields = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("id", "type", "at"))
        print(f"  {event.get('at', ''):<26} {event.get('type', ''):<11} {fields}")
    print("\n== Redis: tool-call audit ==")
    for entry in audit:
        skip = ("id", "at", "call_sid", "call_id", "name", "state")
        fields = " ".join(f"{k}={v}" for k, v in entry.items() if k not in skip)
        print(f"  {entry.get('at', ''):<26} {entry['name']:<14} {entry['state']:<12} {fields}")
    print(f"\nWhat the caller heard is in {record}.")
    return 0 if call.get("end_reason") else 1
