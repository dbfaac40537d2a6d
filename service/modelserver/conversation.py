"""The default conversation of one session: ordered items, as the client sees them (B.3/B.4),
and the client's item operations on it (``conversation.item.create/truncate/delete/retrieve``).

The operations validate as the real server does and raise :class:`ProtocolError` *before*
changing anything, so a refused operation leaves the conversation as it was; the session turns
their results into events.

Memory bound: at most ``max_items`` items (the oldest are forgotten first, as the real server's
context truncation would drop them); an item keeps its JSON *without audio bytes* plus the
duration of its audio, which is all ``conversation.item.truncate`` needs to validate (F.6).
"""

from __future__ import annotations

import base64
import copy
import math
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.modelserver.config import AudioFormat
from service.modelserver.protocol import ProtocolError

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
    """Ordered items of the default conversation (``conv_…``). Invariant: item ids are
    unique, and every id in the order has its item."""

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

    # -- the client's item operations (B.3) -----------------------------------------------
    def create(
        self,
        raw_item: dict[str, Any],
        previous_item_id: str | None,
        *,
        new_id: Callable[[], str],
        input_format: AudioFormat,
        output_format: AudioFormat,
    ) -> tuple[Item, str | None]:
        """``conversation.item.create``: the stored item and the id now preceding it.

        Audio bytes in the item are measured (in the format of their direction) and dropped:
        the real server never echoes them (B.4), and truncate needs only the duration.
        """
        data = copy.deepcopy(raw_item)
        previous = previous_item_id
        if previous is not None and previous != "root" and previous not in self:
            raise ProtocolError(
                f"Error adding item: the previous item with id '{previous}' does not exist.",
                code="invalid_value",
                param="previous_item_id",
            )
        item_id = data.get("id") or new_id()
        if item_id in self:
            raise ProtocolError(
                f"Error adding item: the item with id '{item_id}' already exists.",
                code="invalid_value",
                param="item.id",
            )
        data.update(id=item_id, object="realtime.item", status="completed")
        audio_ms = 0.0
        fmt = output_format if data.get("role") == "assistant" else input_format
        for index, part in enumerate(data.get("content") or []):
            if isinstance(part.get("audio"), str):  # B.4: audio bytes are never echoed
                try:
                    size = len(base64.b64decode(part.pop("audio"), validate=True))
                except ValueError:  # binascii.Error is a ValueError
                    raise ProtocolError(
                        "Invalid base64 audio data.",
                        code="invalid_value",
                        param=f"item.content[{index}].audio",
                    ) from None
                audio_ms += size / fmt.bytes_per_sample * 1000.0 / fmt.rate
        item = Item(data, audio_ms=int(audio_ms))
        return item, self.add(item, previous)

    def truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> Item:
        """``conversation.item.truncate`` (B.4, F.6): the item's audio ends at
        ``audio_end_ms`` and its transcript at the words heard by then. The caller also stops
        the item's audio if it is still streaming."""
        item = self.get(item_id)
        if item is None:
            raise ProtocolError(
                f"Error truncating item: the item with id '{item_id}' does not exist.",
                code="item_truncate_invalid_item_id",
                param="item_id",
            )
        if not item.is_assistant_audio:
            raise ProtocolError(
                "Only model output audio messages can be truncated",
                code="invalid_value",
                param="item_id",
            )
        if content_index != 0:
            raise ProtocolError(
                f"Invalid value: {content_index}. Supported values are: 0.",
                code="invalid_value",
                param="content_index",
            )
        if audio_end_ms < 0:
            raise ProtocolError(
                "Invalid 'audio_end_ms': integer below minimum value. Expected a value >= 0, "
                f"but got {audio_end_ms} instead.",
                code="integer_below_min_value",
                param="audio_end_ms",
            )
        if audio_end_ms > item.audio_ms:  # B.4 / F.6
            raise ProtocolError(
                f"Audio content of {item.audio_ms}ms is already shorter than {audio_end_ms}ms",
                code="invalid_value",
                param="audio_end_ms",
            )
        part = item.data["content"][0]
        text = part.get("transcript") or ""
        starts = item.meta.get("word_starts")  # engine speech: where each word starts (ms)
        if starts is not None:
            part["transcript"] = " ".join(text.split()[: bisect_left(starts, audio_end_ms)])
        else:
            part["transcript"] = words_until(text, item.audio_ms, audio_end_ms)
        item.audio_ms = audio_end_ms
        return item

    def delete(self, item_id: str) -> None:
        """``conversation.item.delete``."""
        if item_id not in self._items:
            raise ProtocolError(
                f"Error deleting item: the item with id '{item_id}' does not exist.",
                code="item_delete_invalid_item_id",
                param="item_id",
            )
        del self._items[item_id]
        self._order.remove(item_id)

    def retrieve(self, item_id: str) -> Item:
        """``conversation.item.retrieve``. The real server includes the audio; this one
        keeps none (the memory bound above)."""
        item = self.get(item_id)
        if item is None:
            raise ProtocolError(
                f"Error retrieving item: the item with id '{item_id}' does not exist.",
                code="item_retrieve_invalid_item_id",
                param="item_id",
            )
        return item
