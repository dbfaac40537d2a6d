"""The default conversation of one session: ordered items, as the client sees them (B.3/B.4).

Memory bound: at most ``max_items`` items (the oldest are forgotten first, as the real server's
context truncation would drop them); an item keeps its JSON *without audio bytes* plus the
duration of its audio, which is all ``conversation.item.truncate`` needs to validate.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Conversation", "Item", "words_due", "words_until"]


@dataclass
class Item:
    """One conversation item. ``data`` is the public item JSON (never holds audio bytes)."""

    data: dict[str, Any]
    audio_ms: int = 0  # user: committed input audio; assistant: output audio produced so far
    response_id: str | None = None  # the response that produced it (assistant/function_call)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def is_assistant_audio(self) -> bool:
        """True for an assistant message with an ``output_audio`` part that has audio."""
        content = self.data.get("content") or []
        return (
            self.data.get("type") == "message"
            and self.data.get("role") == "assistant"
            and any(part.get("type") == "output_audio" for part in content)
            and self.audio_ms > 0
        )

    def public(self) -> dict[str, Any]:
        return copy.deepcopy(self.data)


def words_due(count: int, total_ms: float, cut_ms: float) -> int:
    """How many of ``count`` evenly spread words have started within ``cut_ms`` of
    ``total_ms`` of audio. The streamer emits transcript deltas by this rule and truncate cuts
    transcripts by it (B.3), so the two always agree."""
    if total_ms <= 0 or count == 0:
        return 0
    return min(count, math.ceil(count * max(0.0, cut_ms) / total_ms))


def words_until(text: str, total_ms: float, cut_ms: float) -> str:
    """The part of ``text`` spoken in the first ``cut_ms`` of ``total_ms`` of audio."""
    words = text.split()
    return " ".join(words[: words_due(len(words), total_ms, cut_ms)])


class Conversation:
    """Ordered items of the default conversation (``conv_…``)."""

    def __init__(self, conversation_id: str, max_items: int = 512) -> None:
        self.id = conversation_id
        self.max_items = max_items
        self._order: list[str] = []
        self._items: dict[str, Item] = {}

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def items(self) -> list[Item]:
        return [self._items[i] for i in self._order]

    def get(self, item_id: str) -> Item | None:
        return self._items.get(item_id)

    def last_id(self) -> str | None:
        return self._order[-1] if self._order else None

    def add(self, item: Item, previous_item_id: str | None = None) -> str | None:
        """Insert after ``previous_item_id`` (None: at the end; ``"root"``: at the start).

        Returns the id of the item now preceding it. The caller has checked that
        ``previous_item_id`` exists.
        """
        if previous_item_id is None:
            position = len(self._order)
        elif previous_item_id == "root":
            position = 0
        else:
            position = self._order.index(previous_item_id) + 1
        self._order.insert(position, item.id)
        self._items[item.id] = item
        while len(self._order) > self.max_items:
            del self._items[self._order.pop(0)]
        index = self._order.index(item.id) if item.id in self._items else 0
        return self._order[index - 1] if index > 0 else None

    def delete(self, item_id: str) -> bool:
        if item_id not in self._items:
            return False
        del self._items[item_id]
        self._order.remove(item_id)
        return True
