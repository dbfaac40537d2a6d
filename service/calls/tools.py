"""Tool calls during a call: run them without stalling audio, answer every one, audit it all.

The worker hands this coordinator the model's tool requests and the response life cycle; the
coordinator decides when outputs and ``response.create`` go out. Rules (issue "Tools"):

* each tool runs as its own task: caller audio, agent audio and barge-in keep flowing;
* a ``call_id`` runs at most once, however often the request arrives;
* every call gets an output (a result, or an error the model can speak about), sent as a
  ``function_call_output`` item followed by ``response.create`` — never while a response is
  active: outputs wait in ``pending`` until the response slot (``responses.ResponseSlot``,
  B.3: one response at a time) is free;
* a tool slower than ``filler_ms`` gets a short spoken holding phrase (out of band, so it
  does not enter the conversation);
* on barge-in, cancellable tools are cancelled (and still answered), the others finish;
* the audit records requested → started → finished → spoken | interrupted, where "spoken"
  means the playback ledger saw the answer's audio played to the end.

Memory per call: one entry per tool call in flight, one per answer not yet fully played, and
``CallIdLedger``'s bounded set of call_ids.

The response's ``purpose`` is a ``realtime.events.Purpose``; only this module and the worker
choose one.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson
import structlog

from service.agent.tools import (
    CallIdLedger,
    ToolContext,
    ToolOutcome,
    ToolRegistry,
    redact,
    redact_arguments,
    run_tool,
)
from service.calls.playback import PlaybackLedger, Truncation
from service.calls.responses import Answers, ResponseSlot
from service.realtime.events import (
    AgentAudio,
    Purpose,
    ResponseDone,
    ResponseRefused,
    ResponseStarted,
    ToolCallRequested,
)

if TYPE_CHECKING:
    from service.metrics import Metrics
    from service.realtime.session import ModelSession
    from service.store.audit import ToolAudit

__all__ = ["CallLater", "ToolCoordinator"]


class Cancellable(Protocol):
    def cancel(self) -> None: ...


CallLater = Callable[[float, Callable[[], None]], Cancellable]  # loop.call_later's shape

log = structlog.get_logger(__name__)

FILLER_INSTRUCTIONS = (
    "In a few words, tell the caller you are checking that now. Do not give any details."
)
GOODBYE_INSTRUCTIONS = "Say a short, friendly goodbye to the caller. Nothing else."
END_CALL = "end_call"
CLOSE_GRACE_S = 2.0  # how long close() lets a hang-up in progress finish


@dataclass
class _Answer:
    """A response that speaks the results of ``call_ids``; tracked until heard or cut."""

    call_ids: Answers
    items: dict[str, None] = field(default_factory=dict)  # item ids, in order
    done: bool = False


class ToolCoordinator:
    def __init__(
        self,
        *,
        call_sid: str,
        registry: ToolRegistry,
        ctx: ToolContext,
        model: ModelSession,
        ledger: PlaybackLedger,
        audit: ToolAudit | None,
        metrics: Metrics | None = None,
        filler_ms: int = 700,
        hang_up: Callable[[str], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
        ack_timeout: float = 5.0,
        call_later: CallLater | None = None,
    ) -> None:
        self.call_sid = call_sid
        self.registry = registry
        self.ctx = ctx
        self.model = model
        self.ledger = ledger
        self.audit = audit
        self.metrics = metrics
        self.filler_ms = filler_ms
        self.hang_up = hang_up
        self.clock = clock
        self.seen = CallIdLedger()
        # call_id → (task, tool name, cancellable)
        self.running: dict[str, tuple[asyncio.Task[None], str, bool]] = {}
        self.pending: deque[tuple[str, str, str]] = deque()  # (call_id, name, output)
        self.pending_texts: deque[str] = deque()
        self.slot = ResponseSlot(ack_timeout=ack_timeout)
        self.answers: dict[str, _Answer] = {}
        self.goodbye_call: tuple[str, str] | None = None
        self.farewell_reason: str | None = None
        self.filler_task: asyncio.Task[None] | None = None
        # The event loop's timer by default; a simulated clock brings its own (tests).
        self._call_later = call_later
        self._watchdog: Cancellable | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # hang-ups and flushes started by events
        self._drained = asyncio.Event()  # set when the carrier has played all we sent
        # Responses whose audio the model vendor itself is playing (SIP/WebRTC calls).
        self.vendor_playing: set[str] = set()

    # --- the audit -----------------------------------------------------------------------

    def _audit(self, call_id: str, name: str, state: str, **fields: Any) -> None:
        if self.audit is not None:
            spec = self.registry.get(name)
            sensitive = spec.sensitive if spec is not None else frozenset()
            self.audit.record(self.call_sid, call_id, name, state, sensitive=sensitive, **fields)

    # --- requests ------------------------------------------------------------------------

    async def requested(self, event: ToolCallRequested) -> None:
        if not self.seen.first_time(event.call_id):
            log.info("duplicate tool call ignored", call_id=event.call_id, name=event.name)
            self._audit(event.call_id, event.name, "duplicate")
            return
        spec = self.registry.get(event.name)
        sensitive = spec.sensitive if spec is not None else frozenset()
        # Redacted even when the model's arguments are not valid JSON (then summarised).
        arguments = redact_arguments(event.arguments, sensitive)
        self._audit(event.call_id, event.name, "requested", arguments=arguments)
        if event.name == END_CALL and spec is not None:
            await self._begin_goodbye(event)
            return
        task = asyncio.create_task(self._run(event))
        self.running[event.call_id] = (task, event.name, bool(spec and spec.cancellable))
        task.add_done_callback(lambda _t, cid=event.call_id: self.running.pop(cid, None))
        self._arm_filler()

    async def _run(self, event: ToolCallRequested) -> None:
        spec = self.registry.get(event.name)
        self._audit(event.call_id, event.name, "started")
        started = self.clock()
        try:
            outcome = await run_tool(spec, event.arguments, self.ctx)
        except asyncio.CancelledError:
            outcome = ToolOutcome(
                status="cancelled",
                output=orjson.dumps(
                    {"error": "cancelled", "message": "The caller interrupted; not finished."}
                ).decode(),
                error="cancelled by barge-in",
                duration_ms=(self.clock() - started) * 1000,
            )
        if self.metrics is not None:
            self.metrics.tool_calls.labels(event.name, outcome.status).inc()
            self.metrics.tool_latency.labels(event.name).observe(outcome.duration_ms / 1000)
        result = outcome.result
        if spec is not None and result is not None:
            result = redact(result, spec.sensitive)
        self._audit(
            event.call_id,
            event.name,
            "finished",
            status=outcome.status,
            result=result,
            error=outcome.error,
            duration_ms=round(outcome.duration_ms, 1),
        )
        self.pending.append((event.call_id, event.name, outcome.output))
        await self.flush()

    def _arm_filler(self) -> None:
        if self.filler_task is None or self.filler_task.done():
            self.filler_task = asyncio.create_task(self._filler())

    async def _filler(self) -> None:
        await asyncio.sleep(self.filler_ms / 1000)
        # Say a holding phrase only if a tool is still busy and nothing else is being said.
        if self.running and not self._busy() and not self.ledger.playing:
            await self.model.create_response(
                FILLER_INSTRUCTIONS, purpose="filler", out_of_band=True
            )

    def queue_text(self, text: str) -> None:
        """A user message (e.g. DTMF) that should get an answer; sent when no response runs."""
        self.pending_texts.append(text)

    # --- sending outputs, one response at a time -----------------------------------------

    def _busy(self) -> bool:
        return self.slot.busy(self.model.active_response_id)

    async def flush(self) -> None:
        """Send what is waiting, then ask for one response to speak about all of it.

        Invariant: the slot is taken before the first await, so two tools finishing at once
        cannot both pass the ``_busy()`` check and send two requests.
        """
        if self._busy():
            return
        retry = self.slot.retry_request(self.clock())
        if retry is not None:
            # Our last request lost a race, was refused or went unanswered: ask again.
            log.info("asking for the response again", purpose=retry.purpose, attempt=retry.attempt)
            await self._send_request(retry.purpose)
            return
        if not (self.pending or self.pending_texts):
            return
        outputs, self.pending = list(self.pending), deque()
        texts, self.pending_texts = list(self.pending_texts), deque()
        answered = tuple((call_id, name) for call_id, name, _ in outputs)
        purpose: Purpose = "tool_answer" if answered else "reply"
        if self.goodbye_call is not None and self.goodbye_call in answered:
            purpose = "goodbye"
        self.slot.request(purpose, answered, self.clock())
        for call_id, _, output in outputs:
            await self.model.function_output(call_id, output)
        for text in texts:
            await self.model.send_user_text(text)
        await self._send_request(purpose)

    async def _send_request(self, purpose: Purpose) -> None:
        instructions = GOODBYE_INSTRUCTIONS if purpose == "goodbye" else None
        self._arm_watchdog()
        await self.model.create_response(instructions, purpose=purpose)

    def _arm_watchdog(self) -> None:
        """Wake up at the request's deadline: an unanswered request must not block the slot."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        deadline = self.slot.deadline()
        if deadline is not None:
            delay = max(0.0, deadline - self.clock())
            call_later = self._call_later or asyncio.get_running_loop().call_later
            self._watchdog = call_later(delay, self._on_deadline)

    def _on_deadline(self) -> None:
        self._watchdog = None
        if self.slot.deadline() is None:
            return  # acknowledged in time
        if self.slot.deadline() > self.clock():  # type: ignore[operator]
            self._arm_watchdog()  # the clock and the loop disagree a little: wait the rest
            return
        dropped = self.slot.expire(self.clock())
        log.warning(
            "response request was never acknowledged",
            timeout_s=self.slot.ack_timeout,
            given_up=dropped is not None,
        )
        if self.metrics is not None:
            self.metrics.model_errors.labels("response_not_acknowledged").inc()
        self._spawn(self.flush())

    def refused(self, event: ResponseRefused) -> None:
        """The model answered our request with an error: retry once it may work, or drop."""
        dropped = self.slot.refused(busy=event.busy)
        if dropped is not None:
            log.warning("response request refused; given up", code=event.code)
        self._spawn(self.flush())

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def response_started(self, event: ResponseStarted) -> None:
        active = self.slot.started(event.response_id, event.purpose)
        if active is None:
            return  # a filler, a greeting, or a response the server's VAD started
        if active.answers:
            self.answers[event.response_id] = _Answer(active.answers)

    async def response_done(self, event: ResponseDone) -> None:
        finished = self.slot.done(event.response_id)
        answer = self.answers.get(event.response_id)
        if answer is not None:
            answer.done = True
            if event.response_id in self.vendor_playing:
                pass  # heard or cut: the vendor's playback end says which
            elif not answer.items:
                # The answer spoke nothing (e.g. it called another tool): nothing to hear.
                self._close_answer(event.response_id, "unspoken", heard_ms=0, sent_ms=0)
            else:
                self.check_heard()
        await self.flush()
        if finished is not None and finished.purpose == "goodbye":
            self._spawn(self._hang_up_after_goodbye())

    def agent_audio(self, event: AgentAudio) -> None:
        answer = self.answers.get(event.response_id)
        if answer is not None:
            answer.items[event.item_id] = None

    def check_heard(self) -> None:
        """After a mark echo: answers whose audio has all been played were spoken."""
        if not self.ledger.playing:
            self._drained.set()
        now = self.clock()
        for response_id, answer in list(self.answers.items()):
            if not answer.done or not answer.items:
                continue
            sent = sum(self.ledger.sent_ms(item) for item in answer.items)
            heard = sum(self.ledger.heard_ms(item, now) for item in answer.items)
            if heard >= sent:
                self._close_answer(
                    response_id, "spoken", heard_ms=round(heard), sent_ms=round(sent)
                )

    def barge_in(self, truncations: list[Truncation]) -> None:
        """The caller talked over the agent: cut answers are interrupted; cancel what may be."""
        cut = {t.item_id: t for t in truncations}
        for response_id, answer in list(self.answers.items()):
            hit = [cut[item] for item in answer.items if item in cut]
            if hit or not answer.done:
                heard = sum(t.audio_end_ms for t in hit)
                sent = sum(round(self.ledger.sent_ms(item)) for item in answer.items)
                self._close_answer(response_id, "interrupted", heard_ms=heard, sent_ms=sent)
        for call_id, (task, name, cancellable) in list(self.running.items()):
            # The caller talked while the tool ran: its answer will come to a changed moment.
            self._audit(call_id, name, "interrupted", during="tool_run", cancelled=cancellable)
            if cancellable:
                task.cancel()

    # --- calls whose audio the model vendor plays (SIP/WebRTC): no ledger, no marks -------

    def playback_started(self, response_id: str) -> None:
        self.vendor_playing.add(response_id)

    def playback_ended(self, response_id: str, *, cleared: bool) -> None:
        """The vendor played ``response_id`` out, or cleared it on a barge-in: the answer it
        spoke was heard or interrupted (the vendor does not say how much was heard)."""
        self.vendor_playing.discard(response_id)
        state = "interrupted" if cleared else "spoken"
        self._close_answer(response_id, state, heard_ms=0, sent_ms=0)
        if not self.vendor_playing:
            self._drained.set()

    def withdrawn(self, call_ids: tuple[str, ...]) -> None:
        """The model cancelled these calls: stop them; their outcome is audited as cancelled."""
        for call_id in call_ids:
            entry = self.running.get(call_id)
            if entry is not None:
                task, name, _ = entry
                self._audit(call_id, name, "cancel_requested", by="model")
                task.cancel()

    def _close_answer(self, response_id: str, state: str, *, heard_ms: int, sent_ms: int) -> None:
        answer = self.answers.pop(response_id, None)
        if answer is None:
            return
        for call_id, name in answer.call_ids:
            self._audit(
                call_id, name, state, response_id=response_id, heard_ms=heard_ms, sent_ms=sent_ms
            )

    # --- end_call: goodbye first, then hang up --------------------------------------------

    async def _begin_goodbye(self, event: ToolCallRequested) -> None:
        """end_call: answer it at once so the model says goodbye; hang up once that is heard."""
        self._audit(event.call_id, event.name, "started")
        self.goodbye_call = (event.call_id, event.name)
        self.pending.append((event.call_id, event.name, orjson.dumps({"ending": True}).decode()))
        await self.flush()

    async def _hang_up_after_goodbye(self, *, limit_s: float = 10.0) -> None:
        if self.ledger.playing or self.vendor_playing:
            self._drained.clear()
            try:
                await asyncio.wait_for(self._drained.wait(), limit_s)
            except TimeoutError:
                log.warning("goodbye still playing after the limit; hanging up", limit_s=limit_s)
        if self.goodbye_call is None:  # a farewell the service asked for (e.g. draining)
            await self.hang_up(self.farewell_reason or "agent_hangup")
            return
        call_id, name = self.goodbye_call
        spec = self.registry.get(name)
        outcome = await run_tool(spec, "{}", self.ctx)
        self._audit(
            call_id,
            name,
            "finished",
            status=outcome.status,
            result=outcome.result,
            error=outcome.error,
            duration_ms=round(outcome.duration_ms, 1),
        )
        await self.hang_up("agent_hangup")

    async def farewell(self, reason: str, instructions: str) -> None:
        """The service ends the call: stop what is being said, say goodbye, then hang up."""
        self.farewell_reason = reason
        if self.model.active_response_id is not None:
            await self.model.cancel_response()
        self.slot.request("goodbye", (), self.clock(), force=True)
        self._arm_watchdog()
        await self.model.create_response(instructions, purpose="goodbye")

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._tasks:
            # A goodbye's hang-up ends the stream, and the stream's end closes us: let it
            # finish recording the end_call outcome (bounded) before anything is cancelled.
            await asyncio.wait(set(self._tasks), timeout=CLOSE_GRACE_S)
        tasks = [task for task, _, _ in self.running.values()]
        tasks += self._tasks
        if self.filler_task is not None:
            tasks.append(self.filler_task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
