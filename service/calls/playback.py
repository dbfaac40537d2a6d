"""Sans-I/O playback ledger: what the caller has actually heard of each assistant item.

The model streams audio much faster than real time and the carrier queues it (protocols.md
A.3, F.5). After every chunk we send, we place a mark named ``"{generation}:{item_id}:{end_ms}"``
(end_ms = cumulative ms of that item sent so far). The carrier echoes a mark when playback
reaches it, so an echo says "position ``end_ms`` of ``item_id`` has been played". Between echoes
the position is interpolated on the clock: the chunk at the head of the queue started playing
when the previous mark echoed (or when it was sent, if nothing was queued), and plays at real
time until its own end (F.6, refinement of option A). That keeps ``audio_end_ms`` within a few
ms of what was heard even when chunks are hundreds of ms long.

Invariants:
* ``pending`` holds the chunks sent in the current generation and not yet echoed, in send order;
  its head is the chunk playing now.
* ``interrupt()`` bumps ``generation``; echoes of marks from older generations (the carrier
  echoes every pending mark when it clears its queue) are ignored.

Memory per call: one small record per chunk in flight (a few per second of queued audio) plus
the sent/heard totals of the last ``max_items`` items.
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from dataclasses import dataclass

__all__ = ["PlaybackLedger", "Truncation"]

# Our generations are small ASCII numbers; ``str.isdigit`` would also pass "²" or 5000 digits,
# which ``int`` then refuses. A mark name comes from the carrier, so it is parsed strictly.
_GENERATION = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True, slots=True)
class Truncation:
    """Cut ``item_id`` at ``audio_end_ms``: what the caller heard of ``sent_ms`` sent."""

    item_id: str
    audio_end_ms: int
    sent_ms: int


@dataclass(slots=True)
class _Chunk:
    item_id: str
    start_ms: float
    end_ms: float
    mark: str


class PlaybackLedger:
    def __init__(self, *, max_items: int = 64) -> None:
        self.generation = 0
        self.pending: deque[_Chunk] = deque()
        self._head_started_at: float | None = None
        self._sent: OrderedDict[str, float] = OrderedDict()
        self._heard: dict[str, float] = {}
        self._max_items = max_items
        self.stale_marks = 0
        self.unknown_marks = 0

    # --- what we sent -----------------------------------------------------------------------

    def audio_sent(self, item_id: str, duration_ms: float, now: float) -> str:
        """Record a chunk sent to the carrier; returns the mark name to place after it."""
        start = self._sent.get(item_id, 0.0)
        end = start + duration_ms
        self._sent[item_id] = end
        self._sent.move_to_end(item_id)
        self._heard.setdefault(item_id, 0.0)
        while len(self._sent) > self._max_items:
            old, _ = self._sent.popitem(last=False)
            self._heard.pop(old, None)
        mark = f"{self.generation}:{item_id}:{round(end)}"
        if not self.pending:
            # Nothing queued at the carrier: this chunk starts playing as soon as it lands.
            self._head_started_at = now
        self.pending.append(_Chunk(item_id, start, end, mark))
        return mark

    # --- what the carrier played ------------------------------------------------------------

    def mark_played(self, name: str, now: float) -> bool:
        """Apply an echoed mark; ``False`` if it is stale (older generation) or not ours."""
        generation, _, rest = name.partition(":")
        if not _GENERATION.fullmatch(generation) or ":" not in rest:
            self.unknown_marks += 1
            return False
        if int(generation) != self.generation:
            self.stale_marks += 1
            return False
        # Echoes come in send order; anything before this mark has played too.
        while self.pending:
            chunk = self.pending.popleft()
            self._heard[chunk.item_id] = max(self._heard.get(chunk.item_id, 0.0), chunk.end_ms)
            if chunk.mark == name:
                self._head_started_at = now
                return True
        self.unknown_marks += 1
        return False

    # --- questions the worker asks -----------------------------------------------------------

    @property
    def playing(self) -> bool:
        """True while the carrier still has audio of ours queued."""
        return bool(self.pending)

    def sent_ms(self, item_id: str) -> float:
        return self._sent.get(item_id, 0.0)

    def heard_ms(self, item_id: str, now: float) -> float:
        """Best estimate of how much of ``item_id`` the caller has heard by ``now``."""
        heard = self._heard.get(item_id, 0.0)
        if self.pending and self.pending[0].item_id == item_id:
            head = self.pending[0]
            assert self._head_started_at is not None
            elapsed_ms = max(0.0, (now - self._head_started_at) * 1000.0)
            heard = max(heard, min(head.start_ms + elapsed_ms, head.end_ms))
        return heard

    def queued_ms(self, now: float) -> float:
        """Estimated ms of our audio the carrier still has to play at ``now``."""
        if not self.pending:
            return 0.0
        queued = sum(chunk.end_ms - chunk.start_ms for chunk in self.pending)
        assert self._head_started_at is not None
        head = self.pending[0]
        elapsed = max(0.0, (now - self._head_started_at) * 1000.0)
        return max(0.0, queued - min(elapsed, head.end_ms - head.start_ms))

    def interrupt(self, now: float) -> list[Truncation]:
        """The caller barged in: what to truncate, oldest first; starts a new generation.

        Every item with audio still queued is cut at what was heard of it: the playing one
        part-way, any queued behind it at 0, so the model's memory matches the caller's ears.
        """
        truncations: list[Truncation] = []
        for item_id in dict.fromkeys(chunk.item_id for chunk in self.pending):
            heard = self.heard_ms(item_id, now)
            sent = self._sent.get(item_id, 0.0)
            truncations.append(Truncation(item_id, round(min(heard, sent)), round(sent)))
            self._heard[item_id] = min(heard, sent)
        self.generation += 1
        self.pending.clear()
        self._head_started_at = None
        return truncations
