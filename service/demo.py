"""The README's main job: the service on loopback, one softphone call, and what Redis kept.

Runs on one machine with no configuration: with ``REDIS_URL`` unset the store is the embedded
in-process Redis; a random Twilio auth token is minted so the call takes the fully signed path.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from pathlib import Path

import uvicorn

from service.app import Services, create_app
from service.logging import configure_logging
from service.settings import Settings

__all__ = ["RunningService", "free_port", "run_demo"]


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


async def run_demo(*, seconds: float = 4.0, record: Path = Path("demo-call.wav")) -> int:
    from service.softphone.client import place_call

    port = free_port()
    base = Settings()
    auth_token = base.twilio_auth_token.get_secret_value() or secrets.token_hex(16)
    settings = Settings(public_url=f"http://127.0.0.1:{port}", twilio_auth_token=auth_token)
    configure_logging(settings.log_format, settings.log_level)
    async with RunningService(settings, port) as service:
        summary = await place_call(
            service.base_url,
            auth_token=auth_token,
            public_url=settings.public_url,
            record=record,
            seconds=seconds,
            dtmf=[(1.0, "42#")],
            status_callback=True,
        )
        services = service.services
        await services.writer.flush(timeout=5.0)
        call = await services.store.get_call(summary.call_sid)
        events = await services.store.get_events(summary.call_sid)
    print("\n== Softphone ==")
    print(summary.to_table())
    print(f"\n== Redis: call {summary.call_sid} ==")
    for key in sorted(call):
        print(f"  {key:<24} {call[key]}")
    print("\n== Redis: call events ==")
    for event in events:
        fields = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("id", "type", "at"))
        print(f"  {event.get('at', ''):<32} {event.get('type', ''):<10} {fields}")
    print(f"\nWhat the caller heard is in {record}.")
    return 0 if call.get("end_reason") else 1
