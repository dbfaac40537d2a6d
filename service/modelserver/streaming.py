"""Engine responses: the brain's decision and speech of unknown length (a mixin of
:class:`~service.modelserver.response.ActiveResponse`, split out to keep files small).

The decision is computed on a worker thread (``plan``); the response waits for it with an
``Until`` step, then speaks its text through the engine's streaming voice and emits its
function calls, exactly as a scripted :class:`Turn` would (same events, same order).

Speech arrives a sentence at a time (:class:`~service.modelserver.engine.base.SpeechChunk`)
and its total length is never known in advance, so:

* audio is re-chunked into ``chunk_ms`` deltas and paced at ``pace`` × real time from the
  first audio, like scripted speech; a delta is sent only once synthesized (``Until``);
* each sentence's words are spread evenly over that sentence's audio (``word_starts``), and
  a transcript delta goes out when a word's start has been sent — so truncation cuts the
  transcript at the words actually heard, as ``words_due`` does for scripted speech;
* the item's ``audio_ms`` is the audio actually sent, which is what ``truncate`` validates
  against (``audio_end_ms`` beyond it is an error, as before);
* ``max_output_tokens`` caps the audio sent (the response ends ``incomplete``);
* closing the generator (cancel, barge-in, disconnect) closes the speech stream, and
  synthesis stops mid-sentence (the engine's ``StopSignal``);
* a streamed decision (an LLM reply still arriving) is spoken sentence by sentence as its
  text comes in; its function calls follow once it has ended.

Memory: one sentence of PCM in hand plus at most one synthesized ahead (the prefetch).
"""

from __future__ import annotations

import base64
import math
from bisect import bisect_left
from collections.abc import Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import structlog

from service.modelserver.config import AudioFormat
from service.modelserver.conversation import words_due
from service.modelserver.outputs import Output, Step, Until, Wait
from service.modelserver.script import FunctionCall, Script
from service.modelserver.usage import AUDIO_MS_PER_OUTPUT_TOKEN

if TYPE_CHECKING:
    from service.modelserver.engine.background import Prefetch
    from service.modelserver.engine.base import Decision, ReplyStream, SpeechChunk
    from service.modelserver.engine.engine import EngineSession

__all__ = ["EngineOutputs"]

log = structlog.get_logger(__name__)


