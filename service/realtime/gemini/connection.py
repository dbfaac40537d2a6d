"""The asyncio side of a Gemini Live session: one call, one logical model session, any number
of WebSocket connections (protocols.md D.5: a connection lasts ~10 min; ``goAway`` warns).

Thin like ``connection.py``: frames go between ``websockets`` and the sans-I/O
``GeminiLiveProtocol``. What it adds is **resumption**: on ``goAway`` (once the model is idle,
or shortly before the deadline) or on an unexpected connection end, it reconnects with the
newest resumable handle (``setup.sessionResumption.handle``, D.2/D.5), holds caller audio
meanwhile, delivers it afterwards and reports ``SessionResumed``; the phone call never
notices. After ``resume_attempts`` failed attempts it reports ``ModelClosed``.

Memory per call: caller audio held during a reconnection gap, at most ``MAX_GAP_AUDIO_MS``
(10 s: ~250 KB of JSON at 8 kHz, ~465 KB at 16 kHz; the oldest goes first), at most
``MAX_GAP_CONTROL`` other held messages and ``MAX_DEFERRED`` held text turns, and the events
received while (re)connecting (a few, before ``setupComplete``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import deque
from collections.abc import AsyncIterator

import orjson
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from service.realtime.config import SessionConfig
from service.realtime.events import (
    ModelAudioFormat,
    ModelClosed,
    ModelEvent,
    Purpose,
    SessionReady,
    SessionResumed,
)
from service.realtime.gemini.protocol import GeminiLiveProtocol
from service.realtime.session import ModelUnavailable
from service.realtime.wire import MAX_MESSAGE_BYTES
from service.settings import Settings

__all__ = ["DEFAULT_GEMINI_MODEL", "GEMINI_LIVE_URL", "GeminiLiveSession", "open_gemini_session"]

log = structlog.get_logger(__name__)

# D.1: the Gemini Developer API endpoint; the key goes in ``x-goog-api-key`` as the SDK does.
GEMINI_LIVE_URL = (
    "wss://generativelanguage.googleapis.com/ws/"
    "google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
)
# D.2's example; which model names are current is unverified there, so it is a setting.
DEFAULT_GEMINI_MODEL = "gemini-2.5-flash-native-audio-preview-09-2025"
MAX_GAP_AUDIO_MS = 10_000
MAX_GAP_CONTROL = 32
MAX_DEFERRED = 8
GO_AWAY_MARGIN_S = 1.0  # reconnect this long before goAway's deadline if never idle


class GeminiLiveSession:
    """A Gemini Live model session for one call (the worker's ``ModelSession``)."""

    # D.4: ``interrupted`` only comes while the model is generating; a caller talking over
    # audio that was fully sent but still plays at the carrier is heard by the worker's VAD.
    detects_speech_during_playback = False
    # Gemini resumes a dropped session by itself (session resumption handles, D.7).
    can_reopen = False

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        protocol: GeminiLiveProtocol,
        *,
        ready_timeout: float = 5.0,
        resume_attempts: int = 3,
        resume_backoff_s: float = 0.25,
    ) -> None:
        self.url = url
        self.headers = headers
        self.protocol = protocol
        self.ready_timeout = ready_timeout
        self.resume_attempts = resume_attempts
        self.resume_backoff_s = resume_backoff_s
        self.greeting_requested = False
        self.resumptions = 0
        self.gap_audio_dropped_ms = 0.0
        self._ws: ClientConnection | None = None  # None: not connected or between connections
        self._opening: asyncio.Task[None] | None = None
        self._closing = False
        self._dead = False  # given up: nothing is held for a connection that will not come
        self._early: list[ModelEvent] = []
        self._gap_audio: deque[tuple[bytes, float]] = deque()  # (message, ms of audio)
        self._gap_audio_ms = 0.0
        self._gap_control: deque[bytes] = deque()
        self._deferred: deque[tuple[str, str]] = deque()  # (text, purpose)
        self._end_reason = ""

    # --- the worker's view (service.realtime.session.ModelSession) -------------------------------

    @property
    def audio_format(self) -> ModelAudioFormat:
        return self.protocol.audio_format

    @property
    def input_format(self) -> ModelAudioFormat:
        return self.protocol.input_format

    @property
    def active_response_id(self) -> str | None:
        return self.protocol.active_response_id

    async def open(self, greeting: str | None = None) -> None:
        """Connect, send ``setup``, wait for ``setupComplete`` (D.6), then ask for the greeting.
        Called twice (pre-warm, then the worker), it connects once."""
        if self._opening is None:
            self._opening = asyncio.create_task(self._open(greeting))
        await asyncio.shield(self._opening)

    async def _open(self, greeting: str | None) -> None:
        self._ws = await self._connect()
        if greeting:
            self.greeting_requested = await self._send_text(greeting, "greeting")

    async def send_audio(self, audio: bytes) -> bool:
        # Hot path: one dict, one base64, one orjson per frame; no await unless connected.
        message = orjson.dumps(self.protocol.realtime_audio(audio))
        if self._ws is not None and await self._send(message):
            return True
        if self._closing or self._dead:
            return False
        self._hold_audio(message, len(audio) / self.protocol.input_format.bytes_per_ms)
        return True

    async def create_response(
        self,
        instructions: str | None = None,
        *,
        purpose: Purpose | None = None,
        out_of_band: bool = False,
    ) -> bool:
        """Gemini answers by itself after a ``toolResponse`` or a user turn (D.3), so without
        instructions this only tags the next turn with ``purpose``; with them they go as a
        user text turn. Out-of-band requests (fillers) are declined: Gemini has no such
        responses, and a user turn sent while the model awaits a tool result would enter the
        conversation and might be answered instead of the caller's question."""
        if out_of_band:
            return False
        if instructions:
            return await self._send_text(instructions, purpose)
        self.protocol.pending_purpose = purpose
        return True

    async def send_user_text(self, text: str) -> bool:
        return await self._send_text(text, "")

    async def truncate(self, item_id: str, audio_end_ms: int) -> bool:
        # D.4: there is no truncate; Gemini keeps what it sent. The worker records the unheard.
        return False

    async def cancel_response(self) -> bool:
        # START_OF_ACTIVITY_INTERRUPTS (D.2) already stopped the generation on the caller's voice.
        return False

    async def function_output(self, call_id: str, output: str) -> bool:
        message = self.protocol.function_output(call_id, output)
        if message is None:
            log.info("gemini tool output dropped (call cancelled or orphaned)", call_id=call_id)
            return False
        return await self._send_or_hold(orjson.dumps(message))

    async def close(self) -> None:
        self._closing = True
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()

    # --- events and resumption ---------------------------------------------------------------

    async def events(self) -> AsyncIterator[ModelEvent]:
        """Every model event until the session ends; the last one is always ``ModelClosed``."""
        while True:
            for event in self._early:
                yield event
            self._early.clear()
            ws = self._ws
            if ws is None:
                yield ModelClosed("closed" if self._closing else "not connected")
                return
            async for event in self._read(ws):
                yield event
            if self._closing:
                yield ModelClosed("closed by us")
                return
            reason, lost_at = self._end_reason, time.monotonic()
            self._ws = None  # from here on, sends are held for the next connection
            for event in self.protocol.connection_lost():
                yield event
            with contextlib.suppress(Exception):
                await ws.close()
            detail = await self._resume()
            if detail is not None:
                self._dead = True
                self._gap_audio.clear()
                self._gap_control.clear()
                log.warning("gemini session lost", reason=reason, detail=detail)
                yield ModelClosed(f"{reason}; not resumed: {detail}")
                return
            gap_ms = round((time.monotonic() - lost_at) * 1000)
            self.resumptions += 1
            log.info("gemini session resumed", reason=reason, gap_ms=gap_ms)
            yield SessionResumed(reason, gap_ms)

    async def _read(self, ws: ClientConnection) -> AsyncIterator[ModelEvent]:
        """One connection's events; returns when it ended (``_end_reason`` says why) or when
        a ``goAway`` reconnection is due."""
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            timeout: float | None = None
            if self.protocol.go_away_ms is not None:
                if deadline is None:
                    left = self.protocol.go_away_ms / 1000
                    deadline = loop.time() + max(0.0, left - min(GO_AWAY_MARGIN_S, left / 2))
                # D.5: resume between turns (handles are resumable only then), or at the latest
                # shortly before the server aborts the connection.
                if self.protocol.idle or loop.time() >= deadline:
                    self._end_reason = "go_away"
                    return
                timeout = deadline - loop.time()
            try:
                if timeout is None:
                    frame = await ws.recv()
                else:
                    frame = await asyncio.wait_for(ws.recv(), timeout)
            except TimeoutError:
                continue  # websockets' recv() is cancellation-safe: nothing was lost
            except ConnectionClosed as exc:
                self._end_reason = f"connection_lost ({_why(exc)})"
                return
            for index, event in enumerate(self.protocol.receive(frame, time.perf_counter())):
                if index:
                    await asyncio.sleep(0)  # a long blob's pieces: let other calls run
                if not isinstance(event, SessionReady):
                    yield event
            if self._deferred and self.protocol.active_response_id is None:
                await self._drain_deferred()

    async def _resume(self) -> str | None:
        """Reconnect with the newest resumable handle; ``None`` on success, else why not."""
        if self.protocol.resume_handle is None:
            return "no resumption handle"
        detail = ""
        for attempt in range(self.resume_attempts):
            if attempt:
                await asyncio.sleep(self.resume_backoff_s * 2 ** (attempt - 1))
            if self._closing:
                return "closed by us"
            try:
                ws = await self._connect()
                # Held messages first; sends made meanwhile keep being held until none is
                # left, then the switch happens with no await in between: order is kept.
                while self._gap_control or self._gap_audio:
                    if self._gap_control:
                        await ws.send(self._gap_control.popleft(), text=True)
                    else:
                        message, ms = self._gap_audio.popleft()
                        self._gap_audio_ms -= ms
                        await ws.send(message, text=True)
            except ModelUnavailable as exc:
                detail = str(exc)
                continue
            except ConnectionClosed as exc:
                detail = f"closed while resuming: {exc}"
                continue
            if self._closing:
                await ws.close()
                return "closed by us"
            self._ws = ws
            await self._drain_deferred()
            return None
        return f"{self.resume_attempts} attempts failed, last: {detail}"

    async def _connect(self) -> ClientConnection:
        """Connect, send ``setup``, wait for ``setupComplete`` (D.2, D.6). Errors arrive as
        close frames (Gemini sends no error messages), so a close here is the refusal."""
        try:
            async with asyncio.timeout(self.ready_timeout):
                ws = await connect(
                    self.url,
                    additional_headers=self.headers,
                    compression=None,  # base64 audio barely compresses: deflate burns CPU
                    max_size=MAX_MESSAGE_BYTES,
                    # A pre-warmed greeting waits here: a few hundred KB in practice, at worst
                    # 64 × MAX_MESSAGE_BYTES (over it a message closes the connection: 1009,
                    # and the session resumes on a new one).
                    max_queue=64,
                    ping_interval=20,
                    open_timeout=None,
                    close_timeout=2,
                )
                try:
                    await ws.send(orjson.dumps(self.protocol.setup()), text=True)
                    while not self.protocol.ready:
                        for event in self.protocol.receive(await ws.recv(), time.perf_counter()):
                            if not isinstance(event, SessionReady):
                                self._early.append(event)
                except BaseException:
                    await ws.close()
                    raise
                return ws
        except TimeoutError as exc:
            raise ModelUnavailable("no setupComplete in time") from exc
        except ConnectionClosed as exc:
            raise ModelUnavailable(f"setup refused ({_why(exc)})") from exc
        except (OSError, WebSocketException) as exc:
            raise ModelUnavailable(f"cannot connect: {exc}") from exc

    # --- sending -----------------------------------------------------------------------------

    async def _send(self, message: bytes) -> bool:
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(message, text=True)  # JSON as a text frame, without a decode copy
        except ConnectionClosed:
            return False
        return True

    async def _send_or_hold(self, message: bytes) -> bool:
        if self._ws is not None and await self._send(message):
            return True
        if self._closing or self._dead or len(self._gap_control) >= MAX_GAP_CONTROL:
            return False
        self._gap_control.append(message)
        return True

    def _hold_audio(self, message: bytes, ms: float) -> None:
        self._gap_audio.append((message, ms))
        self._gap_audio_ms += ms
        while self._gap_audio_ms > MAX_GAP_AUDIO_MS and len(self._gap_audio) > 1:
            _, old = self._gap_audio.popleft()
            self._gap_audio_ms -= old
            self.gap_audio_dropped_ms += old

    async def _send_text(self, text: str, purpose: str) -> bool:
        """A user turn. D.3: ``clientContent`` interrupts the current generation, reported as
        ``interrupted`` like a barge-in; so while a turn is generated the text waits for its end."""
        if self.protocol.active_response_id is not None:
            if len(self._deferred) >= MAX_DEFERRED:
                return False
            self._deferred.append((text, purpose))
            return True
        if purpose:
            self.protocol.pending_purpose = purpose
        return await self._send_or_hold(orjson.dumps(self.protocol.client_text(text)))

    async def _drain_deferred(self) -> None:
        while self._deferred and self.protocol.active_response_id is None:
            text, purpose = self._deferred.popleft()
            await self._send_text(text, purpose)


