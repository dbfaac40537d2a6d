"""What our local protocol peers (the OpenAI-Realtime server, the Gemini-Live peer) share: a
``websockets`` server on loopback, started and stopped the same way.

Subclasses provide ``_handle`` (one connection), ``_check_request`` (the handshake) and
``url``; they set ``max_message_bytes`` and ``listening_event`` (the log line's name).
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

__all__ = ["LoopbackPeer"]

log = structlog.get_logger(__name__)


class LoopbackPeer:
    max_message_bytes = 16 * 1024 * 1024
    listening_event = "peer.listening"

    def __init__(self) -> None:
        self._server: Server | None = None
        self.host = "127.0.0.1"
        self.port = 0

    @property
    def url(self) -> str:
        raise NotImplementedError

    async def _handle(self, ws: ServerConnection) -> None:
        raise NotImplementedError

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        return None

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, reuse_port: bool = False
    ) -> None:
        """Listen; ``reuse_port`` lets several processes share one port (SO_REUSEPORT, Linux),
        the kernel spreading connections over them (the load generator's model pool)."""
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._check_request,
            compression=None,  # the real services do not negotiate permessage-deflate
            max_size=self.max_message_bytes,
            reuse_port=reuse_port or None,
        )
        self.host = host
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        log.info(self.listening_event, url=self.url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        if self._server is None:
            await self.start()
        return self

    async def serve_forever(self, host: str, port: int, banner: str) -> None:
        """Listen until cancelled (Ctrl-C), printing ``banner`` with the URL once up."""
        await self.start(host, port)
        print(f"{banner} on {self.url}", flush=True)
        try:
            await asyncio.Future()  # until cancelled
        finally:
            await self.stop()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
