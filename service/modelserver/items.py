"""Conversation item events of a session (B.3): create, truncate, delete, retrieve.

A mixin of :class:`~service.modelserver.session.RealtimeSession`, split out to keep files
small; it uses only the attributes declared below. Items never hold audio bytes: a created
item's audio is measured and dropped, which is all truncate validation needs (F.6).
"""

from __future__ import annotations

import base64
import copy
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from service.modelserver.config import audio_format
from service.modelserver.conversation import Conversation, Item, words_until
from service.modelserver.protocol import IdFactory, ProtocolError

if TYPE_CHECKING:
    from service.modelserver.response import ActiveResponse

__all__ = ["ItemHandlers"]

Events = list[dict[str, Any]]


class ItemHandlers:
    """``conversation.item.*`` handlers; uses only the attributes and methods declared here
    (provided by the session)."""

    ids: IdFactory
    config: dict[str, Any]
    conversation: Conversation
    response: ActiveResponse | None

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _advance(self, now: float) -> Events:
        raise NotImplementedError

    def _on_conversation_item_create(self, raw: dict[str, Any], now: float) -> Events:
        data = copy.deepcopy(raw["item"])
        previous = raw.get("previous_item_id")
        if previous is not None and previous != "root" and previous not in self.conversation:
            raise ProtocolError(
                f"Error adding item: the previous item with id '{previous}' does not exist.",
                code="invalid_value",
                param="previous_item_id",
            )
        item_id = data.get("id") or self.ids.new("item")
        if item_id in self.conversation:
            raise ProtocolError(
                f"Error adding item: the item with id '{item_id}' already exists.",
                code="invalid_value",
                param="item.id",
            )
        data.update(id=item_id, object="realtime.item", status="completed")
        audio_ms = 0.0
        direction = "output" if data.get("role") == "assistant" else "input"
        fmt = audio_format(self.config["audio"][direction]["format"])
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
        after = self.conversation.add(item, previous)
        return [
            self._event("conversation.item.added", previous_item_id=after, item=item.public()),
            self._event("conversation.item.done", previous_item_id=after, item=item.public()),
        ]

    def _on_conversation_item_truncate(self, raw: dict[str, Any], now: float) -> Events:
        item_id, end_ms = raw["item_id"], raw["audio_end_ms"]
        item = self.conversation.get(item_id)
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
        if raw["content_index"] != 0:
            raise ProtocolError(
                f"Invalid value: {raw['content_index']}. Supported values are: 0.",
                code="invalid_value",
                param="content_index",
            )
        if end_ms < 0:
            raise ProtocolError(
                "Invalid 'audio_end_ms': integer below minimum value. Expected a value >= 0, "
                f"but got {end_ms} instead.",
                code="integer_below_min_value",
                param="audio_end_ms",
            )
        if end_ms > item.audio_ms:  # B.4 / F.6
            raise ProtocolError(
                f"Audio content of {item.audio_ms}ms is already shorter than {end_ms}ms",
                code="invalid_value",
                param="audio_end_ms",
            )
        if self.response is not None:
            self.response.stop_item_audio(item_id, end_ms)
        part = item.data["content"][0]
        starts = item.meta.get("word_starts")  # engine speech: where each word starts (ms)
        if starts is not None:
            words = (part.get("transcript") or "").split()
            part["transcript"] = " ".join(words[: bisect_left(starts, end_ms)])
        else:
            part["transcript"] = words_until(part.get("transcript") or "", item.audio_ms, end_ms)
        item.audio_ms = end_ms
        truncated = self._event(
            "conversation.item.truncated", item_id=item_id, content_index=0, audio_end_ms=end_ms
        )
        return [truncated, *self._advance(now)]

    def _on_conversation_item_delete(self, raw: dict[str, Any], now: float) -> Events:
        if not self.conversation.delete(raw["item_id"]):
            raise ProtocolError(
                f"Error deleting item: the item with id '{raw['item_id']}' does not exist.",
                code="item_delete_invalid_item_id",
                param="item_id",
            )
        return [self._event("conversation.item.deleted", item_id=raw["item_id"])]

    def _on_conversation_item_retrieve(self, raw: dict[str, Any], now: float) -> Events:
        item = self.conversation.get(raw["item_id"])
        if item is None:
            raise ProtocolError(
                f"Error retrieving item: the item with id '{raw['item_id']}' does not exist.",
                code="item_retrieve_invalid_item_id",
                param="item_id",
            )
        # The real server includes the audio; this one keeps none (memory bound, see above).
        return [self._event("conversation.item.retrieved", item=item.public())]
