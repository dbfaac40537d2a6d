"""Serving the app: uvicorn's configuration, the draining server, and an in-loop runner.

``python -m service serve`` runs :class:`DrainingServer`; the demo, the load generator and the
tests run :class:`RunningService` inside their own event loop, on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from types import FrameType

import uvicorn

from service.app import create_app
from service.drain import drain
from service.services import Services
from service.settings import Settings

__all__ = [
    "MAX_WS_MESSAGE_BYTES",
    "DrainingServer",
    "RunningService",
    "free_port",
    "uvicorn_config",
]

# The transport's own limit on one WebSocket message. Up to it, a frame reaches the media
# codec, which refuses anything over MAX_FRAME_BYTES (counted; the call carries on). Over it,
# uvicorn closes the connection with 1009 before we see the frame, and the call ends
# ``frame_too_large`` (recorded and counted too). Twilio's frames are a few hundred bytes.
MAX_WS_MESSAGE_BYTES = 1 << 20


def uvicorn_config(settings: Settings, *, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,  # our structlog set-up owns the root logger
        # Base64 audio barely compresses; deflate would only cost CPU on every frame.
        ws_per_message_deflate=False,
        ws_max_size=MAX_WS_MESSAGE_BYTES,
        lifespan="on",
        # After our own drain (service/drain.py) anything left is a straggler.
        timeout_graceful_shutdown=5,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningService:
    """Serve the app with uvicorn on 127.0.0.1 inside the current event loop."""

    def __init__(self, settings: Settings, port: int) -> None:
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


class DrainingServer(uvicorn.Server):
    """uvicorn, but the first SIGTERM drains calls instead of closing the listener at once."""

    def __init__(self, config: uvicorn.Config, *, drain_timeout: float) -> None:
        super().__init__(config)
        self.drain_timeout = drain_timeout
        self._drain_task: asyncio.Task[int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self._drain_task is not None or self._loop is None:
            super().handle_exit(sig, frame)  # a second signal, or Ctrl-C: exit now
            return
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain_task is not None:
            return
        services: Services = self.config.app.state.services  # type: ignore[union-attr]
        self._drain_task = asyncio.create_task(drain(services, within=self.drain_timeout))
        self._drain_task.add_done_callback(lambda _t: setattr(self, "should_exit", True))
