"""The call worker: one per call, the only place that decides what a call does.

The carrier edge hands it neutral ``CallerEvent``s and gives it a ``send`` coroutine for
neutral commands. It records what happened through the non-blocking call store, so nothing
on this path awaits Redis.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from service.store.calls import CallStore
from service.telephony.events import (
    CallEnded,
    CallerAudio,
    CallerCommand,
    CallerEvent,
    CallStarted,
    DtmfReceived,
    MarkPlayed,
)

__all__ = ["CallWorker", "CommandSink"]

CommandSink = Callable[[CallerCommand], Awaitable[None]]
log = structlog.get_logger(__name__)


class CallWorker:
    """Owns one call from ``start`` to its end. Memory: a few counters per call."""

    def __init__(
        self,
        started: CallStarted,
        *,
        store: CallStore,
        send: CommandSink,
        backend: str = "none",
    ) -> None:
        self.call_sid = started.call_sid
        self.stream_sid = started.stream_sid
        self.store = store
        self.send = send
        self.backend = backend
        self.frames_in = 0
        self.ms_in = 0
        self.marks_played = 0
        self.end_reason: str | None = None
        params = started.parameters
        store.call_started(
            self.call_sid,
            direction=params.get("direction", "inbound"),
            from_=params.get("from", ""),
            to=params.get("to", ""),
            stream_sid=self.stream_sid,
            backend=backend,
            account_sid=started.account_sid,
        )

    async def on_event(self, event: CallerEvent) -> None:
        if isinstance(event, CallerAudio):
            # Hot path: ~50 frames a second per call; no logging, no store writes here.
            self.frames_in += 1
            self.ms_in += len(event.ulaw) // 8
        elif isinstance(event, MarkPlayed):
            self.marks_played += 1
        elif isinstance(event, DtmfReceived):
            log.info("dtmf", digit=event.digit)
            self.store.append_event(self.call_sid, "dtmf", digit=event.digit)
        elif isinstance(event, CallEnded):
            self.end_reason = self.end_reason or "caller_hangup"

    def finish(self, end_reason: str | None = None) -> str:
        """Record the end of the call once; returns the reason recorded."""
        reason = self.end_reason or end_reason or "stream_closed"
        self.end_reason = reason
        self.store.update_call(self.call_sid, frames_in=self.frames_in, caller_audio_ms=self.ms_in)
        self.store.call_ended(self.call_sid, end_reason=reason)
        log.info("call ended", end_reason=reason, frames_in=self.frames_in, ms_in=self.ms_in)
        return reason
