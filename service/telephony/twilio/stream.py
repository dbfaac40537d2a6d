"""The asyncio side of a Twilio media stream: socket ↔ codec ↔ call worker.

All parsing lives in ``media.MediaStreamCodec``; this module only moves frames, enforces the
connection rules (signed upgrade, a ``start`` with a valid per-call token, one stream per
call), carries out the worker's commands (media frames on the socket; hang-up and transfer
through Twilio's REST API or by closing the stream) and makes sure that whatever happens the
call ends with a recorded reason. The call itself is built by the middle's call factory.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import TYPE_CHECKING

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

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
from service.telephony.twilio.media import MediaStreamCodec
from service.telephony.twilio.rest import transfer_twiml

if TYPE_CHECKING:
    from service.calls.factory import CarrierCall
    from service.services import Services

__all__ = ["MEDIA_PATH", "run_media_stream"]

MEDIA_PATH = "/twilio/media"
START_TIMEOUT_SECONDS = 10.0
POLICY_VIOLATION = 1008  # RFC 6455 7.4.1: the peer broke our rules (bad signature or token)
UNSUPPORTED_DATA = 1003

log = structlog.get_logger(__name__)


class _ViolationReport:
    """Logs each kind of bad frame once per call (with a running count), never per frame."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def first(self, violation: ProtocolViolation) -> bool:
        self.counts[violation.reason] += 1
        return self.counts[violation.reason] == 1


async def run_media_stream(websocket: WebSocket, services: Services) -> None:
    settings = services.settings
    stream_url = f"{settings.public_ws_scheme}://{settings.public_host}{MEDIA_PATH}"
    signature = websocket.headers.get("x-twilio-signature", "")
    if not services.signatures.upgrade_ok(stream_url, signature):
        log.warning("media stream refused", reason="bad upgrade signature")
        # Closing before accept makes the server answer the upgrade with HTTP 403.
        await websocket.close(code=POLICY_VIOLATION)
        return
    if services.draining:
        await websocket.close(code=1013)  # try again later: this process is shutting down
        return
    await websocket.accept()
    session = _MediaSession(websocket, services)
    with structlog.contextvars.bound_contextvars(transport="twilio"):
        await session.run()


