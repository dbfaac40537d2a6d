"""Asyncio WebSocket front of the local Gemini Live peer (protocols.md D.1).

Thin I/O layer around :class:`~service.peers.gemini_live.session.GeminiPeerSession`: it
checks the handshake, feeds client messages and the clock in, sleeps until the session's next
deadline and sends what it returns — as binary frames by default (D.1: what the real server was
seen to send, and what a client must handle), text frames with ``GeminiScript(binary=False)``.

Endpoint: ``ws://HOST:PORT/ws/google.ai.generativelanguage.v1beta.GenerativeService.
BidiGenerateContent`` (any path ending in ``BidiGenerateContent``). Auth when the server has an
``api_key``: ``x-goog-api-key`` header or ``?key=`` (D.1).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from service.peers.gemini_live.conformance import check_server_message
from service.peers.gemini_live.script import GeminiScript
from service.peers.gemini_live.session import GeminiPeerSession
from service.peers.gemini_live.state import HandleBook
from service.peers.loopback import LoopbackPeer

__all__ = ["BIDI_PATH", "LocalGeminiServer", "main"]

log = structlog.get_logger(__name__)

BIDI_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
HISTORY = 256  # connections remembered after they end (tests inspect them)
POLL_S = 0.05  # wake-up bound, so pushed goAways and their deadlines run without a message


class LocalGeminiServer(LoopbackPeer):
    """A loopback Gemini Live peer driven by a :class:`GeminiScript`.

    ``history`` holds every connection (the last ``HISTORY``), each with its ``received`` log.
    With ``strict`` (default, needs ``google-genai``) every client message is checked against
    the SDK's Live types and a mismatch closes the connection with 1007; every server message
    is checked too, and a mismatch closes with 1011 — a bug here must fail tests loudly.
    """

    max_message_bytes = MAX_MESSAGE_BYTES
    listening_event = "gemini_local.listening"

    def __init__(
        self, script: GeminiScript | None = None, *, api_key: str | None = None, strict: bool = True
    ) -> None:
        super().__init__()
        self.script = script or GeminiScript()
        self.api_key = api_key
        self.strict = strict
        self.book = HandleBook()
        self.sessions: list[GeminiPeerSession] = []
        self.history: deque[GeminiPeerSession] = deque(maxlen=HISTORY)
        self._connections: dict[str, ServerConnection] = {}
        self._count = 0
        self._connected = asyncio.Condition()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{BIDI_PATH}"

    # -- test helpers ------------------------------------------------------------------------
    async def wait_for_session(self, count: int = 1, timeout: float = 5.0) -> GeminiPeerSession:  # noqa: ASYNC109
        """The ``count``-th connection, once it has connected."""
        async with asyncio.timeout(timeout), self._connected:
            await self._connected.wait_for(lambda: len(self.history) >= count)
        return self.history[count - 1]

    async def push(self, session: GeminiPeerSession, message: dict[str, Any]) -> None:
        """Send an arbitrary server message on ``session``'s connection."""
        await self._send(self._connections[session.id], [message])

    async def go_away(self, session: GeminiPeerSession, time_left_s: float = 1.0) -> None:
        loop = asyncio.get_running_loop()
        await self._send(self._connections[session.id], session.go_away(loop.time(), time_left_s))

    async def drop(self, session: GeminiPeerSession, code: int | None = None) -> None:
        """Abort (``None``: no close frame, a network drop) or close one connection."""
        ws = self._connections.get(session.id)
        if ws is None:
            return
        if code is None:
            ws.transport.abort()
        else:
            await ws.close(code)

    # -- connection handling -----------------------------------------------------------------
    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if not parts.path.endswith("BidiGenerateContent"):
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        if self.api_key is None:
            return None
        key = request.headers.get("x-goog-api-key") or parse_qs(parts.query).get("key", [""])[0]
        if key != self.api_key:
            return connection.respond(HTTPStatus.FORBIDDEN, "API key not valid.\n")
        return None

    async def _send(self, ws: ServerConnection, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            if self.strict:
                check_server_message(message)
            data = orjson.dumps(message)
            await ws.send(data, text=not self.script.binary)

    async def _handle(self, ws: ServerConnection) -> None:
        session = GeminiPeerSession(self.script, self.book, index=self._count, strict=self.strict)
        self._count += 1
        self.sessions.append(session)
        self._connections[session.id] = ws
        async with self._connected:
            self.history.append(session)
            self._connected.notify_all()
        bound = log.bind(session_id=session.id, index=session.index)
        bound.info("gemini_local.connected")
        try:
            await self._run(ws, session)
        except ConnectionClosed:
            pass
        except Exception:
            bound.exception("gemini_local.connection_failed")
            with contextlib.suppress(Exception):
                await ws.close(1011, "internal error")
        finally:
            self.sessions.remove(session)
            del self._connections[session.id]
            bound.info("gemini_local.disconnected", received=len(session.received))

    async def _run(self, ws: ServerConnection, session: GeminiPeerSession) -> None:
        loop = asyncio.get_running_loop()
        while session.close_request is None:
            await self._send(ws, session.tick(loop.time()))
            if session.close_request is not None:
                break
            deadline = session.next_deadline()
            timeout = POLL_S if deadline is None else min(POLL_S, max(0.0, deadline - loop.time()))
            try:
                # recv() is cancellation-safe: a timeout loses no message.
                message = await asyncio.wait_for(ws.recv(), timeout)
            except TimeoutError:
                continue
            await self._send(ws, session.receive(message, loop.time()))
        request = session.close_request
        if request.code is None:
            ws.transport.abort()  # a network drop: no close frame
        else:
            await ws.close(request.code, request.reason)


async def _serve_forever(host: str, port: int, api_key: str | None, script: GeminiScript) -> None:
    server = LocalGeminiServer(script, api_key=api_key, strict=False)
    await server.serve_forever(host, port, "Local Gemini Live peer")


def main(
    host: str = "127.0.0.1",
    port: int = 8766,
    *,
    api_key: str | None = None,
    script: GeminiScript | None = None,
) -> None:
    """Run the peer until interrupted (for the demo: GEMINI_LIVE_URL=ws://127.0.0.1:8766/ws/…)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(host, port, api_key, script or GeminiScript()))
