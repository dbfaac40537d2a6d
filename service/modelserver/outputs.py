"""The pieces a streaming response is made of: its pacing steps and its output items.

A response is a generator of events interleaved with steps: :class:`Wait` (until a time),
:class:`Until` (until engine work running on another thread is ready) and :class:`Drop`
(end the connection). Shared by :mod:`.response` (scripted turns) and :mod:`.streaming`
(engine turns). Memory: an :class:`Output` keeps its words (and, for engine speech, one float
per word), never audio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.modelserver.conversation import Item

__all__ = ["Drop", "Output", "Step", "Until", "Wait"]


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


Step = dict[str, Any] | Wait | Until | Drop


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
