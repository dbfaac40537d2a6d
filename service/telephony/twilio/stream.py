"""The asyncio side of a Twilio media stream: socket ↔ codec ↔ call worker.

All parsing lives in ``media.MediaStreamCodec``; this module only moves frames, enforces the
connection rules (signed upgrade, a ``start`` with a valid per-call token, one stream per
call), carries out the worker's commands (media frames on the socket; hang-up and transfer
through Twilio's REST API or by closing the stream) and makes sure that whatever happens the
call ends with a recorded reason. The call itself is built by the middle's call factory.

Refusals are counted in ``voice_refusals_total{reason}`` (``metrics.REFUSAL_REASONS``).
A caller that stops reading its socket is noticed when a send to it cannot complete within
``CALLER_SEND_TIMEOUT_SECONDS`` (the kernel's socket buffers and the transport's high-water
mark are full by then): it is logged once, counted, and the call ends ``caller_stuck``.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from service.telephony.twilio.security import TokenLedger

if TYPE_CHECKING:
    from service.calls.factory import CarrierCall
    from service.services import Services

__all__ = ["MEDIA_PATH", "run_media_stream"]

MEDIA_PATH = "/twilio/media"
START_TIMEOUT_SECONDS = 10.0
POLICY_VIOLATION = 1008  # RFC 6455 7.4.1: the peer broke our rules (bad signature or token)
UNSUPPORTED_DATA = 1003
MESSAGE_TOO_BIG = 1009  # RFC 6455 7.4.1: the transport refused a frame over ws_max_size
# Twilio reads continuously; a send blocked this long means the caller stopped reading.
CALLER_SEND_TIMEOUT_SECONDS = 5.0
CLOSE_TIMEOUT_SECONDS = 2.0  # a close frame that cannot be written (stuck peer) is given up

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
        services.metrics.refusals.labels("bad_signature").inc()
        # Closing before accept makes the server answer the upgrade with HTTP 403.
        await websocket.close(code=POLICY_VIOLATION)
        return
    if services.draining:
        await websocket.close(code=1013)  # try again later: this process is shutting down
        return
    await websocket.accept()
    session = _MediaSession(websocket, services, _connection_transport())
    with structlog.contextvars.bound_contextvars(transport="twilio"):
        await session.run()


class _MediaSession:
    def __init__(
        self,
        websocket: WebSocket,
        services: Services,
        transport: asyncio.BaseTransport | None = None,
    ) -> None:
        self.websocket = websocket
        self.transport = transport  # to drop a stuck caller's connection (see _abort)
        self.services = services
        self.codec = MediaStreamCodec(max_frame_bytes=services.settings.max_frame_bytes)
        self.violations = _ViolationReport()
        self.worker: CarrierCall | None = None
        self.close_code = 1000
        self.close_reason = "call ended"
        self.disconnect_code: int | None = None  # the code the transport gave when it ended
        self.stuck = False  # a send to the caller timed out: nothing more is sent

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
            self.disconnect_code = message.get("code")
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
                        return await self._admit(event)
                    if isinstance(event, ProtocolViolation):
                        self._report(event)
                        if event.fatal:
                            self._refuse(UNSUPPORTED_DATA, event.reason)
                            return None
                    elif isinstance(event, CallEnded):
                        return None
        except TimeoutError:
            log.warning("media stream refused", reason="no start message")
            self.services.metrics.refusals.labels("no_start").inc()
            self._refuse(POLICY_VIOLATION, "no start message")
            return None

    async def _admit(self, started: CallStarted) -> CallStarted | None:
        """Check the per-call token (A.4 defence in depth), that the call has no stream yet, and
        that the token has not opened a stream before (on any replica: ``TokenLedger``)."""
        services, call_sid = self.services, started.call_sid
        token = started.parameters.get("token", "")
        problem = services.tokens.check(call_sid, token)
        if problem is not None:
            # Not recorded in the call's events: the CallSid of a bad token proves nothing.
            return self._refuse_stream("bad_token", problem, call_sid, "invalid stream token")
        if services.calls.get(call_sid) is not None:
            self._record_refusal(call_sid, "duplicate_stream")
            return self._refuse_stream(
                "duplicate_stream", "duplicate stream", call_sid, "call already has a stream"
            )
        ledger = TokenLedger(services.redis, prefix=services.settings.redis_key_prefix)
        first_use = await ledger.redeem(token, call_sid)
        if first_use is False:
            self._record_refusal(call_sid, "replayed_token")
            return self._refuse_stream(
                "replayed_token", "token already used", call_sid, "stream token already used"
            )
        if first_use is None:
            log.warning(
                "stream token not recorded (Redis unavailable); admitted",
                call_sid=call_sid,
                note="fail-open: the token's HMAC and expiry were checked",
            )
        if services.calls.get(call_sid) is not None:  # a twin admitted while we awaited Redis
            return self._refuse_stream(
                "duplicate_stream", "duplicate stream", call_sid, "call already has a stream"
            )
        self.worker = services.factory.start(started, self._send)
        return started

    def _refuse_stream(self, reason: str, detail: str, call_sid: str, said: str) -> None:
        log.warning("media stream refused", reason=detail, call_sid=call_sid)
        self.services.metrics.refusals.labels(reason).inc()
        self._refuse(POLICY_VIOLATION, said)

    def _record_refusal(self, call_sid: str, reason: str) -> None:
        """A refused second stream, in the events of the call it tried to join."""
        self.services.store.append_event(call_sid, "refused", reason=reason)

    async def _run_call(self, started: CallStarted) -> str:
        assert self.worker is not None
        worker = self.worker
        timings = self.services.timings.caller_to_model
        frames_in = self.services.metrics.frames_in
        while True:
            frame = await self._receive()
            if frame is None:
                return worker.end_reason or self._why_closed()
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
        if frame is None or self.stuck:
            return
        if self.websocket.application_state == WebSocketState.CONNECTED:
            try:
                async with asyncio.timeout(CALLER_SEND_TIMEOUT_SECONDS):
                    await self.websocket.send_text(frame)
            except TimeoutError:
                self._caller_stuck()
            except (RuntimeError, OSError, WebSocketDisconnect):
                pass  # the caller hung up; the receive loop ends the call

    def _caller_stuck(self) -> None:
        """The caller stopped reading: log and count once, then drop the connection, which
        ends the receive loop and so the call (``caller_stuck``)."""
        self.stuck = True
        call_sid = self.worker.call_sid if self.worker is not None else ""
        log.warning(
            "caller stopped reading; ending the call",
            call_sid=call_sid,
            send_timeout_s=CALLER_SEND_TIMEOUT_SECONDS,
        )
        self.services.metrics.stuck_callers.inc()
        if call_sid:
            self.services.store.append_event(
                call_sid, "error", reason="caller_stuck", detail="a send did not complete"
            )
        self.close_code, self.close_reason = 1011, "caller not reading"
        if not self._abort():
            log.warning("cannot drop a stuck caller's connection on this server")

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

    def _why_closed(self) -> str:
        if self.stuck:
            return "caller_stuck"
        if self.disconnect_code == MESSAGE_TOO_BIG:
            # Over the transport's limit (serving.MAX_WS_MESSAGE_BYTES): the server closed the
            # socket before we saw the frame; the call cannot carry on without its socket.
            self.services.metrics.refusals.labels("oversized_frame").inc()
            if self.worker is not None:
                self.services.store.append_event(
                    self.worker.call_sid,
                    "error",
                    reason="frame_too_large",
                    detail="over the transport limit; the connection was closed (1009)",
                )
            return "frame_too_large"
        return "stream_closed"

    def _report(self, violation: ProtocolViolation) -> None:
        oversized = violation.reason == "frame_too_large"
        self.services.metrics.refusals.labels(
            "oversized_frame" if oversized else "protocol_violation"
        ).inc()
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
        if self.stuck:
            self._abort()
            return
        if self.websocket.application_state == WebSocketState.CONNECTED:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                    await self.websocket.close(code=self.close_code, reason=self.close_reason)
            except TimeoutError:
                self._abort()  # the close frame itself could not be written
            except (RuntimeError, OSError, WebSocketDisconnect):
                pass  # the peer is already gone

    def _abort(self) -> bool:
        """Drop the TCP connection at once, discarding what is buffered for the peer. ASGI has
        no abort, and a close cannot complete while the peer reads nothing (the close frame
        waits behind megabytes of unread audio, and so would the server's own close)."""
        if self.transport is None:
            return False
        with contextlib.suppress(Exception):
            self.transport.abort()  # type: ignore[attr-defined]
        return True


def _connection_transport() -> asyncio.BaseTransport | None:
    """The transport of the connection whose ASGI task this is, or ``None``.

    uvicorn runs each connection's app in a task on its protocol object's ``run_asgi``, and
    that object holds the connection's ``transport``; no ASGI API exposes it. Called from the
    endpoint itself (the worker's tasks are other tasks). On another server: ``None``."""
    task = asyncio.current_task()
    frame = getattr(task.get_coro(), "cr_frame", None) if task is not None else None
    owner = frame.f_locals.get("self") if frame is not None else None
    transport = getattr(owner, "transport", None)
    return transport if isinstance(transport, asyncio.BaseTransport) else None
