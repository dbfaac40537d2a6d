"""The pieces a streaming response is made of: its pacing steps, its output items, and
:class:`Outputs`, which emits the events that open, fill and close those items (B.4, B.5).

A response is a generator of events interleaved with steps: :class:`Wait` (until a time),
:class:`Until` (until engine work running on another thread is ready) and :class:`Drop`
(end the connection). Scripted turns (:mod:`.response`) and engine speech (:mod:`.streaming`)
write their items through the same :class:`Outputs`, so both send the same events in the
same order. Memory per response: each :class:`Output` keeps its words (and, for engine
speech, one float per word), never audio.
"""

from __future__ import annotations

import base64
import math
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from service.modelserver.config import AudioFormat
from service.modelserver.conversation import Conversation, Item, words_due
from service.modelserver.protocol import IdFactory
from service.modelserver.script import Script
from service.modelserver.turns import FunctionCall
from service.modelserver.usage import AUDIO_MS_PER_OUTPUT_TOKEN

__all__ = ["Drop", "Output", "Outputs", "Step", "Until", "Wait"]

Event = dict[str, Any]


@dataclass(frozen=True)
class Wait:
    """Resume at ``until`` (the session's clock)."""

    until: float


@dataclass(frozen=True)
class Until:
    """Resume once ``ready()`` is true. Work on another thread calls the session's waker
    when it progresses, so the server ticks again without polling."""

    ready: Callable[[], bool]


@dataclass(frozen=True)
class Drop:
    """The script asked to end the connection here (``Turn.drop_after_ms``)."""

    close_code: int | None


Step = Event | Wait | Until | Drop


@dataclass
class Output:
    """One output item while it streams. For engine speech ``word_starts`` holds where each
    word starts in the item's audio (ms), known sentence by sentence; scripted speech spreads
    words evenly over ``total_ms`` instead (``words_due``)."""

    index: int
    item: Item
    words: list[str] = field(default_factory=list)
    total_ms: int = 0
    sent_ms: float = 0.0
    words_sent: int = 0
    stopped: bool = False  # truncated while streaming
    finished: bool = False
    word_starts: list[float] | None = None

    @property
    def transcript(self) -> str:
        return " ".join(self.words[: self.words_sent])

    def words_before(self, cut_ms: float) -> int:
        """Words whose start lies before ``cut_ms`` of the item's audio: from the engine's
        timings for real speech, spread evenly over the scripted length otherwise — the
        rule transcript deltas follow, so truncation cuts at the words actually heard."""
        if self.word_starts is None:
            return words_due(len(self.words), self.total_ms, cut_ms)
        return bisect_left(self.word_starts, cut_ms)


