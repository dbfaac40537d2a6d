"""The plug-in shapes of the offline speech engine: speech-to-text, streaming text-to-speech,
the per-session "brain", and what a brain is asked and answers.

Nothing here imports a model: the shapes are usable (and tested) without the ``[local]``
extra. Implementations: :mod:`.stt` (Whisper), :mod:`.tts` (Piper, espeak-ng, synthetic),
:mod:`.hotline_brain` (built-in dialogue), :mod:`.llm_brain` (OpenAI-compatible endpoint).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from service.modelserver.turns import FunctionCall, ResponseRequest

__all__ = [
    "Brain",
    "BrainRequest",
    "Decision",
    "SpeechChunk",
    "StreamingVoice",
    "Transcriber",
    "item_text",
]


@dataclass(frozen=True)
class SpeechChunk:
    """A piece of synthesized speech: PCM16 LE mono at the rate asked for, and the words it
    speaks ("" for a piece that continues the previous one's words)."""

    pcm: bytes
    text: str = ""


@runtime_checkable
class StreamingVoice(Protocol):
    """Text-to-speech whose length is not known in advance (unlike :class:`Voice`)."""

    def stream(self, text: str, rate: int) -> Iterator[SpeechChunk]:
        """Chunks as they are synthesized; the caller may stop early (``close()`` on the
        generator), and synthesis must then stop too. Runs on a worker thread."""
        ...


@runtime_checkable
class Transcriber(Protocol):
    """Speech-to-text of one committed user turn (blocking; runs on a worker thread)."""

    def transcribe(self, pcm: bytes, rate: int) -> str:
        """The words in ``pcm`` (PCM16 LE mono at ``rate``); "" when nothing was heard."""
        ...


@dataclass(frozen=True)
class Decision:
    """What a response does: say ``text`` (if any), then make ``calls`` (in order). Both
    empty is a response with no output (e.g. after a transfer, nothing is left to say)."""

    text: str = ""
    calls: tuple[FunctionCall, ...] = ()


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
