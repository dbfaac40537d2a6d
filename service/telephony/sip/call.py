"""One SIP call's media and its bridge to the call worker (asyncio; the logic is sans-I/O).

* Receive: RTP datagrams → :class:`RtpReceiver` (reorder, silence fill, RFC 4733) → an
  ordered inbox → ``worker.on_event``. Symmetric RTP (RFC 4961): we send to where the
  caller's packets come from once one has arrived.
* Send: the worker's ``PlayAudio``/``PlaceMark`` go into a :class:`PlayoutBuffer`; the
  process's media clock (``clock.MediaClock``) calls :meth:`SipCall.tick` every 20 ms and
  each tick puts one packet on the wire.
  A mark is echoed when the packet holding its last byte departs, so "heard" is "sent"
  (minus the far end's jitter buffer). ``ClearPlayback`` empties the buffer synchronously:
  no packet of the interrupted audio leaves after it (barge-in is exact to one packet).
* While the caller holds the call (re-INVITE ``sendonly``/``inactive``) the pacer neither
  sends nor plays: queued audio waits for the resume.

Memory per call: the playout buffer (bounded, see ``telephony.playout``), a reorder buffer
of ≤ 16 packets, an inbox of ≤ ``INBOX_LIMIT`` events (overflow dropped and counted).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from service.telephony.events import (
    CallEnded,
    CallerAudio,
    CallerCommand,
    CallerEvent,
    CarrierError,
    ClearPlayback,
    DtmfReceived,
    HangUp,
    MarkPlayed,
    PlaceMark,
    PlayAudio,
    Transfer,
)
from service.telephony.playout import PlayoutBuffer
from service.telephony.sip.g711 import ALAW_TO_ULAW, ULAW_TO_ALAW
from service.telephony.sip.rtp import ULAW_SILENCE, RtpReceiver, RtpSender
from service.telephony.sip.sdp import PCMA, PCMU, MediaOffer

if TYPE_CHECKING:
    from service.calls.factory import CarrierCall

__all__ = ["SipCall"]

FRAME_BYTES = 160
INBOX_LIMIT = 2000  # 40 s of caller audio: far more than a stalled worker should ever hold
SILENCE = bytes([ULAW_SILENCE]) * FRAME_BYTES

log = structlog.get_logger(__name__)


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self, call: SipCall) -> None:
        self.call = call

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.call.rtp_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable while the far end sets up: the next packet tries again


class SipCall:
    def __init__(
        self,
        call_id: str,
        call_sid: str,
        offer: MediaOffer,
        *,
        jitter_ms: float,
        rtp_timeout: float,
        hang_up: Callable[[str], None],
        transfer: Callable[[str, str], Awaitable[None]] | None = None,
        caller_to_model: Callable[[float], None] | None = None,
    ) -> None:
        self.call_id = call_id
        self.call_sid = call_sid
        self.remote = (offer.address, offer.port)
        self.on_hold = offer.on_hold
        audio_pt = offer.audio_pt if offer.audio_pt is not None else PCMU
        # PCMA calls are translated byte for byte at the edge: the worker only sees μ-law.
        self.from_ulaw = ULAW_TO_ALAW if audio_pt == PCMA else None
        self.receiver = RtpReceiver(
            audio_pt=audio_pt,
            telephone_event=offer.telephone_event,
            jitter_ms=jitter_ms,
            to_ulaw=ALAW_TO_ULAW if audio_pt == PCMA else None,
        )
        self.sender = RtpSender(int.from_bytes(os.urandom(4), "big"), payload_type=audio_pt)
        self.playout = PlayoutBuffer()
        self.rtp_timeout = rtp_timeout
        self._hang_up = hang_up
        self._transfer = transfer
        self._caller_to_model = caller_to_model
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.worker: CarrierCall | None = None
        self.end_reason: str | None = None
        self._latched = False
        # (event, perf_counter at arrival): the arrival time feeds the caller→model timing.
        self._inbox: asyncio.Queue[tuple[CallerEvent, float]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._done = asyncio.Event()
        self.inbox_dropped = 0
        self.started_at = 0.0
        self._held_at = 0.0

    async def bind(self, host: str, ports: tuple[int, int]) -> bool:
        """Take the first free even port of the range (RTP even, RTCP odd: RFC 3550 §11)."""
        loop = asyncio.get_running_loop()
        first, last = ports
        start = first + (int.from_bytes(os.urandom(2), "big") % max(1, (last - first + 1))) // 2 * 2
        span = range(start, last + 1, 2), range(first + first % 2, start, 2)
        for candidates in span:
            for port in candidates:
                try:
                    transport, _ = await loop.create_datagram_endpoint(
                        lambda: _RtpProtocol(self), local_addr=(host, port)
                    )
                except OSError:
                    continue
                self.transport = transport  # type: ignore[assignment]
                self.port = port
                return True
        return False

    # --- life cycle -------------------------------------------------------------------------

    def start(self, worker: CarrierCall) -> None:
        self.worker = worker
        self.started_at = asyncio.get_running_loop().time()
        self._tasks = [asyncio.create_task(self._deliver())]

    async def wait(self) -> str:
        await self._done.wait()
        return self.end_reason or "stream_closed"

    def end(self, reason: str) -> None:
        """The call is over (either side): stop media; ``wait()`` returns ``reason``."""
        if self.end_reason is None:
            self.end_reason = reason
            if self.worker is not None and reason == "caller_hangup":
                self._push(CallEnded(reason))  # the worker hears the caller left, in order
            else:
                self._done.set()  # ours to record: the runner finishes the worker with it

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self.transport is not None:
            self.transport.close()

    def update_media(self, offer: MediaOffer) -> None:
        """A re-INVITE (or our offer's answer): new address (latch again on its first
        packet), hold state, and the answer's telephone-event payload type."""
        self.remote = (offer.address, offer.port)
        self._latched = False
        self.on_hold = offer.on_hold
        if offer.telephone_event is not None:
            self.receiver.telephone_event = offer.telephone_event

    # --- receive ------------------------------------------------------------------------------

    def rtp_received(self, data: bytes, source: tuple[str, int]) -> None:
        if self.end_reason is not None:
            return
        if not self._latched:
            self.remote = source  # symmetric RTP: answer where the packets come from
            self._latched = True
        now = asyncio.get_running_loop().time()
        payloads, digits = self.receiver.receive(data, now)
        for payload in payloads:
            self._push(CallerAudio(payload))
        for digit in digits:
            self._push(DtmfReceived(digit))

    def _push(self, event: CallerEvent) -> None:
        # Only caller audio may be dropped (a stalled worker); marks and the end never are.
        if isinstance(event, CallerAudio) and self._inbox.qsize() >= INBOX_LIMIT:
            self.inbox_dropped += 1
            return
        self._inbox.put_nowait((event, time.perf_counter()))

    async def _deliver(self) -> None:
        """Events to the worker in arrival order, one at a time (it awaits the model)."""
        assert self.worker is not None
        try:
            while True:
                event, arrived = await self._inbox.get()
                await self.worker.on_event(event)
                if (
                    self._caller_to_model is not None
                    and isinstance(event, CallerAudio)
                    and self.worker.model_ready
                ):
                    self._caller_to_model(time.perf_counter() - arrived)
                if isinstance(event, CallEnded):
                    return
        except Exception:
            log.exception("SIP call event handling failed")
            self.end_reason = self.end_reason or "internal_error"
            self._hang_up(self.call_id)
        finally:
            self._done.set()

    # --- send ----------------------------------------------------------------------------------

    async def send(self, command: CallerCommand) -> None:
        """The worker's command sink."""
        if isinstance(command, PlayAudio):
            self.playout.enqueue_audio(command.ulaw)
        elif isinstance(command, PlaceMark):
            for name in self.playout.enqueue_mark(command.name):
                self._push(MarkPlayed(name))
        elif isinstance(command, ClearPlayback):
            for name in self.playout.clear():
                self._push(MarkPlayed(name))
        elif isinstance(command, HangUp):
            self.end_reason = self.end_reason or command.reason
            self._hang_up(self.call_id)
            self._done.set()
        elif isinstance(command, Transfer):
            if self._transfer is None:
                raise CarrierError("this SIP call cannot be transferred")
            await self._transfer(self.call_id, command.target)

    def tick(self, now: float) -> None:
        """One 20 ms step of the media clock (``clock.MediaClock``): one packet out."""
        if self.on_hold:
            self._held_at = now  # a held caller may send nothing (``inactive``): not a timeout
        heard_from = max(self.receiver.last_packet_at or 0.0, self.started_at, self._held_at)
        if now - heard_from > self.rtp_timeout:
            if self.end_reason is None:
                log.warning("no RTP from the caller; ending the call", seconds=self.rtp_timeout)
                self.end("rtp_timeout")
                self._hang_up(self.call_id)
            return
        for payload in self.receiver.poll(now):
            self._push(CallerAudio(payload))  # a gap given up on while no packet arrived
        if self.on_hold or self.transport is None:
            return
        audio, marks = self.playout.advance(FRAME_BYTES)
        if len(audio) < FRAME_BYTES:
            audio += SILENCE[len(audio) :]
        if self.from_ulaw is not None:
            audio = audio.translate(self.from_ulaw)
        self.transport.sendto(self.sender.packet(audio), self.remote)
        for name in marks:
            self._push(MarkPlayed(name))
