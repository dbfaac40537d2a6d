"""Engine speech: the body of a response the offline engine decides (:class:`EngineSpeech`,
which :class:`~service.modelserver.response.ActiveResponse` delegates to).

The decision is computed on a worker thread (``plan``); the body waits for it with an
``Until`` step, then speaks its text through the engine's streaming voice and emits its
function calls, through the same :class:`~.outputs.Outputs` a scripted turn uses (same
events, same order).

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
* closing the body (cancel, barge-in, disconnect) closes the speech stream, and synthesis
  stops mid-sentence (the engine's ``StopSignal``);
* a streamed decision (an LLM reply still arriving) is spoken sentence by sentence as its
  text comes in; its function calls follow once it has ended.

Memory per response: one sentence of PCM in hand plus at most one synthesized ahead (the
prefetch).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import structlog

from service.modelserver.outputs import Output, Outputs, Step, Until

if TYPE_CHECKING:
    from service.modelserver.engine.background import Prefetch
    from service.modelserver.engine.base import Decision, ReplyStream, SpeechChunk
    from service.modelserver.engine.engine import EngineSession

__all__ = ["EngineSpeech"]

log = structlog.get_logger(__name__)

Failure = dict[str, Any]  # a failed response's status_details (B.4)


class EngineSpeech:
    """One engine response's body: the brain's decision (``plan``, a future) spoken and
    called. Invariant: ``speech`` is the reply being synthesized, if any; closing the body's
    generator closes it."""

    def __init__(self, engine: EngineSession, plan: Future[Decision]) -> None:
        self.engine = engine
        self.plan = plan
        self.speech: Prefetch[SpeechChunk] | None = None

    def cancel(self) -> None:
        """The response ended early: a decision not yet started is never made."""
        self.plan.cancel()

    def body(self, out: Outputs) -> Generator[Step, None, Failure | None]:
        """The response's items; returns the failure if the brain failed."""
        plan = self.plan
        if not plan.done():
            yield Until(plan.done)
        try:
            decision = plan.result()
        except Exception as exc:
            log.error("realtime_local.engine.decision_failed", error=repr(exc))
            message = f"The local engine failed: {type(exc).__name__}: {exc}"[:500]
            return {
                "type": "failed",
                "error": {"type": "server_error", "code": None, "message": message},
            }
        calls = decision.calls
        if decision.stream is not None:
            yield from self._message(out, decision.stream)
            if not decision.stream.finished.is_set():
                yield Until(decision.stream.finished.is_set)
            calls = decision.stream.calls
        elif decision.text:
            yield from self._message(out, decision.text)
        for call in calls:
            yield from out.function_call(call)
        return None

    def _message(self, out: Outputs, text: str | ReplyStream) -> Iterator[Step]:
        yield from out.open_message()
        output = out.items[-1]
        if out.audio:
            output.word_starts = []
            yield from self._stream_speech(out, output, text)
        else:
            if not isinstance(text, str):  # arriving on the network: read it off the loop
                reading = self.engine.read(text)
                yield Until(reading.done)
                text = reading.result()
            output.words = text.split()
            yield from out.text(output, len(output.words))
        yield from out.finish(output, "incomplete" if output.stopped else "completed")

    def _stream_speech(
        self, out: Outputs, output: Output, text: str | ReplyStream
    ) -> Iterator[Step]:
        from service.modelserver.engine.background import END, PENDING

        assert output.word_starts is not None
        rate = out.format.rate
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
                for offset in range(0, len(pcm), out.chunk_bytes):
                    chunk = pcm[offset : offset + out.chunk_bytes]
                    yield out.due()
                    if output.stopped:  # truncated while we waited
                        break
                    room_ms = out.cap_ms - output.sent_ms
                    if len(chunk) / 2 * 1000.0 / rate >= room_ms:  # max_output_tokens
                        chunk = chunk[: max(0, int(room_ms * rate / 1000)) * 2]
                        out.capped = output.stopped = True
                    if chunk:
                        yield from out.send_audio(output, chunk)
                    if output.stopped:
                        break
        finally:
            speech.close()