class EngineOutputs:
    """Engine-turn generators; uses only the attributes and methods declared here."""

    id: str
    plan: Future[Decision] | None
    engine: EngineSession | None
    script: Script
    format: AudioFormat
    modalities: list[str]
    outputs: list[Output]
    audio_ms: float
    max_output_tokens: int | str
    status: str
    status_details: dict[str, Any] | None
    speech: Prefetch[SpeechChunk] | None
    _capped: bool
    _t0: float

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _open(self, data: dict[str, Any]) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def _finish(self, output: Output, status: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _new_id(self, prefix: str) -> str:
        raise NotImplementedError

    # -- the decision ---------------------------------------------------------------------
    def _engine_body(self) -> Iterator[Step]:
        assert self.plan is not None
        plan = self.plan
        if not plan.done():
            yield Until(plan.done)
        try:
            decision = plan.result()
        except Exception as exc:
            log.error("realtime_local.engine.decision_failed", error=repr(exc))
            self.status = "failed"
            message = f"The local engine failed: {type(exc).__name__}: {exc}"[:500]
            self.status_details = {
                "type": "failed",
                "error": {"type": "server_error", "code": None, "message": message},
            }
            return
        calls = decision.calls
        if decision.stream is not None:
            yield from self._engine_message(decision.stream)
            if not decision.stream.finished.is_set():
                yield Until(decision.stream.finished.is_set)
            calls = decision.stream.calls
        elif decision.text:
            yield from self._engine_message(decision.text)
        for call in calls:
            yield from self._function_call(call)
        self.status = "incomplete" if self._capped else "completed"
        if self._capped:
            self.status_details = {"type": "incomplete", "reason": "max_output_tokens"}

    def _engine_message(self, text: str | ReplyStream) -> Iterator[Step]:
        data = {
            "id": self._new_id("item"),
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        yield from self._open(data)
        output = self.outputs[-1]
        ref = {"response_id": self.id, "item_id": output.item.id, "output_index": output.index}
        audio = "audio" in self.modalities
        yield from self._add_content_part(output, ref, audio)
        if audio:
            output.word_starts = []
            yield from self._stream_speech(output, ref, text)
        else:
            if not isinstance(text, str):  # arriving on the network: read it off the loop
                assert self.engine is not None
                reading = self.engine.read(text)
                yield Until(reading.done)
                text = reading.result()
            output.words = text.split()
            for i, word in enumerate(output.words):
                output.words_sent = i + 1
                delta = word if i == 0 else " " + word
                yield self._event("response.output_text.delta", **ref, content_index=0, delta=delta)
        yield from self._finish(output, "incomplete" if output.stopped else "completed")

    def _add_content_part(self, output: Output, ref: dict[str, Any], audio: bool) -> Iterator[Step]:
        """B.4 ``response.content_part.added``; from here the stored item has its part, so
        truncate and retrieve see it mid-stream."""
        part = {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
        yield self._event("response.content_part.added", **ref, content_index=0, part=part)
        output.item.data["content"] = [
            {"type": "output_audio", "transcript": ""}
            if audio
            else {"type": "output_text", "text": ""}
        ]

    # -- speech of unknown length ---------------------------------------------------------
    @staticmethod
    def _words_before(output: Output, cut_ms: float) -> int:
        """Words whose start lies before ``cut_ms`` of the item's audio: from the engine's
        timings for real speech, spread evenly over a scripted length otherwise."""
        if output.word_starts is None:
            return words_due(len(output.words), output.total_ms, cut_ms)
        return bisect_left(output.word_starts, cut_ms)

    def _stream_speech(
        self, output: Output, ref: dict[str, Any], text: str | ReplyStream
    ) -> Iterator[Step]:
        from service.modelserver.engine.background import END, PENDING

        assert self.engine is not None and output.word_starts is not None
        rate, pace = self.format.rate, self.script.pace
        chunk_bytes = rate * self.script.chunk_ms // 1000 * 2
        cap = self.max_output_tokens
        cap_ms = cap * AUDIO_MS_PER_OUTPUT_TOKEN if isinstance(cap, int) else math.inf
        speech = self.speech = self.engine.speak(text, rate)
        try:
            while not output.stopped:
                piece = speech.poll()
                if piece is PENDING:
                    yield Until(speech.ready)
                    continue
                if piece is END:
                    break
                pcm: bytes = piece.pcm  # type: ignore[union-attr]
                words = piece.text.split()  # type: ignore[union-attr]
                sentence_ms = len(pcm) / 2 * 1000.0 / rate
                output.words += words
                output.word_starts += [
                    output.sent_ms + i * sentence_ms / len(words) for i in range(len(words))
                ]
                output.item.meta["word_starts"] = output.word_starts
                for offset in range(0, len(pcm), chunk_bytes):
                    chunk = pcm[offset : offset + chunk_bytes]
                    # B.8: deltas arrive faster than real time, chunk k at t0 + pace × before.
                    yield Wait(self._t0 + (self.audio_ms / 1000.0 / pace if pace else 0.0))
                    if output.stopped:  # truncated while we waited
                        break
                    room_ms = cap_ms - output.sent_ms
                    if len(chunk) / 2 * 1000.0 / rate >= room_ms:  # max_output_tokens
                        chunk = chunk[: max(0, int(room_ms * rate / 1000)) * 2]
                        self._capped = output.stopped = True
                    if chunk:
                        yield from self._send_audio(output, ref, chunk)
                    if output.stopped:
                        break
        finally:
            speech.close()

    def _send_audio(self, output: Output, ref: dict[str, Any], chunk: bytes) -> Iterator[Step]:
        chunk_ms = len(chunk) / 2 * 1000.0 / self.format.rate
        due = self._words_before(output, output.sent_ms + chunk_ms)
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
        output.item.audio_ms = int(output.sent_ms)  # truncate validates against what was sent

    # -- function calls (shared with scripted turns) --------------------------------------
    def _function_call(self, call: FunctionCall) -> Iterator[dict[str, Any]]:
        call_id = call.call_id or self._new_id("call")
        data = {
            "id": self._new_id("item"),
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
