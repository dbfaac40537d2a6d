"""The SIP edge's asyncio runner: one UDP socket for signalling, a :class:`SipEndpoint` for
the protocol, and a :class:`SipCall` per answered call.

An offered call gets its model session pre-warmed (``factory.prewarm``) while it rings; the
200 OK goes out only once ``factory.ready`` says the agent can talk, and a 503 when it
cannot (or when this process drains, or no RTP port is free). Then the call is started
like any other (``factory.start``) with ``carrier="sip"``. Whatever happens, a started call
ends with a recorded reason.
"""

from __future__ import annotations

import asyncio
import math
import os
from typing import TYPE_CHECKING

import structlog

from service.telephony.events import CallStarted, CarrierError
from service.telephony.sip.call import SipCall
from service.telephony.sip.client_side import ClientSide, call_sid_for
from service.telephony.sip.clock import MediaClock, Ticking
from service.telephony.sip.dialog import (
    Action,
    CallAnswered,
    CallConfirmed,
    CallEnded,
    CallOffered,
    MediaChanged,
    RequestAnswered,
    TransferProgress,
    Transmit,
)
from service.telephony.sip.endpoint import SipEndpoint
from service.telephony.sip.registration import Registration
from service.telephony.sip.sdp import SdpError, build_answer

if TYPE_CHECKING:
    from service.services import Services

__all__ = ["SipServer", "call_sid_for"]

MAX_DATAGRAM = 65_535
log = structlog.get_logger(__name__)


class _SipProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: SipServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.server.datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        pass


