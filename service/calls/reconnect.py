"""The worker's half of model session survival: replacing a dropped or aged session.

``CallWorker`` inherits this; it is its own module so the policy of a drop (issue 17) reads
in one place and the worker's hot path stays small. What it decides: whether a session that
ended is replaced (``_follow_session``), when an aged one is rolled over (``_roll_if_due``:
between turns, when the carrier has played the last of the agent's audio), how the fresh
session is opened and told the conversation (``_replace_session``), and what the agent does
next (``_resume_turn``). The numbers are ``survival.SurvivalPolicy``'s.

Invariant: while ``model_ready`` is False, caller audio goes to ``_early_audio`` (at most
``_held_limit`` frames; the rest counted in ``held_frames_dropped``), never to the model.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import structlog

from service.audio.transcode import PcmToUlaw
from service.calls.mirror import ConversationMirror, replay_summary
from service.calls.playback import PlaybackLedger
from service.calls.responses import Active, Requested, Retry
from service.calls.survival import RESUME_INSTRUCTIONS, SurvivalPolicy
from service.realtime.events import ModelClosed, ModelEvent, Transcript
from service.realtime.session import ModelSession, ModelUnavailable

if TYPE_CHECKING:
    from service.calls.tools import ToolCoordinator
    from service.metrics import Metrics

__all__ = ["MAX_EARLY_AUDIO_FRAMES", "SessionSurvival"]

log = structlog.get_logger("service.calls.worker")

# Caller audio held while the model session opens (the greeting is being prepared).
MAX_EARLY_AUDIO_FRAMES = 100  # 2 s of 20 ms frames, 16 KB at most


class SessionSurvival:
    """Mixed into ``CallWorker``; the attributes below are the worker's."""

    model: ModelSession
    model_ready: bool
    model_reconnects: int
    survival: SurvivalPolicy
    mirror: ConversationMirror
    ledger: PlaybackLedger
    tool_calls: ToolCoordinator
    metrics: Metrics
    clock: Callable[[], float]
    interrupted_responses: set[str]
    held_frames_dropped: int
    _early_audio: deque[bytes]
    _held_limit: int
    _session_started_at: float
    _roll_requested: bool
    _quick_drops: int
    _hung_up: asyncio.Event
    _tasks: list[asyncio.Task[None]]
    _to_caller: PcmToUlaw | None

    # Provided by CallWorker.
    async def on_model_event(self, event: ModelEvent) -> None: ...
    async def _end_call(self, reason: str, *, failed: bool = False) -> None: ...
    def _record(self, kind: str, **fields: Any) -> None: ...
    def _model_audio(self, ulaw: bytes) -> bytes: ...

    def _mirror_transcript(self, event: Transcript) -> None:
        if event.role == "caller":
            self.mirror.caller_said(event.text)
        else:
            self.mirror.agent_said(event.item_id, event.text)

    async def _follow_session(self, model: ModelSession) -> str | None:
        """Handle the session's events until it ends. Returns why it should be replaced
        (it dropped, or it is due to roll over), or None when the call is done with it."""
        async with aclosing(model.events()) as events:  # type: ignore[type-var]
            async for event in events:
                if isinstance(event, ModelClosed):
                    if self._roll_requested and not self._hung_up.is_set():
                        return "session_max_age"
                    # call_over: the provider ended the call itself; nothing to replace.
                    if self._hung_up.is_set() or event.call_over or not self._may_replace(model):
                        await self.on_model_event(event)
                        return None
                    log.warning("model session dropped; replacing it", reason=event.reason)
                    return f"dropped: {event.reason}"
                await self.on_model_event(event)
                if self._roll_due(model):
                    return "session_max_age"
        return None

    def _may_replace(self, model: ModelSession) -> bool:
        return getattr(model, "can_reopen", False) and self.survival.attempts > 0

    def _roll_if_due(self) -> None:
        """The carrier just played the last of the agent's audio: the moment between turns
        when no model event comes to check on. An aged session is closed here and replaced
        (the caller's next words are held meanwhile)."""
        if self._roll_due(self.model):
            self._roll_requested = True
            log.info("rolling the model session before its maximum length")
            self._tasks.append(asyncio.create_task(self.model.close()))

    def _roll_due(self, model: ModelSession) -> bool:
        """Between turns only: nothing playing, no response, no tool, no request waiting."""
        return (
            self.model_ready
            and not self._roll_requested
            and self.survival.roll_due(self.clock() - self._session_started_at)
            and self._may_replace(model)
            and not self.ledger.playing
            and model.active_response_id is None
            and not self.tool_calls.running
            and not self.tool_calls.slot.busy(None)
            and not self._hung_up.is_set()
        )

    async def _replace_session(self, model: ModelSession, reason: str) -> bool:
        """Open a fresh session, tell it the conversation, send the caller audio held in the
        gap, and carry on. Bounded: ``survival.attempts`` tries, each within
        ``attempt_timeout_s``; then the call ends failed (the carrier's apology)."""
        lost_at = self.clock()
        self._roll_requested = False
        # A session that keeps dropping right after it was opened is not worth a storm of
        # reconnects: after ``attempts`` such drops in a row the call ends.
        if lost_at - self._session_started_at < self.survival.stable_after_s:
            self._quick_drops += 1
        else:
            self._quick_drops = 0
        if self._quick_drops >= max(1, self.survival.attempts):
            self._record(
                "error",
                reason="model_keeps_dropping",
                detail=f"{self._quick_drops} sessions in a row dropped within "
                f"{self.survival.stable_after_s:g} s; last: {reason}"[:500],
            )
            await self._end_call("model_keeps_dropping", failed=True)
            return False
        was_speaking = self.mirror.unfinished_agent_line() and reason != "session_max_age"
        # Invariant: from here until the new session is ready, caller audio is held
        # (bounded) in _early_audio instead of going to the model.
        self.model_ready = False
        self._held_limit = self.survival.held_frames
        self.held_frames_dropped = 0
        failure = ""
        for attempt in range(1, self.survival.attempts + 1):
            if (delay := self.survival.delay_before(attempt)) > 0:
                await asyncio.sleep(delay)
            if self._hung_up.is_set():
                return False
            try:
                async with asyncio.timeout(self.survival.attempt_timeout_s):
                    await model.reopen()
                break
            except (ModelUnavailable, TimeoutError) as exc:
                failure = str(exc) or type(exc).__name__
                log.warning("model reconnect attempt failed", attempt=attempt, error=failure)
        else:
            self._record(
                "error",
                reason="model_reconnect_failed",
                detail=f"{reason}; {self.survival.attempts} attempts; last: {failure}"[:500],
            )
            await self._end_call("model_reconnect_failed", failed=True)
            return False
        items = self.mirror.items(self.ledger.sent_ms)
        self.mirror.session_replaced()
        await model.replay(items)
        self.interrupted_responses.clear()  # ids of the old session mean nothing now
        if self._to_caller is not None:
            self._to_caller = PcmToUlaw(model.audio_format.sample_rate)
        held = len(self._early_audio)
        while self._early_audio:
            await model.send_audio(self._model_audio(self._early_audio.popleft()))
        self.model_ready = True
        self._held_limit = MAX_EARLY_AUDIO_FRAMES
        self._session_started_at = self.clock()
        gap_ms = round((self.clock() - lost_at) * 1000)
        self.model_reconnects += 1
        self.metrics.model_reconnects.inc()
        log.info("model session replaced", reason=reason, gap_ms=gap_ms, attempt=attempt)
        self._record(
            "model_reconnected",
            reason=reason[:200],
            gap_ms=gap_ms,
            attempts=attempt,
            replayed=len(items),
            held_frames=held,
            dropped_frames=self.held_frames_dropped,
            **{f"replayed_{kind}": n for kind, n in replay_summary(items).items()},
        )
        await self._resume_turn(model, was_speaking)
        return True

    async def _resume_turn(self, model: ModelSession, was_speaking: bool) -> None:
        """A request of ours that died with the old session is asked again; an answer cut
        by the drop is finished in a sentence or two."""
        slot = self.tool_calls.slot
        if isinstance(slot.state, Requested | Active):
            slot.state = Retry(slot.state.purpose, slot.state.answers, 0)
        if isinstance(slot.state, Retry) or not was_speaking:
            await self.tool_calls.flush()
            return
        await model.create_response(RESUME_INSTRUCTIONS, purpose="reply")
