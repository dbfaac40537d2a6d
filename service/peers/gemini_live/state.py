"""What outlives one connection of the local Gemini peer: conversations and resumption handles.

A handle resumes the conversation *as it was when the handle was issued* (D.4: resuming from an
older handle loses what came after it), so the book stores the counters with each handle.

Memory: the newest ``MAX_HANDLES`` handles server-wide; ``MAX_HISTORY`` lines per conversation.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass, field

__all__ = ["MAX_HANDLES", "MAX_HISTORY", "Conversation", "HandleBook"]

MAX_HISTORY = 256
MAX_HANDLES = 1024


@dataclass
class Conversation:
    """What a resumption handle resumes: shared by the connections of one logical session."""

    id: str
    turns: int = 0  # model turns begun (indexes the script)
    caller_turns: int = 0
    history: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=MAX_HISTORY))


class HandleBook:
    """Issued handles → (conversation, its counters when issued); the newest ``MAX_HANDLES``."""

    def __init__(self) -> None:
        self._handles: OrderedDict[str, tuple[Conversation, int, int]] = OrderedDict()
        self.rejected = 0  # resumptions refused on purpose (``reject_resumptions``)

    def issue(self, conversation: Conversation) -> str:
        handle = f"handle_{secrets.token_hex(8)}"
        self._handles[handle] = (conversation, conversation.turns, conversation.caller_turns)
        while len(self._handles) > MAX_HANDLES:
            self._handles.popitem(last=False)
        return handle

    def resume(self, handle: str) -> Conversation | None:
        """The conversation as it was when ``handle`` was issued (later turns are lost, D.4)."""
        entry = self._handles.get(handle)
        if entry is None:
            return None
        conversation, conversation.turns, conversation.caller_turns = entry
        return conversation