class SipServer(ClientSide):
    def __init__(self, services: Services) -> None:
        settings = services.settings
        self.services = services
        host, _, port = settings.sip_listen.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        public = settings.sip_public_address or (
            "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        )
        self.public_address = public
        password = settings.sip_password.get_secret_value()
        self.endpoint = SipEndpoint(
            contact_host=public,
            contact_port=self.port,
            allowed_sources=settings.sip_allowed_networks,
            credentials=(settings.sip_username, password) if settings.sip_username else None,
        )
        self.transport: asyncio.DatagramTransport | None = None
        self.calls: dict[str, SipCall] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._answers: dict[tuple[str, str], asyncio.Future[int]] = {}
        self._trunk_hosts: dict[str, str] = {}
        self._dialling: dict[str, asyncio.Future[CallAnswered | CallEnded]] = {}
        self.clock = MediaClock(on_failure=self._media_failed)
        self.registration: Registration | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _SipProtocol(self), local_addr=(self.host, self.port)
        )
        self.transport = transport  # type: ignore[assignment]
        self.port = transport.get_extra_info("sockname")[1]
        self.endpoint.contact_port = self.port
        self._timer = asyncio.create_task(self._run_timers())
        self._start_registration(loop.time())
        log.info(
            "SIP edge listening", listen=f"{self.host}:{self.port}", public=self.public_address
        )

    async def stop(self) -> None:
        for call in list(self.calls.values()):
            call.end("service_stopped")
            self._hang_up(call.call_id)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)
        if self._timer is not None:
            self._timer.cancel()
        await self.clock.stop()
        if self.transport is not None:
            self.transport.close()

    # --- signalling ------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = asyncio.get_running_loop().time()
        registration = self.registration
        if registration is not None and data.startswith(b"SIP/2.0 "):
            if registration.call_id.encode() in data:
                self._registration_answered(data, now)
                return
        try:
            actions = self.endpoint.receive(data[:MAX_DATAGRAM], (addr[0], addr[1]), now)
        except Exception:
            # The endpoint is meant never to raise; if it does, the datagram is lost, not us.
            log.exception("SIP datagram handling failed", source=addr[0])
            return
        self._act(actions)

    def _act(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Transmit):
                if self.transport is not None:
                    self.transport.sendto(action.data, action.address)
            elif isinstance(action, CallOffered):
                self._spawn(self._run_call(action))
            elif isinstance(action, MediaChanged):
                if (call := self.calls.get(action.call_id)) is not None:
                    call.update_media(action.offer)
            elif isinstance(action, CallAnswered | CallEnded) and self._resolve_dial(action):
                pass  # an outbound call's outcome, awaited by ``dial``
            elif isinstance(action, CallEnded):
                if (call := self.calls.get(action.call_id)) is not None:
                    call.end(action.reason)
            elif isinstance(action, RequestAnswered):
                waiter = self._answers.pop((action.call_id, action.method), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(action.status)
            elif isinstance(action, TransferProgress):
                self._transfer_progress(action)
            elif isinstance(action, CallConfirmed):
                pass  # media already flows from the 200 on (RFC 3264 §6)
        self._wake.set()

    async def _run_timers(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            deadline = self.endpoint.next_deadline
            if self.registration is not None:
                deadline = min(deadline or math.inf, self.registration.next_deadline)
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            self._act(self.endpoint.poll(loop.time()))
            if self.registration is not None:
                sent, state = self.registration.poll(loop.time())
                self._act(list(sent))
                self._registration_state(state)

    def _hang_up(self, call_id: str) -> None:
        self._act(self.endpoint.hang_up(call_id, asyncio.get_running_loop().time()))

    def _spawn(self, coroutine: object) -> None:
        task = asyncio.create_task(coroutine)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- one call --------------------------------------------------------------------------

    def _reject(self, call_id: str, status: int, reason: str) -> None:
        loop = asyncio.get_running_loop()
        self._act(self.endpoint.reject(call_id, status, reason, loop.time()))

    async def _run_call(self, offered: CallOffered) -> None:
        settings = self.services.settings
        call_sid = call_sid_for(offered.call_id)
        with structlog.contextvars.bound_contextvars(transport="sip", call_sid=call_sid):
            if self.services.draining:
                self._reject(offered.call_id, 503, "Service Unavailable")
                return
            if self.services.full:
                # Refused, never absorbed (as on Twilio): the trunk can try another server.
                log.warning("call refused: process full", max_calls=len(self.services.calls))
                self.services.metrics.refusals.labels("full").inc()
                self._reject(offered.call_id, 503, "Service Unavailable")
                return
            call = SipCall(
                offered.call_id,
                call_sid,
                offered.offer,
                jitter_ms=settings.sip_jitter_ms,
                rtp_timeout=settings.sip_rtp_timeout_seconds,
                hang_up=self._hang_up,
                transfer=self._transfer,
                caller_to_model=self.services.timings.caller_to_model.add,
            )
            if not await call.bind(self.host, settings.sip_rtp_port_range):
                log.warning("no free RTP port; refusing the call")
                self._reject(offered.call_id, 503, "Service Unavailable")
                return
            try:
                await self._answer_and_run(offered, call)
            except Exception:
                log.exception("SIP call failed")
                call.end("internal_error")
                self._hang_up(offered.call_id)
            finally:
                await call.close()
                self.calls.pop(offered.call_id, None)
                self._trunk_hosts.pop(offered.call_id, None)

    async def _answer_and_run(self, offered: CallOffered, call: SipCall) -> None:
        factory = self.services.factory
        self.calls[offered.call_id] = call
        self._trunk_hosts[offered.call_id] = offered.source[0]
        factory.prewarm(call.call_sid, offered.to_user)
        ready = await factory.ready(call.call_sid)
        if call.end_reason is not None:
            log.info("call ended before it was answered", reason=call.end_reason)
            return  # cancelled while ringing: the unclaimed session closes on its timeout
        if not ready:
            log.warning("model session could not open; refusing the call")
            self._reject(offered.call_id, 503, "Service Unavailable")
            return
        try:
            sdp = build_answer(
                offered.offer, self.public_address, call.port, int.from_bytes(os.urandom(3), "big")
            )
        except SdpError:
            self._reject(offered.call_id, 488, "Not Acceptable Here")
            return
        self._act(self.endpoint.answer(offered.call_id, sdp, asyncio.get_running_loop().time()))
        started = CallStarted(
            call_sid=call.call_sid,
            carrier="sip",
            from_number=offered.from_user,
            to_number=offered.to_user,
            direction="inbound",
            carrier_fields={"sip_call_id": offered.call_id},
            parameters=offered.headers,
        )
        await self._run_worker(call, started)

    async def _run_worker(self, call: SipCall, started: CallStarted) -> None:
        worker = self.services.factory.start(started, call.send)
        call.start(worker)
        self.clock.add(call)
        reason = "stream_closed"
        try:
            reason = await call.wait()
        finally:
            self.clock.remove(call)
            self.services.calls.remove(worker.call_sid, worker)
            self._record_totals(call)
            worker.finish(reason)
            await worker.close()

    def _media_failed(self, ticking: Ticking) -> None:
        if isinstance(ticking, SipCall):
            ticking.end("internal_error")
            self._hang_up(ticking.call_id)

    async def _transfer(self, call_id: str, target: str) -> None:
        """RFC 3515: REFER the caller to ``target``; raises ``CarrierError`` unless the far
        end accepts (202). A phone number goes to the trunk that sent the call."""
        if target.startswith(("sip:", "sips:")):
            refer_to = target
        else:
            refer_to = f"sip:{target}@{self._trunk_hosts.get(call_id, self.public_address)}"
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[int] = loop.create_future()
        self._answers[(call_id, "REFER")] = answered
        self._act(self.endpoint.refer(call_id, refer_to, loop.time()))
        status = await answered
        if not 200 <= status < 300:
            raise CarrierError(f"the SIP peer refused the transfer ({status or 'no answer'})")
        log.info("transfer accepted", refer_to=refer_to)

    def _transfer_progress(self, progress: TransferProgress) -> None:
        """NOTIFY sipfrag: 2xx — the caller reached the target, so we leave (BYE); a failure
        leaves the caller with the agent, recorded on the call."""
        call = self.calls.get(progress.call_id)
        if call is None or progress.status < 200:
            return
        if progress.status < 300:
            call.end("transferred")
            self._hang_up(progress.call_id)
        else:
            log.warning("transfer failed at the far end", status=progress.status)
            self.services.store.append_event(
                call.call_sid, "transfer_failed", status=progress.status
            )

    def _record_totals(self, call: SipCall) -> None:
        rx = call.receiver
        self.services.store.update_call(
            call.call_sid,
            rtp_packets_in=rx.packets,
            rtp_packets_out=call.sender.packets,
            rtp_lost=rx.lost,
            rtp_late=rx.late,
            rtp_wrong_payload_type=rx.wrong_payload_type,
            rtp_malformed=rx.malformed,
        )

    def stats(self) -> dict[str, object]:
        """For /stats: live SIP calls and how late RTP ticks ran behind their 20 ms grid."""
        return {"active_calls": len(self.calls), **self.clock.summary_ms()}