def _why(exc: ConnectionClosed) -> str:
    if exc.sent is not None and exc.sent.code == 1009:
        return f"1009 a message over {MAX_MESSAGE_BYTES} bytes refused"
    close = exc.rcvd
    return f"{close.code} {close.reason}".strip() if close else "no close frame"


def gemini_url(base: str, api_key: str) -> tuple[str, dict[str, str]]:
    """URL and headers for ``base``: the key as ``x-goog-api-key`` (D.1), unless the URL
    already carries ``key=``."""
    if not api_key or "key=" in base:
        return base, {}
    return base, {"x-goog-api-key": api_key}


def open_gemini_session(settings: Settings, config: SessionConfig) -> GeminiLiveSession:
    """A not-yet-opened Gemini session for one call (REALTIME_BACKEND=gemini): ``config`` as
    for every backend, with Gemini's own model, voice and input rate from ``settings``."""
    config = dataclasses.replace(config, model=settings.gemini_model or DEFAULT_GEMINI_MODEL)
    protocol = GeminiLiveProtocol(
        config,
        model=config.model,
        input_rate=settings.gemini_input_rate,
        voice=settings.gemini_voice or None,
    )
    url, headers = gemini_url(
        settings.gemini_live_url or GEMINI_LIVE_URL, settings.gemini_api_key.get_secret_value()
    )
    return GeminiLiveSession(
        url, headers, protocol, ready_timeout=settings.model_ready_timeout_seconds
    )
