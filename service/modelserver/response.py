"""Sans-I/O streaming of one response (B.4 event order, B.5 function calls).

The response is a generator of events interleaved with steps (:mod:`.outputs`: ``Wait`` for
pacing, ``Until`` for engine work on another thread); :meth:`ActiveResponse.advance` runs it
up to the current time. Cancelling closes the generator and finishes whatever item was open
with ``status: "incomplete"`` (B.6). A scripted response plays a :class:`Turn`; an engine
response (``plan`` given) plays the brain's decision with streaming speech (:mod:`.streaming`).

Memory: the synthesizer is consumed chunk by chunk; at most one chunk of audio is held (an
engine response: one sentence, see :mod:`.streaming`).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from service.modelserver.config import AudioFormat, audio_format
from service.modelserver.conversation import Conversation, Item, words_due
from service.modelserver.outputs import Drop, Output, Step, Until, Wait
from service.modelserver.protocol import IdFactory
from service.modelserver.script import ErrorSpec, ResponseRequest, Script, Turn
from service.modelserver.streaming import EngineOutputs
from service.modelserver.usage import (
    AUDIO_MS_PER_OUTPUT_TOKEN,
    context_tokens,
    text_tokens,
    usage,
)

if TYPE_CHECKING:
    from service.modelserver.engine.background import Prefetch
    from service.modelserver.engine.base import Decision, SpeechChunk
    from service.modelserver.engine.engine import EngineSession

__all__ = ["ActiveResponse", "Drop"]


class ActiveResponse(EngineOutputs):
    """One response from ``response.created`` to ``response.done``.

    Invariants: exactly one ``response.done`` is produced; every ``output_item.added`` gets an
    ``output_item.done``; when ``in_conversation`` every output item is added to the
    conversation (``conversation.item.added``/``.done``).
    """

    def __init__(
        self,
        *,
        ids: IdFactory,
        conversation: Conversation,
        session: dict[str, Any],
        overrides: dict[str, Any],
        turn: Turn | None,
        request: ResponseRequest,
        script: Script,
        now: float,
        plan: Future[Decision] | None = None,
        engine: EngineSession | None = None,
    ) -> None:
        self.ids = ids
        self.id = ids.new("resp")
        self.conversation = conversation
        self.turn = turn or Turn()
        self.plan = plan  # engine responses: the brain's decision, computed off the loop
        self.engine = engine
        self.speech: Prefetch[SpeechChunk] | None = None  # engine: the reply being synthesized
        self.request = request
        self.script = script
        self.in_conversation = overrides.get("conversation", "auto") != "none"
        self.modalities: list[str] = (
            overrides.get("output_modalities") or session["output_modalities"]
        )
        out_cfg = {**session["audio"]["output"], **(overrides.get("audio") or {}).get("output", {})}
        self.format_json: dict[str, Any] = out_cfg["format"]
        self.format: AudioFormat = audio_format(out_cfg["format"])
        self.voice_name: str = out_cfg.get("voice") or "marin"
        self.max_output_tokens: int | str = overrides.get(
            "max_output_tokens", session["max_output_tokens"]
        )
        self.metadata: dict[str, str] | None = overrides.get("metadata")
        instructions = overrides.get("instructions") or session["instructions"]
        self.input_tokens = context_tokens(conversation, instructions)  # before our output
        self.status = "in_progress"
        self.status_details: dict[str, Any] | None = None
        self.outputs: list[Output] = []
        self.audio_ms = 0.0  # audio sent over all items of this response
        self.finished = False
        self.drop: Drop | None = None
        self._capped = False  # audio cut short by max_output_tokens
        self._t0 = now + script.first_audio_delay_ms / 1000.0
        self._wait: float | None = None
        self._until: Until | None = None
        self._steps = self._run()

    # -- driving --------------------------------------------------------------------------
    def advance(self, now: float) -> list[dict[str, Any]]:
        """Events due by ``now``; sets :attr:`finished` after ``response.done``."""
        out: list[dict[str, Any]] = []
        while not self.finished and self.drop is None:
            if self._wait is not None:
                if self._wait > now:
                    break
                self._wait = None
            if self._until is not None:
                if not self._until.ready():
                    break  # engine work in progress: its waker brings us back
                self._until = None
            step = next(self._steps, None)
            if step is None:
                self.finished = True
            elif isinstance(step, Wait):
                self._wait = step.until
            elif isinstance(step, Until):
                self._until = step
            elif isinstance(step, Drop):
                self.drop = step
            else:
                out.append(step)
        return out

    def next_deadline(self) -> float | None:
        return None if self.finished or self.drop else self._wait

    @property
    def waiting(self) -> bool:
        """Blocked on engine work (not on time): only a wake-up moves it on."""
        return self._until is not None and not self.finished

    def cancel(self, reason: str) -> list[dict[str, Any]]:
        """B.4/B.6: close the open item as incomplete, then ``response.done`` cancelled."""
        if self.finished:
            return []
        self._steps.close()  # an engine response's finally stops its synthesis here
        if self.plan is not None:
            self.plan.cancel()  # not started yet: never run the brain for it
        out: list[dict[str, Any]] = []
        for output in self.outputs:
            if not output.finished:
                out += self._finish(output, "incomplete")
        self.status = "cancelled"
        self.status_details = {"type": "cancelled", "reason": reason}
        out.append(self._event("response.done", response=self.snapshot()))
        self.finished = True
        return out

    def stop_item_audio(self, item_id: str, audio_end_ms: int) -> None:
        """A truncate hit an item still streaming: send no more of its audio (B.3)."""
        for output in self.outputs:
            if output.item.id == item_id and not output.finished:
                output.stopped = True
                if output.word_starts is not None:
                    due = self._words_before(output, audio_end_ms)
                else:
                    due = words_due(len(output.words), output.total_ms, audio_end_ms)
                output.words_sent = min(output.words_sent, due)
                self._wait = None  # finish the item now rather than at the next chunk's time

    # -- shapes ---------------------------------------------------------------------------
    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "event_id": self.ids.new("event"), **fields}

    def _new_id(self, prefix: str) -> str:
        return self.ids.new(prefix)

    def snapshot(self) -> dict[str, Any]:
        """The ``response`` object of response.created/done (B.4); audio bytes omitted."""
        done = self.status != "in_progress"
        return {
            "object": "realtime.response",
            "id": self.id,
            "status": self.status,
            "status_details": self.status_details,
            "output": [o.item.public() for o in self.outputs] if done else [],
            "conversation_id": self.conversation.id if self.in_conversation else None,
            "output_modalities": list(self.modalities),
            "max_output_tokens": self.max_output_tokens,
            "audio": {"output": {"format": dict(self.format_json), "voice": self.voice_name}},
            "usage": self._usage() if done else None,
            "metadata": self.metadata,
        }

    def _usage(self) -> dict[str, Any]:
        text = sum(
            text_tokens(o.transcript or str(o.item.data.get("arguments", ""))) for o in self.outputs
        )
        return usage(self.input_tokens, text, self.audio_ms)

    # -- the script of events -------------------------------------------------------------
    def abandon(self) -> None:
        """The connection is gone: stop engine work, emit nothing."""
        self._steps.close()
        if self.plan is not None:
            self.plan.cancel()
        self.finished = True

    def _run(self) -> Iterator[Step]:
        yield self._event("response.created", response=self.snapshot())
        # B.4: rate_limits.updated at the start of each response.
        yield self._event(
            "rate_limits.updated",
            rate_limits=[
                {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
                {"name": "tokens", "limit": 800000, "remaining": 795000, "reset_seconds": 0.375},
            ],
        )
        if self.plan is not None:
            yield from self._engine_body()
        else:
            yield from self._scripted_body()
        yield self._event("response.done", response=self.snapshot())

    def _scripted_body(self) -> Iterator[Step]:
        if self.turn.error_event:
            yield self._error(self.turn.error_event)
        if self.turn.fail:
            spec = self.turn.fail
            self.status = "failed"
            self.status_details = {
                "type": "failed",
                "error": {"type": spec.type, "code": spec.code, "message": spec.message},
            }
            return
        if self.turn.drop_after_ms == 0:
            yield Drop(self.turn.drop_close_code)
        if self.turn.speaks:
            yield from self._message()
        if self.turn.function_call:
            yield from self._function_call(self.turn.function_call)
        # A truncate mid-stream leaves its item incomplete but the response completed.
        self.status = "incomplete" if self._capped else "completed"
        if self._capped:
            self.status_details = {"type": "incomplete", "reason": "max_output_tokens"}

    def _error(self, spec: ErrorSpec) -> dict[str, Any]:
        error = {"type": spec.type, "code": spec.code, "message": spec.message}
        return self._event("error", error={**error, "param": spec.param, "event_id": None})

    def _open(self, data: dict[str, Any]) -> Iterator[dict[str, Any]]:
        item = Item(data, response_id=self.id)
        output = Output(len(self.outputs), item)
        self.outputs.append(output)
        yield self._event(
            "response.output_item.added",
            response_id=self.id,
            output_index=output.index,
            item=item.public(),
        )
        if self.in_conversation:
            previous = self.conversation.add(item)
            yield self._event(
                "conversation.item.added", previous_item_id=previous, item=item.public()
            )

    def _finish(self, output: Output, status: str) -> list[dict[str, Any]]:
        """Close an output item: part/stream *.done events, then output_item.done (B.4)."""
        output.finished = True
        item, data = output.item, output.item.data
        ref = {"response_id": self.id, "item_id": item.id, "output_index": output.index}
        events: list[dict[str, Any]] = []
        if data["type"] == "message":
            transcript = output.transcript
            if "audio" in self.modalities:
                events.append(self._event("response.output_audio.done", **ref, content_index=0))
                events.append(
                    self._event(
                        "response.output_audio_transcript.done",
                        **ref,
                        content_index=0,
                        transcript=transcript,
                    )
                )
                part = {"type": "audio", "transcript": transcript}
                data["content"] = [{"type": "output_audio", "transcript": transcript}]
            else:
                events.append(
                    self._event(
                        "response.output_text.done", **ref, content_index=0, text=transcript
                    )
                )
                part = {"type": "text", "text": transcript}
                data["content"] = [{"type": "output_text", "text": transcript}]
            events.append(
                self._event("response.content_part.done", **ref, content_index=0, part=part)
            )
        data["status"] = status
        events.append(
            self._event(
                "response.output_item.done",
                response_id=self.id,
                output_index=output.index,
                item=item.public(),
            )
        )
        if self.in_conversation:
            events.append(self._event("conversation.item.done", item=item.public()))
        return events

    def _message(self) -> Iterator[Step]:
        data = {
            "id": self.ids.new("item"),
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        yield from self._open(data)
        output = self.outputs[-1]
        output.words = self.turn.text.split()
        total = self.turn.audio_ms
        cap = self.max_output_tokens
        capped = isinstance(cap, int) and total > cap * AUDIO_MS_PER_OUTPUT_TOKEN
        if capped:  # B.4: status incomplete, reason max_output_tokens
            self._capped = True
            total = int(cap) * AUDIO_MS_PER_OUTPUT_TOKEN
        output.total_ms = total
        ref = {"response_id": self.id, "item_id": output.item.id, "output_index": output.index}
        audio = "audio" in self.modalities
        yield from self._add_content_part(output, ref, audio)
        if not audio:
            for i in range(words_due(len(output.words), self.turn.audio_ms, total)):
                output.words_sent = i + 1
                delta = output.words[i] if i == 0 else " " + output.words[i]
                yield self._event("response.output_text.delta", **ref, content_index=0, delta=delta)
        else:
            yield from self._stream_audio(output, ref)
        stopped = output.stopped or capped
        yield from self._finish(output, "incomplete" if stopped else "completed")

    def _stream_audio(self, output: Output, ref: dict[str, Any]) -> Iterator[Step]:
        rate, pace = self.format.rate, self.script.pace
        chunk_bytes = rate * self.script.chunk_ms // 1000 * 2
        pending = bytearray()
        pcm = self.script.voice.synthesize(self.turn.text, output.total_ms, rate)
        while not output.stopped:
            while len(pending) < chunk_bytes:  # re-chunk the voice's output into chunk_ms
                piece = next(pcm, None)
                if piece is None:
                    break
                pending += piece
            if not pending:
                break
            chunk, pending = bytes(pending[:chunk_bytes]), pending[chunk_bytes:]
            # Pacing (B.8: deltas arrive faster than real time): chunk k is due when
            # pace × the audio before it has elapsed since the first audio was due.
            yield Wait(self._t0 + (self.audio_ms / 1000.0 / pace if pace else 0.0))
            if output.stopped:  # truncated while we waited
                break
            yield from self._send_audio(output, ref, chunk)
            drop_at = self.turn.drop_after_ms
            if drop_at and output.sent_ms >= drop_at:
                yield Drop(self.turn.drop_close_code)
