"""The call worker: one per call, the only place that decides what a call does.

The carrier edge hands it neutral ``CallerEvent``s and a ``send`` coroutine for neutral
commands (play, mark, clear, hang up, transfer); the model edge hands it ``ModelEvent``s.
Turn-taking policy lives here and only here: when the agent speaks first, what a barge-in
does (DESIGN.md "Barge-in, precisely"), what happens when the model goes away. It is also the
``CallControl`` its tools act through. Everything it records goes through the non-blocking
call store: nothing on the audio path awaits Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

import structlog

from service.agent.tools import ToolContext, ToolRegistry
from service.audio.transcode import PcmToUlaw, UlawToPcm
from service.audio.vad import EnergyVad, VoiceStarted
from service.calls.dtmf import DtmfCollector
from service.calls.ear import EarLatency
from service.calls.echo import EchoGate
from service.calls.mirror import ConversationMirror, MirroredModel
from service.calls.playback import PlaybackLedger
from service.calls.reconnect import MAX_EARLY_AUDIO_FRAMES, SessionSurvival
from service.calls.survival import SurvivalPolicy
from service.calls.timing import ServiceTimings
from service.calls.tools import CallLater, ToolCoordinator
from service.metrics import Metrics
from service.realtime.events import (
    ULAW_8K,
    AgentAudio,
    CallerDigit,
    ItemTruncated,
    ModelClosed,
    ModelError,
    ModelEvent,
    PlaybackEnded,
    PlaybackStarted,
    ResponseDone,
    ResponseRefused,
    ResponseStarted,
    SessionResumed,
    SpeechStarted,
    SpeechStopped,
    ToolCallCancelled,
    ToolCallRequested,
    Transcript,
    TranscriptDelta,
)
from service.realtime.session import ModelSession
from service.store.audit import ToolAudit
from service.store.calls import CallStore
from service.telephony.events import (
    CallEnded,
    CallerAudio,
    CallerCommand,
    CallerEvent,
    CallStarted,
    ClearPlayback,
    DtmfReceived,
    HangUp,
    MarkPlayed,
    PlaceMark,
    PlayAudio,
    Transfer,
)

__all__ = ["CallWorker", "CommandSink"]

CommandSink = Callable[[CallerCommand], Awaitable[None]]
log = structlog.get_logger(__name__)

# Errors the protocol itself calls benign races (protocols.md B.4, F.6): logged, not alarming.
BENIGN_MODEL_ERRORS = frozenset({"response_cancel_not_active", "invalid_value"})
DRAIN_GOODBYE = (
    "We have to end this call now for maintenance. Apologise briefly, say the caller can "
    "call back in a minute, and say goodbye. Keep it to one or two short sentences."
)


class CallWorker(SessionSurvival):
    """Owns one call from ``start`` to its end.

    Memory per call: the playback ledger (a record per chunk queued at the carrier), two
    resampler histories, at most ``MAX_EARLY_AUDIO_FRAMES`` frames held before the model is
    ready (``survival.held_frames`` while a dropped session is replaced), the conversation
    mirror (bounded, see ``mirror.py``) and the ids of interrupted responses (cleared as
    they finish).
    """

    def __init__(
        self,
        started: CallStarted,
        *,
        store: CallStore,
        send: CommandSink,
        model: ModelSession,
        backend: str = "none",
        profile: str = "",
        greeting: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        timings: ServiceTimings | None = None,
        metrics: Metrics | None = None,
        tools: ToolRegistry | None = None,
        tool_context: ToolContext | None = None,
        audit: ToolAudit | None = None,
        filler_ms: int = 700,
        dtmf_pause_ms: int = 2000,
        response_ack_timeout: float = 5.0,
        call_later: CallLater | None = None,
        survival: SurvivalPolicy | None = None,
    ) -> None:
        self.call_sid = started.call_sid
        self.store = store
        self.send = send
        self.model = model
        self.backend = backend
        self.greeting = greeting
        self.clock = clock
        self.timings = timings or ServiceTimings(capacity=1)
        self.metrics = metrics or Metrics()
        self.ear = EarLatency()
        self.ledger = PlaybackLedger()
        self.frames_in = 0
        self.ms_in = 0
        self.ms_out = 0.0
        self.barge_ins = 0
        self.model_reconnects = 0
        self.survival = survival or SurvivalPolicy()
        self.mirror = ConversationMirror()
        self._held_limit = MAX_EARLY_AUDIO_FRAMES
        self.held_frames_dropped = 0
        self._session_started_at = 0.0
        self._roll_requested = False
        self._quick_drops = 0  # sessions in a row that dropped soon after opening
        self._hung_up = asyncio.Event()
        self.end_reason: str | None = None
        self.model_ready = False
        self.interrupted_responses: set[str] = set()
        self._early_audio: deque[bytes] = deque()
        self._tasks: list[asyncio.Task[None]] = []
        self._to_model: UlawToPcm | None = None
        self._to_caller: PcmToUlaw | None = None
        self._playback_vad: EnergyVad | None = None
        self.echo_gate = EchoGate()  # used with _playback_vad only
        self.dtmf_pause_ms = dtmf_pause_ms
        self.dtmf = DtmfCollector(dtmf_pause_ms / 1000, self._send_digits)
        context = tool_context or ToolContext(call_sid=self.call_sid, redis=None)
        context.call = self  # tools end or move the call through this worker
        self.tool_calls = ToolCoordinator(
            call_sid=self.call_sid,
            registry=tools or ToolRegistry(),
            ctx=context,
            # Outputs and texts the tools send are written into the mirror on the way.
            model=MirroredModel(model, self.mirror),  # type: ignore[arg-type]
            ledger=self.ledger,
            audit=audit,
            metrics=self.metrics,
            filler_ms=filler_ms,
            hang_up=self.hang_up,
            clock=clock,
            ack_timeout=response_ack_timeout,
            call_later=call_later,
        )
        store.call_started(
            self.call_sid,
            direction=started.direction,
            from_=started.from_number,
            to=started.to_number,
            backend=backend,
            profile=profile,
            carrier=started.carrier,
            # The carrier's own ids (Twilio: stream_sid, account_sid); empty ones are skipped.
            **{name: value or None for name, value in started.carrier_fields.items()},
        )

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Open the model session in the background; caller audio is held until it is up."""
        self._tasks.append(asyncio.create_task(self._run_model(self.model)))

    async def _run_model(self, model: ModelSession) -> None:
        try:
            await model.open(self.greeting)
        except Exception as exc:
            log.warning("model session failed to open", error=str(exc))
            self._record("error", reason="model_unavailable", detail=str(exc))
            await self._end_call("model_unavailable", failed=True)
            return
        fmt, input_fmt = model.audio_format, model.input_format
        if input_fmt != ULAW_8K:
            self._to_model = UlawToPcm(input_fmt.sample_rate)
            if not model.detects_speech_during_playback:
                self._playback_vad = EnergyVad(input_fmt.sample_rate)
        if fmt != ULAW_8K:
            self._to_caller = PcmToUlaw(fmt.sample_rate)
        # Frames may keep arriving while the held ones go out: drain until none is left, then
        # switch to direct sends with no await in between, so caller audio stays in order.
        while self._early_audio:
            await model.send_audio(self._model_audio(self._early_audio.popleft()))
        self.model_ready = True
        self._session_started_at = self.clock()
        log.info("model session ready", audio=f"{fmt.encoding}/{fmt.sample_rate}")
        try:
            while (lost := await self._follow_session(model)) is not None:
                if not await self._replace_session(model, lost):
                    return
        except Exception:
            # No exception escapes a call's tasks: the call ends with a reason instead.
            log.exception("model event handling failed")
            await self._end_call("internal_error", failed=True)

    async def close(self) -> None:
        self.dtmf.close()
        await self.tool_calls.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        try:
            await self.model.close()
        except Exception:
            log.warning("model close failed", exc_info=True)

    async def end_politely(self, reason: str, *, limit_s: float = 8.0) -> None:
        """End the call from our side (draining): a goodbye if the model is up, then hang up.

        Bounded: whatever the model does, the call is over after ``limit_s``.
        """
        if self.model_ready:
            await self.tool_calls.farewell(reason, DRAIN_GOODBYE)
            try:
                async with asyncio.timeout(limit_s):
                    await self._hung_up.wait()
                return
            except TimeoutError:
                log.warning("goodbye did not finish in time; hanging up", limit_s=limit_s)
        await self._end_call(reason)

    async def _end_call(self, reason: str, *, failed: bool = False) -> None:
        """Hang up once; ``failed`` lets the carrier run its fallback (Twilio's apology)."""
        if self._hung_up.is_set():
            return
        self._hung_up.set()
        if self.end_reason is None:
            self.end_reason = reason
        await self.send(HangUp(reason, failed=failed))

    # --- CallControl: what tools do to the call ------------------------------------------

    async def hang_up(self, reason: str = "agent_hangup") -> None:
        await self._end_call(reason)

    async def transfer(self, target: str) -> None:
        """Raises ``CarrierError`` (from the edge) if the carrier cannot move the call."""
        self._record("transfer", target=target)
        await self.send(Transfer(target))

    def _record(self, kind: str, **fields: object) -> None:
        self.store.append_event(self.call_sid, kind, **fields)

    # --- caller side ------------------------------------------------------------------------

    def _model_audio(self, ulaw: bytes) -> bytes:
        return ulaw if self._to_model is None else self._to_model.convert(ulaw)

    async def on_event(self, event: CallerEvent) -> None:
        if isinstance(event, CallerAudio):
            # Hot path: ~50 frames a second per call; no logging, no store writes here.
            self.frames_in += 1
            self.ms_in += len(event.ulaw) // 8
            if self.model_ready:
                audio = self._model_audio(event.ulaw)
                await self.model.send_audio(audio)
                if self._playback_vad is not None:
                    await self._watch_playback(audio, event.ulaw)
            elif len(self._early_audio) < self._held_limit:
                self._early_audio.append(event.ulaw)
            else:
                self.held_frames_dropped += 1
        elif isinstance(event, MarkPlayed):
            now = self.clock()
            if self.ledger.mark_played(event.name, now):
                self.tool_calls.check_heard()
                self._roll_if_due()
                if (heard := self.ear.mark_played(event.name, now)) is not None:
                    self.metrics.ear_latency.observe(heard[0])
                    self.metrics.ear_latency_service.observe(heard[1])
        elif isinstance(event, DtmfReceived):
            log.info("dtmf", digit=event.digit)
            self._record("dtmf", digit=event.digit)
            await self.dtmf.add(event.digit)
        elif isinstance(event, CallEnded):
            self.end_reason = self.end_reason or "caller_hangup"

    # --- model side -------------------------------------------------------------------------

    async def on_model_event(self, event: ModelEvent) -> None:
        match event:
            case AgentAudio():
                await self._play(event)
            case SpeechStarted():
                await self._barge_in(event)
            case SpeechStopped():
                self.ear.speech_stopped(self.clock())
            case ResponseStarted():
                await self.tool_calls.response_started(event)
            case ResponseDone():
                self.interrupted_responses.discard(event.response_id)
                await self.tool_calls.response_done(event)
                self._record(
                    "response",
                    response_id=event.response_id,
                    status=event.status,
                    reason=event.reason,
                )
            case ResponseRefused():
                self.tool_calls.refused(event)
            case TranscriptDelta():
                self.mirror.agent_saying(event.item_id, event.text)
            case Transcript(text=text) if text:
                self._record("transcript", role=event.role, item_id=event.item_id, text=text)
                self._mirror_transcript(event)
            case ItemTruncated():
                self.metrics.truncations.labels("confirmed").inc()
                self._record("truncated", item_id=event.item_id, audio_end_ms=event.audio_end_ms)
            case ToolCallRequested():
                self.mirror.tool_called(event.call_id, event.name, event.arguments)
                await self.tool_calls.requested(event)
            case ModelError():
                self._model_error(event)
            case ToolCallCancelled():
                self.tool_calls.withdrawn(event.call_ids)
            case SessionResumed():
                log.info("model session resumed", reason=event.reason, gap_ms=event.gap_ms)
                self.model_reconnects += 1
                self.metrics.model_reconnects.inc()
                self._record("model_reconnected", reason=event.reason, gap_ms=event.gap_ms)
            # The vendor carries the call's audio itself (OpenAI SIP/WebRTC sideband).
            case PlaybackStarted():
                self.tool_calls.playback_started(event.response_id)
            case PlaybackEnded():
                self.tool_calls.playback_ended(event.response_id, cleared=event.cleared)
            case CallerDigit():
                await self.on_event(DtmfReceived(event.digit))
            case ModelClosed(call_over=True):
                self._record("model_closed", reason=event.reason)
                await self._end_call("caller_hangup")
            case ModelClosed():
                log.warning("model session closed mid-call", reason=event.reason)
                self._record("error", reason="model_closed", detail=event.reason)
                # Closing our socket makes Twilio run the apology after </Connect> (A.1).
                await self._end_call("model_disconnected", failed=True)

    async def _play(self, event: AgentAudio) -> None:
        if event.response_id in self.interrupted_responses:
            return  # B.6 step 4: nothing of an interrupted response reaches the caller
        self.tool_calls.agent_audio(event)
        duration_ms = len(event.audio) / self.model.audio_format.bytes_per_ms
        ulaw = event.audio if self._to_caller is None else self._to_caller.convert(event.audio)
        if not ulaw:
            return
        if self._playback_vad is not None:
            self.echo_gate.agent_audio(ulaw)
        # One media and one mark per model delta: whole chunks, not a message per 20 ms.
        mark = self.ledger.audio_sent(event.item_id, duration_ms, self.clock())
        self.ms_out += duration_ms
        await self.send(PlayAudio(ulaw))
        await self.send(PlaceMark(mark))
        self.metrics.frames_out.inc()
        if event.received_at:
            inside = time.perf_counter() - event.received_at
            self.timings.model_to_caller.add(inside)
            self.ear.chunk_sent(mark, inside)

    async def _watch_playback(self, pcm: bytes, ulaw: bytes) -> None:
        """Barge-in for models that only report speech while they generate (Gemini's
        ``interrupted``): once a reply has been fully sent but still plays at the carrier, our
        own VAD listens for the caller talking over it. The echo gate (``echo.py``) makes it
        hear silence where the caller's audio is only the agent's own voice coming back."""
        assert self._playback_vad is not None
        if not self.ledger.playing or self.model.active_response_id is not None:
            self._playback_vad.reset()
            return
        played_ms = self.echo_gate.sent_ms - self.ledger.queued_ms(self.clock())
        if self.echo_gate.is_echo(ulaw, played_ms):
            pcm = bytes(len(pcm))
        if any(isinstance(e, VoiceStarted) for e in self._playback_vad.process(pcm)):
            self._playback_vad.reset()
            await self._barge_in(SpeechStarted("", 0, time.perf_counter()))

    async def _barge_in(self, event: SpeechStarted) -> None:
        now = self.clock()
        active = self.model.active_response_id
        if not self.ledger.playing and active is None:
            self.tool_calls.barge_in([])  # talking while a tool runs still counts
            return  # the caller simply took their turn
        self.barge_ins += 1
        self.metrics.barge_ins.inc()
        if self.ledger.playing:
            await self.send(ClearPlayback())
            if event.received_at:
                self.timings.barge_in_to_clear.add(time.perf_counter() - event.received_at)
        if self._playback_vad is not None:
            self.echo_gate.discard_unplayed(self.ledger.queued_ms(now))
        truncations = self.ledger.interrupt(now)
        self.tool_calls.barge_in(truncations)
        if active is not None:
            self.interrupted_responses.add(active)
            await self.model.cancel_response()
        if self._to_caller is not None:
            # The resampler's history belongs to audio the caller will never hear.
            self._to_caller = PcmToUlaw(self.model.audio_format.sample_rate)
        for cut in truncations:
            self.mirror.agent_cut(cut.item_id, cut.audio_end_ms, cut.sent_ms)
            sent = await self.model.truncate(cut.item_id, cut.audio_end_ms)
            self.metrics.truncations.labels("sent" if sent else "unsupported").inc()
            self._record(
                "barge_in",
                item_id=cut.item_id,
                audio_end_ms=cut.audio_end_ms,
                sent_ms=cut.sent_ms,
                unheard_ms=cut.sent_ms - cut.audio_end_ms,
                response_id=active or "",
            )
        if not truncations:
            self._record(
                "barge_in",
                item_id="",
                audio_end_ms=0,
                sent_ms=0,
                response_id=active or "",
            )
        log.info("barge-in", truncations=len(truncations), response_active=active is not None)

    async def _send_digits(self, digits: list[str]) -> None:
        self.tool_calls.queue_text(f"The caller pressed {' '.join(digits)} on the keypad.")
        await self.tool_calls.flush()

    def _model_error(self, event: ModelError) -> None:
        benign = event.code in BENIGN_MODEL_ERRORS
        self.metrics.model_errors.labels(event.code).inc()
        if event.code == "invalid_value" and "shorter than" in event.message:
            self.metrics.truncations.labels("error").inc()
        (log.info if benign else log.warning)(
            "model error", code=event.code, message=event.message, benign=benign
        )
        self._record("model_error", code=event.code, message=event.message, benign=benign)

    def finish(self, end_reason: str | None = None) -> str:
        """Record the end of the call once; returns the reason recorded."""
        reason = self.end_reason or end_reason or "stream_closed"
        self.end_reason = reason
        self.store.update_call(
            self.call_sid,
            frames_in=self.frames_in,
            caller_audio_ms=self.ms_in,
            agent_audio_ms=round(self.ms_out),
            barge_ins=self.barge_ins,
            model_reconnects=self.model_reconnects,
        )
        self.store.call_ended(self.call_sid, end_reason=reason)
        self.metrics.calls.labels(reason).inc()
        if self.tool_calls.audit is not None:
            self.tool_calls.audit.call_ended(self.call_sid)
        log.info(
            "call ended", end_reason=reason, frames_in=self.frames_in, barge_ins=self.barge_ins
        )
        return reason
