"""The asyncio side of an OpenAI-Realtime-protocol session (OpenAI, Azure, the local engine).

Thin on purpose: it moves frames between a ``websockets`` connection and the sans-I/O
``OpenAIRealtimeProtocol``, and turns every way the socket can fail into a ``ModelClosed``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from service.realtime.events import (
    ModelAudioFormat,
    ModelClosed,
    ModelError,
    ModelEvent,
    Purpose,
    ReplayItem,
    SessionReady,
)
from service.realtime.openai.protocol import OpenAIRealtimeProtocol
from service.realtime.session import ModelUnavailable
from service.realtime.wire import MAX_MESSAGE_BYTES

# ModelUnavailable lives in realtime.session; re-exported for older imports.
__all__ = ["ModelUnavailable", "ProtocolSession", "RealtimeConnection"]

log = structlog.get_logger(__name__)


class ProtocolSession:
    """The worker's view (``service.realtime.session.ModelSession``) of any transport that
    carries the OpenAI protocol core's events: each method builds one client event and hands
    it to ``send``. ``RealtimeConnection`` sends over a WebSocket; a test can wire the core
    straight to a server core (tests/support/wired_call.py)."""

    protocol: OpenAIRealtimeProtocol
    detects_speech_during_playback = True  # B.6: server VAD hears the caller all the time
    can_reopen = True  # a dropped session can be replaced by a fresh one with a replay

    async def send(self, event: dict[str, Any]) -> bool:
        raise NotImplementedError

    @property
    def audio_format(self) -> ModelAudioFormat:
        return self.protocol.audio_format

    @property
    def input_format(self) -> ModelAudioFormat:
        # B.1: OpenAI takes the same format both ways (24 kHz PCM16 or μ-law).
        return self.protocol.audio_format

    @property
    def active_response_id(self) -> str | None:
        return self.protocol.active_response_id

    async def send_audio(self, audio: bytes) -> bool:
        return await self.send(self.protocol.append_audio(audio))

    async def create_response(
        self,
        instructions: str | None = None,
        *,
        purpose: Purpose | None = None,
        out_of_band: bool = False,
    ) -> bool:
        return await self.send(
            self.protocol.create_response(instructions, purpose=purpose, out_of_band=out_of_band)
        )

    async def send_user_text(self, text: str) -> bool:
        return await self.send(self.protocol.user_text(text))

    async def truncate(self, item_id: str, audio_end_ms: int) -> bool:
        return await self.send(self.protocol.truncate(item_id, audio_end_ms))

    async def cancel_response(self) -> bool:
        return await self.send(self.protocol.cancel_response())

    async def function_output(self, call_id: str, output: str) -> bool:
        return await self.send(self.protocol.function_output(call_id, output))

    async def replay(self, items: Sequence[ReplayItem]) -> bool:
        """Hand an earlier session's conversation to this one, in order (B.3 items)."""
        for item in items:
            if not await self.send(self.protocol.replay_item(item)):
                return False
        return True