class _MediaSession:
    def __init__(self, websocket: WebSocket, services: Services) -> None:
        self.websocket = websocket
        self.services = services
        self.codec = MediaStreamCodec(max_frame_bytes=services.settings.max_frame_bytes)
        self.violations = _ViolationReport()
        self.worker: CarrierCall | None = None
        self.close_code = 1000
        self.close_reason = "call ended"

    async def run(self) -> None:
        end_reason = "stream_closed"
        try:
            started = await self._wait_for_start()
            if started is None:
                return
            end_reason = await self._run_call(started)
        except Exception:
            # No exception escapes a call: it ends with a reason instead.
            log.exception("media stream failed")
            end_reason = "internal_error"
            self.close_code, self.close_reason = 1011, "internal error"
        finally:
            if self.worker is not None:
                self.services.calls.remove(self.worker.call_sid, self.worker)
                self._record_violation_totals()
                self.worker.finish(end_reason)
                await self.worker.close()
            await self._close()

    async def _receive(self) -> str | bytes | None:
        """The next frame, or ``None`` once the peer has gone."""
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
                while True:
                    frame = await self._receive()
                    if frame is None:
                        return None
                    event = self.codec.receive(frame)
                    if isinstance(event, CallStarted):
                        return self._admit(event)
                    if isinstance(event, ProtocolViolation):
                        self._report(event)
                        if event.fatal:
                            self._refuse(UNSUPPORTED_DATA, event.reason)
                            return None
                    elif isinstance(event, CallEnded):
                        return None
        except TimeoutError:
            log.warning("media stream refused", reason="no start message")
            self._refuse(POLICY_VIOLATION, "no start message")
            return None

    def _admit(self, started: CallStarted) -> CallStarted | None:
        """Check the per-call token (A.4 defence in depth) and that the call has no stream yet."""
        token = started.parameters.get("token", "")
        problem = self.services.tokens.check(started.call_sid, token)
        if problem is not None:
            log.warning("media stream refused", reason=problem, call_sid=started.call_sid)
            self._refuse(POLICY_VIOLATION, "invalid stream token")
            return None
        if self.services.calls.get(started.call_sid) is not None:
            log.warning(
                "media stream refused", reason="duplicate stream", call_sid=started.call_sid
            )
            self._refuse(POLICY_VIOLATION, "call already has a stream")
            return None
        self.worker = self.services.factory.start(started, self._send)
        return started

    async def _run_call(self, started: CallStarted) -> str:
        assert self.worker is not None
        worker = self.worker
        timings = self.services.timings.caller_to_model
        frames_in = self.services.metrics.frames_in
        while True:
            frame = await self._receive()
            if frame is None:
                return worker.end_reason or "stream_closed"
            arrived = time.perf_counter()
            event = self.codec.receive(frame)
            if event is None:
                continue
            if isinstance(event, CallerAudio):
                frames_in.inc()
                await worker.on_event(event)
                if worker.model_ready:
                    timings.add(time.perf_counter() - arrived)
                continue
            if isinstance(event, ProtocolViolation):
                self._report(event)
                if event.fatal:
                    self._refuse(UNSUPPORTED_DATA, event.reason)
                    return "protocol_error"
                continue
            await worker.on_event(event)
            if isinstance(event, CallEnded):
                return "caller_hangup"

    async def _send(self, command: CallerCommand) -> None:
        if isinstance(command, HangUp):
            await self._hang_up(command)
            return
        if isinstance(command, Transfer):
            await self._transfer(command.target)
            return
        frame = self.codec.encode(command)
        if frame is not None and self.websocket.application_state == WebSocketState.CONNECTED:
            try:
                await self.websocket.send_text(frame)
            except (RuntimeError, OSError, WebSocketDisconnect):
                pass  # the caller hung up; the receive loop ends the call

    async def _hang_up(self, command: HangUp) -> None:
        """A.5: closing our socket alone makes Twilio run the TwiML after ``</Connect>`` (the
        apology): right when the agent failed, wrong when it ended the call on purpose. Then
        the call is completed over REST first, and the socket closed either way."""
        rest = self.services.twilio_calls
        if not command.failed and rest is not None and self.worker is not None:
            try:
                await rest.hang_up(self.worker.call_sid)
            except CarrierError as exc:
                log.warning("REST hang-up failed; closing the stream instead", error=str(exc))
        self.close_reason = command.reason
        await self._close()

    async def _transfer(self, target: str) -> None:
        """A.5: redirect the call to ``<Dial>`` TwiML; Twilio then ends our stream itself."""
        rest = self.services.twilio_calls
        if rest is None or self.worker is None:
            raise CarrierError("transfers need TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
        await rest.redirect(self.worker.call_sid, transfer_twiml(target))

    def _report(self, violation: ProtocolViolation) -> None:
        if not self.violations.first(violation):
            return
        log.warning(
            "bad media stream frame",
            reason=violation.reason,
            detail=violation.detail,
            fatal=violation.fatal,
            note="logged once per call and reason; totals are recorded when the call ends",
        )
        if self.worker is not None:
            self.services.store.append_event(
                self.worker.call_sid, "error", reason=violation.reason, detail=violation.detail
            )

    def _record_violation_totals(self) -> None:
        assert self.worker is not None
        if self.violations.counts:
            self.services.store.update_call(
                self.worker.call_sid,
                protocol_violations=sum(self.violations.counts.values()),
                protocol_violation_kinds=",".join(sorted(self.violations.counts)),
            )

    def _refuse(self, code: int, reason: str) -> None:
        self.close_code, self.close_reason = code, reason

    async def _close(self) -> None:
        if self.websocket.application_state == WebSocketState.CONNECTED:
            try:
                await self.websocket.close(code=self.close_code, reason=self.close_reason)
            except (RuntimeError, OSError, WebSocketDisconnect):
                pass  # the peer is already gone
