"""Running accepted OpenAI calls: accept (or reject), attach the worker, carry out commands.

One ``OpenAICalls`` per process holds the REST control client and the calls it runs. A call
is a task: accept with the profile's session, start the worker with ``model_call_id`` (its
model session is the sideband to this call), then wait for the worker's ``HangUp`` — every
ending reaches us as one: the agent's ``end_call``, a drain, or the sideband closing (the
caller hung up, or the sideband could not be reattached). The hang-up is carried out over
REST (a 404 means the call had already ended) and the call recorded like any other.

Memory per call: one task, one event, the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from service.telephony.events import CallerCommand, CallStarted, CarrierError, HangUp, Transfer
from service.telephony.openai_calls.control import OpenAICallControl
from service.telephony.openai_calls.incoming import IncomingCall

if TYPE_CHECKING:
    from service.calls.factory import CallFactory, CarrierCall
    from service.calls.registry import CallRegistry
    from service.metrics import Metrics
    from service.store.calls import CallStore

__all__ = ["CARRIER", "WEBRTC_CARRIER", "OpenAICalls"]

log = structlog.get_logger(__name__)
CARRIER = "openai_sip"
WEBRTC_CARRIER = "openai_webrtc"
BUSY_HERE = 486  # RFC 3261 21.4.24: this process is draining or full
DECLINE = 603  # RFC 3261 21.6.2: no profile for this call
HANG_UP_ON_STOP_S = 3.0


class Services(Protocol):
    """What of ``service.services.Services`` this edge uses (which holds this edge)."""

    store: CallStore
    factory: CallFactory
    calls: CallRegistry[Any]
    metrics: Metrics
    draining: bool

    @property
    def full(self) -> bool: ...


class OpenAICalls:
    def __init__(self, services: Services, control: OpenAICallControl) -> None:
        self.services = services
        self.control = control
        self._tasks: set[asyncio.Task[None]] = set()

    def answer(self, incoming: IncomingCall) -> None:
        """Accept or reject ``incoming`` in the background (the webhook has replied by then)."""
        task = asyncio.create_task(self._answer(incoming))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def attach(self, incoming: IncomingCall, carrier: str) -> None:
        """Run a call that already exists at OpenAI (a WebRTC call we created)."""
        self._record_arrival(incoming, carrier)
        task = asyncio.create_task(_Call(self, incoming, carrier).run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _record_arrival(self, incoming: IncomingCall, carrier: str) -> None:
        structlog.contextvars.bind_contextvars(call_sid=incoming.call_id, carrier=carrier)
        self.services.store.update_call(
            incoming.call_id,
            direction="inbound",
            **{"from": incoming.from_number, "to": incoming.to_number},
            carrier=carrier,
            status="ringing",
            **{k: v for k, v in incoming.carrier_fields().items() if v},
        )

    async def _answer(self, incoming: IncomingCall) -> None:
        services = self.services
        self._record_arrival(incoming, CARRIER)
        services.store.append_event(incoming.call_id, "webhook", type="realtime.call.incoming")
        if services.draining:
            await self._reject(incoming, BUSY_HERE, "draining")
            return
        if services.full:  # MAX_CALLS: refused, never absorbed (as the Twilio edge does)
            services.metrics.refusals.labels("full").inc()
            await self._reject(incoming, BUSY_HERE, "full")
            return
        session = services.factory.model_call_session(incoming.to_number, incoming.profile_name)
        if session is None:
            await self._reject(incoming, DECLINE, "unknown_profile")
            return
        try:
            await self.control.accept(incoming.call_id, session)
        except CarrierError as exc:
            log.warning("accept failed", error=str(exc))
            services.store.append_event(
                incoming.call_id, "error", reason="accept_failed", detail=str(exc)
            )
            services.store.call_ended(incoming.call_id, end_reason="accept_failed")
            return
        await _Call(self, incoming, CARRIER).run()

    async def _reject(self, incoming: IncomingCall, status_code: int, reason: str) -> None:
        log.info("call rejected", status_code=status_code, reason=reason)
        try:
            await self.control.reject(incoming.call_id, status_code)
        except CarrierError as exc:
            log.warning("reject failed", error=str(exc))
        self.services.store.append_event(
            incoming.call_id, "rejected", status_code=status_code, reason=reason
        )
        self.services.store.call_ended(incoming.call_id, end_reason=f"rejected_{reason}")

    async def aclose(self) -> None:
        """Stop what is left (a drain has ended calls politely by now): each hangs up first."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.control.aclose()


class _Call:
    def __init__(self, calls: OpenAICalls, incoming: IncomingCall, carrier: str) -> None:
        self.calls = calls
        self.incoming = incoming
        self.carrier = carrier
        self.worker: CarrierCall | None = None
        self.ended = asyncio.Event()
        self.reason = "call_ended"

    async def run(self) -> None:
        services = self.calls.services
        incoming = self.incoming
        started = CallStarted(
            call_sid=incoming.call_id,
            carrier=self.carrier,
            from_number=incoming.from_number,
            to_number=incoming.to_number,
            direction="inbound",
            carrier_fields=incoming.carrier_fields(),
        )
        try:
            self.worker = services.factory.start(
                started,
                self._send,
                model_call_id=incoming.call_id,
                profile_name=incoming.profile_name,
            )
            await self.ended.wait()
        except asyncio.CancelledError:
            # The process is stopping with the call still up: OpenAI would keep it going with
            # nobody attached, so it is hung up first (bounded), then the task ends.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HANG_UP_ON_STOP_S):
                    await self._hang_up(HangUp("service_stopped"))
            raise
        except Exception:
            log.exception("openai call failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HANG_UP_ON_STOP_S):
                    await self._hang_up(HangUp("internal_error", failed=True))
            self.reason = "internal_error"
        finally:
            if self.worker is not None:
                services.calls.remove(self.worker.call_sid, self.worker)
                self.worker.finish(self.reason)
                await self.worker.close()
            else:
                services.store.call_ended(incoming.call_id, end_reason=self.reason)

    async def _send(self, command: CallerCommand) -> None:
        """The worker's commands; audio commands cannot come (no audio flows through us)."""
        if isinstance(command, HangUp):
            await self._hang_up(command)
        elif isinstance(command, Transfer):
            # 1.3: the REFER is relayed to the SIP peer; the call then leaves OpenAI and the
            # sideband closes, which ends our side of it.
            await self.calls.control.refer(self.incoming.call_id, command.target)
        else:
            log.warning(
                "command ignored on a call whose audio OpenAI carries",
                command=type(command).__name__,
            )

    async def _hang_up(self, command: HangUp) -> None:
        call_id = self.incoming.call_id
        self.reason = command.reason
        try:
            if not await self.calls.control.hang_up(call_id):
                self.calls.services.store.append_event(call_id, "hangup", already_ended=True)
        except CarrierError as exc:
            log.warning("hang-up failed", error=str(exc))
            self.calls.services.store.append_event(
                call_id, "error", reason="hangup_failed", detail=str(exc)
            )
        finally:
            self.ended.set()
