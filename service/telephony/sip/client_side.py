"""The runner's client side: calls we place (``dial``) and keeping registered (REGISTER).

Mixed into :class:`~service.telephony.sip.server.SipServer`; the protocol work is in
``outbound`` and ``registration`` (sans-I/O), this only moves their actions and waits.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import structlog

from service.telephony.events import CallStarted, CarrierError
from service.telephony.sip.call import SipCall
from service.telephony.sip.dialog import Action, CallAnswered, CallEnded
from service.telephony.sip.endpoint import SipEndpoint
from service.telephony.sip.message import SipParseError, parse
from service.telephony.sip.registration import Registration, RegistrationState
from service.telephony.sip.sdp import PCMU, MediaOffer, build_offer

if TYPE_CHECKING:
    from service.services import Services

__all__ = ["ClientSide", "call_sid_for"]

DIAL_EVENT_PT = 101  # the telephone-event payload type of our own offers
log = structlog.get_logger(__name__)


def call_sid_for(call_id: str) -> str:
    """A store-safe id from any Call-ID (which may hold ``@``, ``:`` and more)."""
    return "SIP" + hashlib.sha256(call_id.encode()).hexdigest()[:32]


class ClientSide:
    # Provided by SipServer.
    services: Services
    endpoint: SipEndpoint
    calls: dict[str, SipCall]
    host: str
    public_address: str
    registration: Registration | None
    _trunk_hosts: dict[str, str]
    _dialling: dict[str, asyncio.Future[CallAnswered | CallEnded]]

    def _act(self, actions: list[Action]) -> None: ...
    def _hang_up(self, call_id: str) -> None: ...
    async def _transfer(self, call_id: str, target: str) -> None: ...
    async def _run_worker(self, call: SipCall, started: CallStarted) -> None: ...
    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None: ...

    # --- REGISTER ----------------------------------------------------------------------------

    def _start_registration(self, now: float) -> None:
        settings = self.services.settings
        if not settings.sip_registrar:
            return
        host, _, port = settings.sip_registrar.rpartition(":")
        password = settings.sip_password.get_secret_value()
        self.registration = Registration(
            registrar=(host.strip("[]"), int(port)),
            domain=host.strip("[]"),
            user=settings.sip_username or "voice-agent",
            contact=self.endpoint.contact_address,
            credentials=(settings.sip_username, password) if settings.sip_username else None,
        )
        self._act(list(self.registration.start(now)))

    def _registration_answered(self, data: bytes, now: float) -> None:
        assert self.registration is not None
        try:
            response = parse(data)
        except SipParseError:
            return
        sent, state = self.registration.on_response(response, now)
        self._act(list(sent))
        self._registration_state(state)

    def _registration_state(self, state: RegistrationState | None) -> None:
        if state is None:
            return
        if state.expires:
            log.info(
                "registered", registrar=self.services.settings.sip_registrar, expires=state.expires
            )
        else:
            log.warning("registration failed; retrying", status=state.status or "no answer")

    # --- outbound ----------------------------------------------------------------------------

    async def dial(self, to_number: str, *, from_number: str = "") -> str:
        """Call ``to_number`` through ``SIP_OUTBOUND_PROXY`` (digest with SIP_USERNAME/
        SIP_PASSWORD when challenged); returns the call's ``call_sid`` once it is answered and
        the agent runs it. Raises ``CarrierError`` when it is not answered."""
        settings = self.services.settings
        if not settings.sip_outbound_proxy:
            raise CarrierError("SIP_OUTBOUND_PROXY is not set")
        host, _, port = settings.sip_outbound_proxy.rpartition(":")
        destination = (host.strip("[]"), int(port))
        call = SipCall(
            "",
            "",
            MediaOffer(destination[0], 0, [PCMU], telephone_event=DIAL_EVENT_PT),
            jitter_ms=settings.sip_jitter_ms,
            rtp_timeout=settings.sip_rtp_timeout_seconds,
            hang_up=self._hang_up,
            transfer=self._transfer,
            caller_to_model=self.services.timings.caller_to_model.add,
        )
        if not await call.bind(self.host, settings.sip_rtp_port_range):
            raise CarrierError("no free RTP port")
        loop = asyncio.get_running_loop()
        password = settings.sip_password.get_secret_value()
        offer = build_offer(self.public_address, call.port, int.from_bytes(os.urandom(3), "big"))
        call_id, actions = self.endpoint.dial(
            request_uri=f"sip:{to_number}@{settings.sip_outbound_proxy}",
            from_user=from_number,
            sdp=offer,
            destination=destination,
            now=loop.time(),
            credentials=(settings.sip_username, password) if settings.sip_username else None,
        )
        call.call_id, call.call_sid = call_id, call_sid_for(call_id)
        outcome: asyncio.Future[CallAnswered | CallEnded] = loop.create_future()
        self._dialling[call_id] = outcome
        self.calls[call_id] = call
        self._trunk_hosts[call_id] = destination[0]
        self.services.factory.prewarm(call.call_sid, to_number)
        self._act(actions)
        try:
            result = await outcome
        except BaseException:
            self._hang_up(call_id)
            await self._forget(call)
            raise
        if isinstance(result, CallEnded):
            await self._forget(call)
            raise CarrierError(f"the call was not answered ({result.reason})")
        call.update_media(result.answer)
        started = CallStarted(
            call_sid=call.call_sid,
            carrier="sip",
            from_number=from_number,
            to_number=to_number,
            direction="outbound",
            carrier_fields={"sip_call_id": call_id},
        )
        self._spawn(self._run_outbound(call, started))
        return call.call_sid

    async def _run_outbound(self, call: SipCall, started: CallStarted) -> None:
        with structlog.contextvars.bound_contextvars(transport="sip", call_sid=call.call_sid):
            try:
                await self._run_worker(call, started)
            except Exception:
                log.exception("SIP call failed")
                call.end("internal_error")
                self._hang_up(call.call_id)
            finally:
                await self._forget(call)

    async def _forget(self, call: SipCall) -> None:
        await call.close()
        self.calls.pop(call.call_id, None)
        self._trunk_hosts.pop(call.call_id, None)
        self._dialling.pop(call.call_id, None)

    def _resolve_dial(self, action: CallAnswered | CallEnded) -> bool:
        waiter = self._dialling.pop(action.call_id, None)
        if waiter is None:
            return False
        if not waiter.done():
            waiter.set_result(action)
        return True
