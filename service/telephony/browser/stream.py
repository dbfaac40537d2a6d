"""The asyncio side of a browser softphone call: socket ↔ ``BrowserCodec`` ↔ call worker.

The operator's page is the caller. The route (``service/ui/routes.py``) has already checked
the operator's session and the socket's origin; this runner waits for the page's ``start``,
builds a neutral ``CallStarted(carrier="browser")`` and hands it to the call factory, then
moves frames both ways until either side hangs up. Whatever happens, the call ends with a
recorded reason and the socket is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import TYPE_CHECKING

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from service.calls.factory import PROFILE_PARAMETER
from service.telephony.browser.codec import BrowserCodec, StartRequest
from service.telephony.events import (
    CallEnded,
    CallerAudio,
    CallerCommand,
    CallStarted,
    CarrierError,
    HangUp,
    ProtocolViolation,
    Transfer,
)

if TYPE_CHECKING:
    from service.calls.factory import CarrierCall
    from service.services import Services

__all__ = ["BROWSER_FROM", "run_browser_call"]

START_TIMEOUT_SECONDS = 10.0
BROWSER_FROM = "browser"
UNSUPPORTED_DATA = 1003
AUDIO_BACKLOG = 50  # 20 ms frames: 1 s of caller audio waiting for the model's socket

log = structlog.get_logger(__name__)


def new_call_sid() -> str:
    """``BR`` + 32 hex digits: shaped like a Twilio sid, never one (``CA…``)."""
    return "BR" + secrets.token_hex(16)


async def run_browser_call(websocket: WebSocket, services: Services) -> None:
    if services.draining:
        await websocket.close(code=1013)  # try again later: this process is shutting down
        return
    await websocket.accept()
    with structlog.contextvars.bound_contextvars(transport="browser"):
        await _BrowserCall(websocket, services).run()


class _BrowserCall:
    def __init__(self, websocket: WebSocket, services: Services) -> None:
        self.websocket = websocket
        self.services = services
        self.codec = BrowserCodec(max_frame_bytes=services.settings.max_frame_bytes)
        self.worker: CarrierCall | None = None
        self.close_code = 1000
        self.close_reason = "call ended"
        self.violations = 0

    async def run(self) -> None:
        end_reason = "stream_closed"
        try:
            started = await self._wait_for_start()
            if started is not None:
                self.worker = self.services.factory.start(started, self._send)
                await self._send_text(self.codec.started_message(started.call_sid))
                end_reason = await self._run_call()
        except Exception:
            log.exception("browser call failed")
            end_reason = "internal_error"
            self.close_code, self.close_reason = 1011, "internal error"
        finally:
            if self.worker is not None:
                self.services.calls.remove(self.worker.call_sid, self.worker)
                if self.violations:
                    self.services.store.update_call(
                        self.worker.call_sid, protocol_violations=self.violations
                    )
                self.worker.finish(end_reason)
                await self.worker.close()
            await self._close()

    async def _receive(self) -> str | bytes | None:
        try:
            message = await self.websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return None
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        return text if text is not None else message.get("bytes", b"")

    async def _wait_for_start(self) -> CallStarted | None:
        try:
            async with asyncio.timeout(START_TIMEOUT_SECONDS):
                frame = await self._receive()
        except TimeoutError:
            self.close_code, self.close_reason = 1008, "no start message"
            return None
        if frame is None:
            return None
        event = self.codec.receive(frame)
        if not isinstance(event, StartRequest):
            self.close_code, self.close_reason = UNSUPPORTED_DATA, "expected start"
            return None
        profiles = self.services.factory.profiles
        profile = profiles.by_name(event.profile) if event.profile else None
        parameters = {PROFILE_PARAMETER: profile.name} if profile is not None else {}
        return CallStarted(
            call_sid=new_call_sid(),
            carrier="browser",
            from_number=BROWSER_FROM,
            to_number="",
            direction="inbound",
            parameters=parameters,
        )

    async def _run_call(self) -> str:
        """Read the page's frames; caller audio goes to the worker from its own task.

        Marks are applied the moment they arrive, never behind caller audio: the worker's
        ledger times playback from each mark's arrival, and forwarding a frame to the model
        can wait on the model's socket. Audio waits in a bounded queue (``AUDIO_BACKLOG``
        frames, ~1 s; the oldest are dropped past it, counted as a violation).
        """
        assert self.worker is not None
        worker = self.worker
        audio: asyncio.Queue[CallerAudio] = asyncio.Queue(AUDIO_BACKLOG)
        forwarder = asyncio.create_task(self._forward_audio(audio))
        try:
            return await self._read_frames(worker, audio)
        finally:
            forwarder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forwarder

    async def _forward_audio(self, audio: asyncio.Queue[CallerAudio]) -> None:
        assert self.worker is not None
        frames_in = self.services.metrics.frames_in
        while True:
            frame = await audio.get()
            frames_in.inc()
            await self.worker.on_event(frame)

    async def _read_frames(self, worker: CarrierCall, audio: asyncio.Queue[CallerAudio]) -> str:
        while True:
            frame = await self._receive()
            if frame is None:
                return worker.end_reason or "caller_hangup"
            event = self.codec.receive(frame)
            if event is None or isinstance(event, StartRequest):
                continue  # a second start is reported by the codec as a violation
            if isinstance(event, CallerAudio):
                if audio.full():
                    audio.get_nowait()
                    self._violation(worker, ProtocolViolation("audio_backlog_dropped"))
                audio.put_nowait(event)
                continue
            if isinstance(event, ProtocolViolation):
                self._violation(worker, event)
                if event.fatal:
                    self.close_code, self.close_reason = UNSUPPORTED_DATA, event.reason
                    return "protocol_error"
                continue
            await worker.on_event(event)
            if isinstance(event, CallEnded):
                return "caller_hangup"

    def _violation(self, worker: CarrierCall, event: ProtocolViolation) -> None:
        """Counted always; logged and recorded on the call once (the first one)."""
        self.violations += 1
        if self.violations == 1:
            log.warning("bad browser frame", reason=event.reason, detail=event.detail)
            self.services.store.append_event(
                worker.call_sid, "error", reason=event.reason, detail=event.detail
            )

    async def _send(self, command: CallerCommand) -> None:
        if isinstance(command, Transfer):
            raise CarrierError("a browser call cannot be transferred")
        message = self.codec.encode(command)
        if isinstance(message, bytes):
            await self._send_bytes(message)
        elif message is not None:
            await self._send_text(message)
        if isinstance(command, HangUp):
            self.close_reason = command.reason
            await self._close()

    async def _send_text(self, text: str) -> None:
        if self.websocket.application_state == WebSocketState.CONNECTED:
            try:
                await self.websocket.send_text(text)
            except (RuntimeError, OSError, WebSocketDisconnect):
                pass  # the page has gone; the receive loop ends the call

    async def _send_bytes(self, data: bytes) -> None:
        if self.websocket.application_state == WebSocketState.CONNECTED:
            try:
                await self.websocket.send_bytes(data)
            except (RuntimeError, OSError, WebSocketDisconnect):
                pass

    async def _close(self) -> None:
        if self.websocket.application_state == WebSocketState.CONNECTED:
            try:
                await self.websocket.close(code=self.close_code, reason=self.close_reason)
            except (RuntimeError, OSError, WebSocketDisconnect):
                pass
