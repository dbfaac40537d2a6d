"""The plug-in shapes of the offline speech engine: speech-to-text, streaming text-to-speech,
the per-session "brain", and what a brain is asked and answers.

Nothing here imports a model: the shapes are usable (and tested) without the ``[local]``
extra. Implementations: :mod:`.stt` (Whisper), :mod:`.tts` (Piper, espeak-ng, synthetic),
:mod:`.hotline_brain` (built-in dialogue), :mod:`.llm_brain` (OpenAI-compatible endpoint).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from service.modelserver.engine.slots import Heard, Slot
from service.modelserver.turns import FunctionCall, ResponseRequest

__all__ = [
    "Brain",
    "BrainRequest",
    "Decision",
    "ReplyStream",
    "SlotTranscriber",
    "SpeechChunk",
    "StopSignal",
    "StreamingVoice",
    "Transcriber",
    "item_text",
    "sentences",
]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class SpeechChunk:
    """A piece of synthesized speech: PCM16 LE mono at the rate asked for, and the words it
    speaks ("" for a piece that continues the previous one's words)."""

    pcm: bytes
    text: str = ""


class StopSignal:
    """Stops synthesis that is in progress (barge-in): closing a generator can only take
    effect between chunks, so a voice registers how to abort its current work (kill a
    process, terminate an ONNX run) and :meth:`stop` runs that at once, on the stopping
    thread. Thread-safe; stopping twice is harmless."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopped = False
        self._hooks: list[Callable[[], None]] = []

    @property
    def stopped(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            hook()

    def on_stop(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Run ``hook`` on :meth:`stop` (now, if already stopped); returns its removal."""
        with self._lock:
            if not self._stopped:
                self._hooks.append(hook)
                return lambda: self._remove(hook)
        hook()
        return lambda: None

    def _remove(self, hook: Callable[[], None]) -> None:
        with self._lock:
            if hook in self._hooks:
                self._hooks.remove(hook)


@runtime_checkable
class StreamingVoice(Protocol):
    """Text-to-speech whose length is not known in advance (unlike :class:`Voice`)."""

    def stream(self, text: str, rate: int, stop: StopSignal | None = None) -> Iterator[SpeechChunk]:
        """Chunks as they are synthesized; the caller may stop early (``close()`` on the
        generator, or ``stop`` mid-chunk), and synthesis must then stop too. Runs on a
        worker thread."""
        ...


@runtime_checkable
class Transcriber(Protocol):
    """Speech-to-text of one committed user turn (blocking; runs on a worker thread)."""

    def transcribe(self, pcm: bytes, rate: int) -> str:
        """The words in ``pcm`` (PCM16 LE mono at ``rate``); "" when nothing was heard."""
        ...


@runtime_checkable
class SlotTranscriber(Transcriber, Protocol):
    """A transcriber that can hear a turn expecting a number (:mod:`.slots`)."""

    def hear(self, pcm: bytes, rate: int, slot: Slot | None) -> Heard:
        """The words in ``pcm``, decoded for ``slot`` when one is given, and how sure."""
        ...


class ReplyStream:
    """A reply still arriving (a streamed LLM completion), spoken as it comes: iterating
    yields text pieces (on the synthesis thread); once the iteration has ended, ``calls``
    holds the function calls that came with the reply. Iterate once."""

    def __init__(self, pieces: Callable[[ReplyStream], Iterator[str]]) -> None:
        self._pieces = pieces
        self.calls: tuple[FunctionCall, ...] = ()
        self.text = ""
        self.finished = threading.Event()

    def __iter__(self) -> Iterator[str]:
        try:
            for piece in self._pieces(self):
                self.text += piece
                yield piece
        finally:
            self.finished.set()


@dataclass(frozen=True)
class Decision:
    """What a response does: say ``text`` (if any), then make ``calls`` (in order). Both
    empty is a response with no output (e.g. after a transfer, nothing is left to say).
    ``stream``: the words are still arriving; say them as they come, then make its calls."""

    text: str = ""
    calls: tuple[FunctionCall, ...] = ()
    stream: ReplyStream | None = None


@dataclass(frozen=True)
class BrainRequest:
    """Everything a brain may look at for one response, copied at ``response.created`` so
    the brain can run on a worker thread while the session goes on.

    ``items`` are the conversation's public item JSON (oldest first) with user audio
    transcripts filled in; ``response_ids[i]`` is the response that produced ``items[i]``
    (None for client/user items), which groups a response's message and function calls.
    Memory: one copy of the conversation (at most the session's ``max_items`` items).
    """

    request: ResponseRequest
    items: tuple[dict[str, Any], ...] = ()
    response_ids: tuple[str | None, ...] = ()
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: Any = "auto"
    in_conversation: bool = True
    max_output_tokens: int | str = "inf"
    # User audio items whose digits were heard with low confidence (read them back).
    unsure: frozenset[str] = frozenset()

    @property
    def instructions(self) -> str:
        return self.request.instructions

    def tool_names(self) -> set[str]:
        return {str(t.get("name")) for t in self.tools if t.get("type", "function") == "function"}


class Brain(Protocol):
    """Decides one response. One brain per session, created by the session, so it may keep
    that call's state; it is never shared between sessions. ``decide`` runs on a worker
    thread, one call at a time per session."""

    def decide(self, request: BrainRequest) -> Decision: ...


def item_text(item: dict[str, Any]) -> str:
    """The words of a message item: transcripts of audio parts, text of text parts."""
    parts = []
    for part in item.get("content") or []:
        value = part.get("transcript") if "audio" in part.get("type", "") else part.get("text")
        if value:
            parts.append(str(value))
    return " ".join(parts)


def sentences(pieces: Iterator[str] | ReplyStream) -> Iterator[str]:
    """Whole sentences out of text that arrives in pieces (a streamed reply): each is
    yielded as soon as the whitespace after its end mark arrives."""
    pending = ""
    for piece in pieces:
        pending += piece
        parts = _SENTENCE_END.split(pending)
        for sentence in parts[:-1]:
            if sentence.strip():
                yield sentence.strip()
        pending = parts[-1]
    if pending.strip():
        yield pending.strip()
