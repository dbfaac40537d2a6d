"""Asyncio WebSocket front of the local GA Realtime server (protocols.md B.0).

Thin I/O layer: it authenticates the handshake, feeds client messages and the clock into a
sans-I/O :class:`~service.modelserver.session.RealtimeSession`, sleeps until the session's
next pacing deadline, and sends what the session returns.

Endpoint: ``ws://HOST:PORT/<anything>/realtime?model=…`` — ``/v1/realtime`` (OpenAI) and
``/openai/v1/realtime?model=<deployment>`` (Azure) alike. Auth: ``Authorization: Bearer <key>``
or ``api-key: <key>``; checked only when the server was given an ``api_key``.

Memory: per connection, its session (bounded as :mod:`.session` states) and at most one
pending ``recv``; after it ends, the last ``HISTORY`` sessions stay for tests to inspect. An
``engine`` is shared by all connections and loaded once (:meth:`SpeechEngine.warm`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import orjson
import structlog
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from service.modelserver.protocol import ProtocolError, error_event, validate_server_event
from service.modelserver.script import Script
from service.modelserver.session import RealtimeSession
from service.peers.loopback import LoopbackPeer

if TYPE_CHECKING:
    from service.modelserver.engine.engine import SpeechEngine

__all__ = ["LocalRealtimeServer", "main"]

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # a 15 MiB base64 append plus its JSON envelope (B.7)
HISTORY = 256  # sessions remembered after they end (tests inspect them)


def _json_error(
    connection: ServerConnection, status: HTTPStatus, error: dict[str, Any]
) -> Response:
    response = connection.respond(status, orjson.dumps({"error": error}).decode())
    response.headers["Content-Type"] = "application/json"
    return response


class LocalRealtimeServer(LoopbackPeer):
    """A loopback OpenAI Realtime (GA) server driven by a :class:`Script`, or with ``engine``
    by the offline speech engine (shared by every connection; each session attaches to it).

    ``sessions`` are the live sessions; ``history`` every session in connect order (the last
    ``HISTORY``), each with its ``received`` client-event log and ``conversation``. With
    ``strict`` (default) every outgoing event is checked against the SDK's server event union
    and a mismatch closes the connection with 1011 — a bug here must fail tests loudly.
    """

    max_message_bytes = MAX_MESSAGE_BYTES
    listening_event = "realtime_local.listening"

    def __init__(
        self,
        script: Script | None = None,
        *,
        engine: SpeechEngine | None = None,
        api_key: str | None = None,
        strict: bool = True,
        max_items: int = 512,
    ) -> None:
        super().__init__()
        self.script = script or Script()
        self.engine = engine
        self.api_key = api_key
        self.strict = strict
        self.max_items = max_items
        self.sessions: list[RealtimeSession] = []
        self.history: deque[RealtimeSession] = deque(maxlen=HISTORY)
        self._connections: dict[str, ServerConnection] = {}
        self._connected = asyncio.Condition()

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The GA endpoint, e.g. ``ws://127.0.0.1:PORT/v1/realtime``."""
        return f"ws://{self.host}:{self.port}/v1/realtime"

    @property
    def base_url(self) -> str:
        """For ``AsyncOpenAI(websocket_base_url=…)``: ``ws://127.0.0.1:PORT/v1``."""
        return f"ws://{self.host}:{self.port}/v1"

    # -- test helpers ----------------------------------------------------------------------
    async def wait_for_session(
        self,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> RealtimeSession:
        """The ``count``-th session to connect, once it has."""
        async with asyncio.timeout(timeout), self._connected:
            await self._connected.wait_for(lambda: len(self.history) >= count)
        return self.history[count - 1]

    async def push(self, session: RealtimeSession, event: dict[str, Any]) -> None:
        """Send an arbitrary server event on ``session``'s connection (``event_id`` added)."""
        event = {"event_id": session.ids.new("event"), **event}
        await self._send(self._connections[session.id], [event])

    async def push_raw(self, session: RealtimeSession, frame: str | bytes) -> None:
        """Send one frame exactly as given, unchecked: fault injection (malformed or huge
        events a real server might send)."""
        await self._connections[session.id].send(frame)

    async def close_session(self, session: RealtimeSession, code: int | None = 1000) -> None:
        """Close (``code``) or abort (None) one session's connection."""
        ws = self._connections[session.id]
        if code is None:
            ws.transport.abort()
        else:
            await ws.close(code)

    # -- connection handling ---------------------------------------------------------------
    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path.rstrip("/")
        if not path.endswith("/realtime"):
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        if self.api_key is None:
            return None
        auth = request.headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else request.headers.get("api-key")
        if key != self.api_key:
            return _json_error(
                connection,
                HTTPStatus.UNAUTHORIZED,
                {
                    "message": "Incorrect API key provided.",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                    "param": None,
                },
            )
        return None

    async def _send(self, ws: ServerConnection, events: list[dict[str, Any]]) -> None:
        for event in events:
            if self.strict:
                validate_server_event(event)
            await ws.send(orjson.dumps(event).decode())

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        query = parse_qs(urlsplit(ws.request.path).query)
        session = RealtimeSession(
            self.script,
            engine=self.engine,
            model=query.get("model", ["gpt-realtime"])[0],
            max_items=self.max_items,
        )
        self.sessions.append(session)
        self._connections[session.id] = ws
        async with self._connected:
            self.history.append(session)
            self._connected.notify_all()
        bound = structlog.get_logger(__name__).bind(session_id=session.id)
        bound.info("realtime_local.connected", path=ws.request.path)
        try:
            if ws.request.headers.get("OpenAI-Beta"):
                await self._reject_beta(ws, session)
                return
            await self._run(ws, session)
        except ConnectionClosed:
            pass
        except Exception:
            bound.exception("realtime_local.connection_failed")
            with contextlib.suppress(Exception):
                await ws.close(1011, "internal error")
        finally:
            session.close()  # stops engine work (synthesis, transcription) for this call
            self.sessions.remove(session)
            del self._connections[session.id]
            bound.info("realtime_local.disconnected", received=len(session.received))

    async def _reject_beta(self, ws: ServerConnection, session: RealtimeSession) -> None:
        """B.0: since the beta retirement the server closes beta sessions with 4000."""
        err = ProtocolError(
            "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.",
            code="beta_api_shape_disabled",
        )
        await self._send(ws, [error_event(session.ids, err, None)])
        await ws.close(4000, "beta_api_shape_disabled")

    async def _run(self, ws: ServerConnection, session: RealtimeSession) -> None:
        loop = asyncio.get_running_loop()
        await self._send(ws, session.open(loop.time()))
        if session.engine is not None:
            await self._run_engine(ws, session)
        else:
            await self._run_scripted(ws, session)
        request = session.close_request
        if request is None:
            return
        if request.code is None:
            ws.transport.abort()  # a network drop: no close frame
        else:
            await ws.close(request.code, request.reason)

    async def _run_scripted(self, ws: ServerConnection, session: RealtimeSession) -> None:
        loop = asyncio.get_running_loop()
        while session.close_request is None:
            await self._send(ws, session.tick(loop.time()))
            if session.close_request is not None:
                break
            deadline = session.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                # recv() is cancellation-safe: a timeout loses no message.
                message = await asyncio.wait_for(ws.recv(), timeout)
            except TimeoutError:
                continue
            await self._send(ws, session.receive(message, loop.time()))

    async def _run_engine(self, ws: ServerConnection, session: RealtimeSession) -> None:
        """As :meth:`_run_scripted`, but also woken by engine threads (transcript ready,
        decision made, sentence synthesized) through the session's waker."""
        loop = asyncio.get_running_loop()
        woken = asyncio.Event()

        def wake() -> None:  # called from engine threads
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(woken.set)

        session.set_waker(wake)
        receiving: asyncio.Task[Any] | None = None
        try:
            while session.close_request is None:
                woken.clear()  # before tick: a wake-up during tick is not lost
                await self._send(ws, session.tick(loop.time()))
                if session.close_request is not None:
                    break
                deadline = session.next_deadline()
                timeout = None if deadline is None else max(0.0, deadline - loop.time())
                if receiving is None:
                    receiving = asyncio.ensure_future(ws.recv())
                waking = asyncio.ensure_future(woken.wait())
                done, _ = await asyncio.wait(
                    {receiving, waking}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                waking.cancel()
                if receiving in done:
                    message, receiving = receiving.result(), None  # may raise ConnectionClosed
                    await self._send(ws, session.receive(message, loop.time()))
        finally:
            if receiving is not None:
                receiving.cancel()


async def _serve_forever(
    host: str, port: int, api_key: str | None, script: Script, engine: SpeechEngine | None
) -> None:
    if engine is not None:  # load the models before the first call, not during it
        print("Loading the local speech engine's models…", flush=True)
        await asyncio.to_thread(engine.warm)
    server = LocalRealtimeServer(script, engine=engine, api_key=api_key, strict=False)
    await server.serve_forever(host, port, "Local OpenAI Realtime (GA) server")


def main(
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    api_key: str | None = None,
    script: Script | None = None,
    engine: SpeechEngine | None = None,
) -> None:
    """Run the server until interrupted (``python -m service realtime-server``). Given
    neither a ``script`` nor an ``engine``: the speech engine or the scripted server, per
    ``LOCAL_ENGINE`` (:func:`service.modelserver.engine.default_engine`)."""
    if script is None and engine is None:
        from service.modelserver.engine import default_engine
        from service.settings import load_settings

        engine = default_engine(load_settings())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(host, port, api_key, script or Script(), engine))