class Outputs:
    """One response's output items and their events.

    Invariants: every ``output_item.added`` is followed by exactly one ``output_item.done``
    (:meth:`finish`); when ``in_conversation`` every item joins the conversation as it opens
    (``conversation.item.added``) and is reported done with it; ``audio_ms`` is the audio
    sent over all items, which paces the next chunk (B.8).
    """

    def __init__(
        self,
        *,
        ids: IdFactory,
        response_id: str,
        conversation: Conversation,
        in_conversation: bool,
        modalities: list[str],
        audio: AudioFormat,
        max_output_tokens: int | str,
        script: Script,
        now: float,
    ) -> None:
        self.ids = ids
        self.response_id = response_id
        self.conversation = conversation
        self.in_conversation = in_conversation
        self.audio = "audio" in modalities
        self.format = audio
        cap = max_output_tokens
        self.cap_ms = cap * AUDIO_MS_PER_OUTPUT_TOKEN if isinstance(cap, int) else math.inf
        self.pace = script.pace
        self.chunk_bytes = audio.rate * script.chunk_ms // 1000 * 2
        self.items: list[Output] = []
        self.audio_ms = 0.0
        self.capped = False  # audio cut short by max_output_tokens (B.4: incomplete)
        self._t0 = now + script.first_audio_delay_ms / 1000.0

    # -- opening ---------------------------------------------------------------------------
    def open(self, data: Event) -> Iterator[Event]:
        """``output_item.added`` (and ``conversation.item.added``); the new :class:`Output`
        is ``items[-1]``."""
        item = Item(data, response_id=self.response_id)
        output = Output(len(self.items), item)
        self.items.append(output)
        yield self.ids.event(
            "response.output_item.added",
            response_id=self.response_id,
            output_index=output.index,
            item=item.public(),
        )
        if self.in_conversation:
            previous = self.conversation.add(item)
            yield self.ids.event(
                "conversation.item.added", previous_item_id=previous, item=item.public()
            )

    def open_message(self) -> Iterator[Event]:
        """An assistant message item with its one content part (B.4): audio or text, per the
        response's modalities. From ``content_part.added`` on, the stored item has its part,
        so truncate and retrieve see it mid-stream. The output is ``items[-1]``."""
        data = {
            "id": self.ids.new("item"),
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        yield from self.open(data)
        output = self.items[-1]
        part = {"type": "audio", "transcript": ""} if self.audio else {"type": "text", "text": ""}
        yield self.ids.event("response.content_part.added", **self._ref(output), part=part)
        output.item.data["content"] = [
            {"type": "output_audio", "transcript": ""}
            if self.audio
            else {"type": "output_text", "text": ""}
        ]

    def _ref(self, output: Output, content: bool = True) -> Event:
        ref: Event = {
            "response_id": self.response_id,
            "item_id": output.item.id,
            "output_index": output.index,
        }
        return {**ref, "content_index": 0} if content else ref

    # -- filling ---------------------------------------------------------------------------
    def text(self, output: Output, count: int) -> Iterator[Event]:
        """Text deltas for the first ``count`` of ``output.words`` (text-only responses)."""
        for i in range(count):
            output.words_sent = i + 1
            delta = output.words[i] if i == 0 else " " + output.words[i]
            yield self.ids.event("response.output_text.delta", **self._ref(output), delta=delta)

    def due(self) -> Wait:
        """When the next audio chunk is due. B.8: deltas arrive faster than real time; chunk
        k is due once ``pace`` × the audio before it has elapsed since the first was due."""
        return Wait(self._t0 + (self.audio_ms / 1000.0 / self.pace if self.pace else 0.0))

    def send_audio(self, output: Output, chunk: bytes) -> Iterator[Event]:
        """One audio delta (PCM16 ``chunk`` in the output format), preceded by the transcript
        words that start within it."""
        chunk_ms = len(chunk) / 2 * 1000.0 / self.format.rate
        due = output.words_before(output.sent_ms + chunk_ms)
        ref = self._ref(output)
        if due > output.words_sent:
            delta = " ".join(output.words[output.words_sent : due])
            if output.words_sent:
                delta = " " + delta
            output.words_sent = due
            output.item.data["content"][0]["transcript"] = output.transcript
            yield self.ids.event("response.output_audio_transcript.delta", **ref, delta=delta)
        payload = base64.b64encode(self.format.from_pcm16(chunk)).decode()
        yield self.ids.event("response.output_audio.delta", **ref, delta=payload)
        output.sent_ms += chunk_ms
        self.audio_ms += chunk_ms
        output.item.audio_ms = int(output.sent_ms)  # truncate validates against what was sent

    def function_call(self, call: FunctionCall) -> Iterator[Event]:
        """A whole ``function_call`` item: arguments in a few deltas, then done (B.5)."""
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
        yield from self.open(data)
        output = self.items[-1]
        ref = self._ref(output, content=False)
        args = call.arguments
        step = max(1, math.ceil(len(args) / 3))
        for i in range(0, len(args), step):
            yield self.ids.event(
                "response.function_call_arguments.delta",
                **ref,
                call_id=call_id,
                delta=args[i : i + step],
            )
        yield self.ids.event(
            "response.function_call_arguments.done",
            **ref,
            call_id=call_id,
            name=call.name,
            arguments=args,
        )
        data["arguments"] = args
        yield from self.finish(output, "completed")

    def stop(self, item_id: str, audio_end_ms: int) -> bool:
        """A truncate hit ``item_id`` while it streams: send no more of it, and no words
        past ``audio_end_ms`` (B.3). False if no open item has that id."""
        stopped = False
        for output in self.items:
            if output.item.id == item_id and not output.finished:
                output.stopped = stopped = True
                output.words_sent = min(output.words_sent, output.words_before(audio_end_ms))
        return stopped

    # -- closing ---------------------------------------------------------------------------
    def finish(self, output: Output, status: str) -> list[Event]:
        """Close an output item: part/stream ``*.done`` events, then ``output_item.done``
        (B.4); the stored item gets its final transcript or text."""
        output.finished = True
        item, data = output.item, output.item.data
        event, ref = self.ids.event, self._ref(output)
        events: list[Event] = []
        if data["type"] == "message":
            transcript = output.transcript
            if self.audio:
                events.append(event("response.output_audio.done", **ref))
                events.append(
                    event("response.output_audio_transcript.done", **ref, transcript=transcript)
                )
                part = {"type": "audio", "transcript": transcript}
                data["content"] = [{"type": "output_audio", "transcript": transcript}]
            else:
                events.append(event("response.output_text.done", **ref, text=transcript))
                part = {"type": "text", "text": transcript}
                data["content"] = [{"type": "output_text", "text": transcript}]
            events.append(event("response.content_part.done", **ref, part=part))
        data["status"] = status
        events.append(
            event(
                "response.output_item.done",
                response_id=self.response_id,
                output_index=output.index,
                item=item.public(),
            )
        )
        if self.in_conversation:
            events.append(event("conversation.item.done", item=item.public()))
        return events

    def finish_open(self) -> list[Event]:
        """Close every item still open as ``incomplete`` (B.6: a cancelled response)."""
        events: list[Event] = []
        for output in self.items:
            if not output.finished:
                events += self.finish(output, "incomplete")
        return events
