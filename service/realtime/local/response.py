"""Sans-I/O streaming of one response (B.4 event order, B.5 function calls).

The response is a generator of events interleaved with :class:`_Wait` markers (pacing);
:meth:`ActiveResponse.advance` runs it up to the current time. Cancelling closes the generator
and finishes whatever item was open with ``status: "incomplete"`` (B.6).

Memory: the synthesizer is consumed chunk by chunk; at most one chunk of audio is held.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from service.realtime.local.config import AudioFormat, audio_format
from service.realtime.local.conversation import Conversation, Item, words_due
from service.realtime.local.protocol import IdFactory
from service.realtime.local.script import ErrorSpec, FunctionCall, ResponseRequest, Script, Turn
from service.realtime.local.usage import (
    AUDIO_MS_PER_OUTPUT_TOKEN,
    context_tokens,
    text_tokens,
    usage,
)

__all__ = ["ActiveResponse", "Drop"]


@dataclass(frozen=True)
class _Wait:
    until: float


@dataclass(frozen=True)
class Drop:
    """The script asked to end the connection here (``Turn.drop_after_ms``)."""

    close_code: int | None


@dataclass
class _Output:
    index: int
    item: Item
    words: list[str] = field(default_factory=list)
    total_ms: int = 0
    sent_ms: float = 0.0
    words_sent: int = 0
    stopped: bool = False  # truncated while streaming
    finished: bool = False

    @property
    def transcript(self) -> str:
        return " ".join(self.words[: self.words_sent])


class ActiveResponse:
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
        turn: Turn,
        request: ResponseRequest,
        script: Script,
        now: float,
    ) -> None:
        self.ids = ids
        self.id = ids.new("resp")
        self.conversation = conversation
        self.turn = turn
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
        self.outputs: list[_Output] = []
        self.audio_ms = 0.0  # audio sent over all items of this response
        self.finished = False
        self.drop: Drop | None = None
        self._capped = False  # audio cut short by max_output_tokens
        self._t0 = now + script.first_audio_delay_ms / 1000.0
        self._wait: float | None = None
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
            step = next(self._steps, None)
            if step is None:
                self.finished = True
            elif isinstance(step, _Wait):
                self._wait = step.until
            elif isinstance(step, Drop):
                self.drop = step
            else:
                out.append(step)
        return out

    def next_deadline(self) -> float | None:
        return None if self.finished or self.drop else self._wait

    def cancel(self, reason: str) -> list[dict[str, Any]]:
        """B.4/B.6: close the open item as incomplete, then ``response.done`` cancelled."""
        if self.finished:
            return []
        self._steps.close()
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
                due = words_due(len(output.words), output.total_ms, audio_end_ms)
                output.words_sent = min(output.words_sent, due)
                self._wait = None  # finish the item now rather than at the next chunk's time

    # -- shapes ---------------------------------------------------------------------------
    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "event_id": self.ids.new("event"), **fields}

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
    def _run(self) -> Iterator[dict[str, Any] | _Wait | Drop]:
        yield self._event("response.created", response=self.snapshot())
        # B.4: rate_limits.updated at the start of each response.
        yield self._event(
            "rate_limits.updated",
            rate_limits=[
                {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
                {"name": "tokens", "limit": 800000, "remaining": 795000, "reset_seconds": 0.375},
            ],
        )
        if self.turn.error_event:
            yield self._error(self.turn.error_event)
        if self.turn.fail:
            spec = self.turn.fail
            self.status = "failed"
            self.status_details = {
                "type": "failed",
                "error": {"type": spec.type, "code": spec.code, "message": spec.message},
            }
        else:
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
        yield self._event("response.done", response=self.snapshot())

    def _error(self, spec: ErrorSpec) -> dict[str, Any]:
        error = {"type": spec.type, "code": spec.code, "message": spec.message}
        return self._event("error", error={**error, "param": spec.param, "event_id": None})

    def _open(self, data: dict[str, Any]) -> Iterator[dict[str, Any]]:
        item = Item(data, response_id=self.id)
        output = _Output(len(self.outputs), item)
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

    def _finish(self, output: _Output, status: str) -> list[dict[str, Any]]:
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

    def _message(self) -> Iterator[dict[str, Any] | _Wait | Drop]:
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
        part = {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
        yield self._event("response.content_part.added", **ref, content_index=0, part=part)
        # From here the stored item has its part, so truncate/retrieve see it mid-stream.
        output.item.data["content"] = [
            {"type": "output_audio", "transcript": ""}
            if audio
            else {"type": "output_text", "text": ""}
        ]
        if not audio:
            for i in range(words_due(len(output.words), self.turn.audio_ms, total)):
                output.words_sent = i + 1
                delta = output.words[i] if i == 0 else " " + output.words[i]
                yield self._event("response.output_text.delta", **ref, content_index=0, delta=delta)
        else:
            yield from self._stream_audio(output, ref)
        stopped = output.stopped or capped
        yield from self._finish(output, "incomplete" if stopped else "completed")

    def _stream_audio(
        self, output: _Output, ref: dict[str, Any]
    ) -> Iterator[dict[str, Any] | _Wait | Drop]:
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
            yield _Wait(self._t0 + (self.audio_ms / 1000.0 / pace if pace else 0.0))
            if output.stopped:  # truncated while we waited
                break
            chunk_ms = len(chunk) / 2 * 1000.0 / rate
            due = words_due(len(output.words), output.total_ms, output.sent_ms + chunk_ms)
            if due > output.words_sent:
                delta = " ".join(output.words[output.words_sent : due])
                if output.words_sent:
                    delta = " " + delta
                output.words_sent = due
                output.item.data["content"][0]["transcript"] = output.transcript
                yield self._event(
                    "response.output_audio_transcript.delta", **ref, content_index=0, delta=delta
                )
            payload = base64.b64encode(self.format.from_pcm16(chunk)).decode()
            yield self._event("response.output_audio.delta", **ref, content_index=0, delta=payload)
            output.sent_ms += chunk_ms
            self.audio_ms += chunk_ms
            output.item.audio_ms = int(output.sent_ms)
            drop_at = self.turn.drop_after_ms
            if drop_at and output.sent_ms >= drop_at:
                yield Drop(self.turn.drop_close_code)

    def _function_call(self, call: FunctionCall) -> Iterator[dict[str, Any]]:
        call_id = call.call_id or self.ids.new("call")
        data = {
            "id": self.ids.new("item"),
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": call.name,
            "call_id": call_id,
            "arguments": "",
        }
        yield from self._open(data)
        output = self.outputs[-1]
        ref = {"response_id": self.id, "item_id": data["id"], "output_index": output.index}
        args = call.arguments
        step = max(1, math.ceil(len(args) / 3))
        for i in range(0, len(args), step):
            yield self._event(
                "response.function_call_arguments.delta",
                **ref,
                call_id=call_id,
                delta=args[i : i + step],
            )
        yield self._event(
            "response.function_call_arguments.done",
            **ref,
            call_id=call_id,
            name=call.name,
            arguments=args,
        )
        data["arguments"] = args
        yield from self._finish(output, "completed")