class RealtimeConnection(ProtocolSession):
    """One model session for one call. Holds one socket and the protocol state."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        protocol: OpenAIRealtimeProtocol,
        *,
        ready_timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.headers = headers
        self.protocol = protocol
        self.ready_timeout = ready_timeout
        self._ws: ClientConnection | None = None
        self._early: list[ModelEvent] = []
        self._opening: asyncio.Task[None] | None = None
        self.greeting_requested = False  # the agent speaks first (B.3 "model speaks first")
        self.sent_events = 0

    async def open(self, greeting: str | None = None) -> None:
        """Open the session (and ask for the greeting) once; later calls wait for that attempt.

        Pre-warming calls this at the voice webhook and the worker again at stream start: the
        greeting's audio waits in the socket's receive buffer until the worker reads it.
        """
        if self._opening is None:
            self._opening = asyncio.create_task(self._open(greeting))
        await asyncio.shield(self._opening)

    async def _open(self, greeting: str | None) -> None:
        await self._connect()
        if greeting:
            self.greeting_requested = await self.create_response(greeting, purpose="greeting")

    async def _connect(self) -> None:
        """Connect, send ``session.update`` and wait for ``session.updated`` (B.1, B.8)."""
        try:
            async with asyncio.timeout(self.ready_timeout):
                # Base64 audio barely compresses: permessage-deflate would only burn CPU.
                self._ws = await connect(
                    self.url,
                    additional_headers=self.headers,
                    compression=None,
                    max_size=MAX_MESSAGE_BYTES,
                    # Room for a pre-warmed greeting (a few seconds of deltas) while no one
                    # reads yet: ≤ 64 frames, a few hundred KB per call in practice and
                    # 64 × MAX_MESSAGE_BYTES at worst (a model sending maximal messages).
                    max_queue=64,
                    ping_interval=20,
                    open_timeout=None,
                    # A peer stuck sending to us must not hold a hang-up for long.
                    close_timeout=2,
                )
                await self.send(self.protocol.session_update())
                while True:
                    frame = await self._ws.recv()
                    events = self.protocol.receive(frame)
                    for event in events:
                        if isinstance(event, ModelError):
                            raise ModelUnavailable(f"session.update refused: {event.message}")
                        if not isinstance(event, SessionReady):
                            self._early.append(event)
                    if self.protocol.ready:
                        return
        except TimeoutError as exc:
            await self._close_socket()
            raise ModelUnavailable("no session.updated in time") from exc
        except (OSError, WebSocketException) as exc:
            await self._close_socket()
            raise ModelUnavailable(f"cannot connect: {exc}") from exc
        except ModelUnavailable:
            await self._close_socket()
            raise

    async def reopen(self) -> None:
        """Replace the session with a fresh one (new socket, new protocol state, the same
        ``session.update``); raises ``ModelUnavailable``. The old socket, if still open (a
        roll before the provider's session cap), is closed once the new one is ready, so
        the caller hears no extra gap. Asks for no greeting: the worker decides what next.
        """
        old, self._ws = self._ws, None
        self._early = []
        self.protocol = OpenAIRealtimeProtocol(self.protocol.config)
        try:
            await self._connect()
        finally:
            if old is not None:
                await old.close()

    async def send(self, event: dict[str, Any]) -> bool:
        """Send one client event; ``False`` if the socket is gone (the reader reports why)."""
        if self._ws is None:
            return False
        try:
            await self._ws.send(orjson.dumps(event).decode())
        except ConnectionClosed:
            return False
        self.sent_events += 1
        return True

    async def events(self) -> AsyncIterator[ModelEvent]:
        """Every model event until the socket closes; the last one is always ``ModelClosed``."""
        for event in self._early:
            yield event
        self._early.clear()
        if self._ws is None:
            yield ModelClosed("not connected")
            return
        try:
            async for frame in self._ws:
                for index, event in enumerate(self.protocol.receive(frame, time.perf_counter())):
                    if index:
                        await asyncio.sleep(0)  # a long delta's pieces: let other calls run
                    yield event
        except ConnectionClosed as exc:
            yield ModelClosed(_closed_reason(exc))
            return
        code = self._ws.close_code
        yield ModelClosed(f"socket closed ({code})")

    async def close(self) -> None:
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
        await self._close_socket()

    async def _close_socket(self) -> None:
        # Not close(): this runs inside the opening task, which must not cancel itself.
        if self._ws is not None:
            await self._ws.close()


def _closed_reason(exc: ConnectionClosed) -> str:
    if exc.sent is not None and exc.sent.code == 1009:
        # RFC 6455 7.4.1: we refused a message over MAX_MESSAGE_BYTES; the session is over.
        return f"socket closed (1009: a message over {MAX_MESSAGE_BYTES} bytes refused)"
    return f"socket closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
