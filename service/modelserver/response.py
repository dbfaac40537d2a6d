"""Sans-I/O streaming of one response (B.4 event order, B.5 function calls, B.6 cancel).

The response is a generator of events interleaved with steps (:mod:`.outputs`: ``Wait`` for
pacing, ``Until`` for engine work on another thread); :meth:`ActiveResponse.advance` runs it
up to the current time. Cancelling closes the generator and finishes whatever item was open
with ``status: "incomplete"`` (B.6). A scripted response plays a :class:`Turn`; an engine
response delegates its body to :class:`~.streaming.EngineSpeech`. Both write their items
through one :class:`~.outputs.Outputs`.

Memory per response: the synthesizer is consumed chunk by chunk and at most one chunk of
audio is held (engine speech: one sentence, see :mod:`.streaming`); items keep words, never
audio.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

from service.modelserver.config import AudioFormat, audio_format
from service.modelserver.conversation import Conversation, words_due
from service.modelserver.outputs import Drop, Output, Outputs, Step, Until, Wait
from service.modelserver.protocol import IdFactory
from service.modelserver.script import ErrorSpec, Script, Turn
from service.modelserver.streaming import EngineSpeech
from service.modelserver.usage import context_tokens, text_tokens, usage

if TYPE_CHECKING:
    from service.modelserver.engine.background import Prefetch
    from service.modelserver.engine.base import SpeechChunk

__all__ = ["ActiveResponse", "Drop"]

Event = dict[str, Any]
Failure = dict[str, Any]  # a failed response's status_details (B.4)


class ActiveResponse:
    """One response from ``response.created`` to ``response.done``.

    Invariants: exactly one ``response.done`` is produced; every ``output_item.added`` gets an
    ``output_item.done``; when ``in_conversation`` every output item is added to the
    conversation (``conversation.item.added``/``.done``). ``speech`` (an engine response)
    decides the body; otherwise ``turn`` does.
    """

    def __init__(
        self,
        *,
        ids: IdFactory,
        conversation: Conversation,
        session: dict[str, Any],
        overrides: dict[str, Any],
        turn: Turn | None,
        script: Script,
        now: float,
        speech: EngineSpeech | None = None,
    ) -> None:
        self.ids = ids
        self.id = ids.new("resp")
        self.conversation = conversation
        self.turn = turn or Turn()
        self.engine_speech = speech
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
        self.outputs = Outputs(
            ids=ids,
            response_id=self.id,
            conversation=conversation,
            in_conversation=self.in_conversation,
            modalities=self.modalities,
            audio=self.format,
            max_output_tokens=self.max_output_tokens,
            script=script,
            now=now,
        )
        self.finished = False
        self.drop: Drop | None = None
        self._wait: float | None = None
        self._until: Until | None = None
        self._steps = self._run()

    @property
    def audio_ms(self) -> float:
        """Audio sent over all items of this response."""
        return self.outputs.audio_ms

    @property
    def speech(self) -> Prefetch[SpeechChunk] | None:
        """An engine response: the reply being synthesized (a ``Prefetch``), else None."""
        return self.engine_speech.speech if self.engine_speech else None

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
        if self.engine_speech is not None:
            self.engine_speech.cancel()  # not started yet: never run the brain for it
        out = self.outputs.finish_open()
        self.status = "cancelled"
        self.status_details = {"type": "cancelled", "reason": reason}
        out.append(self.ids.event("response.done", response=self.snapshot()))
        self.finished = True
        return out

    def abandon(self) -> None:
        """The connection is gone: stop engine work, emit nothing."""
        self._steps.close()
        if self.engine_speech is not None:
            self.engine_speech.cancel()
        self.finished = True

    def stop_item_audio(self, item_id: str, audio_end_ms: int) -> None:
        """A truncate hit an item still streaming: send no more of its audio (B.3)."""
        if self.outputs.stop(item_id, audio_end_ms):
            self._wait = None  # finish the item now rather than at the next chunk's time

    # -- shapes ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The ``response`` object of response.created/done (B.4); audio bytes omitted."""
        done = self.status != "in_progress"
        return {
            "object": "realtime.response",
            "id": self.id,
            "status": self.status,
            "status_details": self.status_details,
            "output": [o.item.public() for o in self.outputs.items] if done else [],
            "conversation_id": self.conversation.id if self.in_conversation else None,
            "output_modalities": list(self.modalities),
            "max_output_tokens": self.max_output_tokens,
            "audio": {"output": {"format": dict(self.format_json), "voice": self.voice_name}},
            "usage": self._usage() if done else None,
            "metadata": self.metadata,
        }

    def _usage(self) -> dict[str, Any]:
        text = sum(
            text_tokens(o.transcript or str(o.item.data.get("arguments", "")))
            for o in self.outputs.items
        )
        return usage(self.input_tokens, text, self.audio_ms)

    # -- the script of events -------------------------------------------------------------
    def _run(self) -> Iterator[Step]:
        yield self.ids.event("response.created", response=self.snapshot())
        # B.4: rate_limits.updated at the start of each response.
        yield self.ids.event(
            "rate_limits.updated",
            rate_limits=[
                {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
                {"name": "tokens", "limit": 800000, "remaining": 795000, "reset_seconds": 0.375},
            ],
        )
        if self.engine_speech is not None:
            failure = yield from self.engine_speech.body(self.outputs)
        else:
            failure = yield from self._scripted_body()
        if failure is not None:
            self.status, self.status_details = "failed", failure
        elif self.outputs.capped:  # B.4: audio cut by max_output_tokens
            self.status = "incomplete"
            self.status_details = {"type": "incomplete", "reason": "max_output_tokens"}
        else:  # a truncate mid-stream leaves its item incomplete but the response completed
            self.status = "completed"
        yield self.ids.event("response.done", response=self.snapshot())

    def _scripted_body(self) -> Generator[Step, None, Failure | None]:
        """The turn's items; returns the failure if the turn scripts one."""
        if self.turn.error_event:
            yield self._error(self.turn.error_event)
        if self.turn.fail:
            spec = self.turn.fail
            return {
                "type": "failed",
                "error": {"type": spec.type, "code": spec.code, "message": spec.message},
            }
        if self.turn.drop_after_ms == 0:
            yield Drop(self.turn.drop_close_code)
        if self.turn.speaks:
            yield from self._message()
        if self.turn.function_call:
            yield from self.outputs.function_call(self.turn.function_call)
        return None

    def _error(self, spec: ErrorSpec) -> Event:
        error = {"type": spec.type, "code": spec.code, "message": spec.message}
        return self.ids.event("error", error={**error, "param": spec.param, "event_id": None})

    def _message(self) -> Iterator[Step]:
        out = self.outputs
        yield from out.open_message()
        output = out.items[-1]
        output.words = self.turn.text.split()
        total = self.turn.audio_ms
        capped = total > out.cap_ms
        if capped:  # B.4: status incomplete, reason max_output_tokens
            out.capped = True
            total = int(out.cap_ms)
        output.total_ms = total
        if out.audio:
            yield from self._stream_audio(output)
        else:
            yield from out.text(output, words_due(len(output.words), self.turn.audio_ms, total))
        stopped = output.stopped or capped
        yield from out.finish(output, "incomplete" if stopped else "completed")

    def _stream_audio(self, output: Output) -> Iterator[Step]:
        out = self.outputs
        pending = bytearray()
        pcm = self.script.voice.synthesize(self.turn.text, output.total_ms, out.format.rate)
        while not output.stopped:
            while len(pending) < out.chunk_bytes:  # re-chunk the voice's output into chunk_ms
                piece = next(pcm, None)
                if piece is None:
                    break
                pending += piece
            if not pending:
                break
            chunk, pending = bytes(pending[: out.chunk_bytes]), pending[out.chunk_bytes :]
            yield out.due()
            if output.stopped:  # truncated while we waited
                break
            yield from out.send_audio(output, chunk)
            drop_at = self.turn.drop_after_ms
            if drop_at and output.sent_ms >= drop_at:
                yield Drop(self.turn.drop_close_code)
