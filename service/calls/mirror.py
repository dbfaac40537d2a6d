"""The conversation so far, kept by the worker so a fresh model session can be told it.

When a model session drops (or is rolled before the provider's session cap), the new session
knows nothing; the worker replays this mirror into it (``ModelSession.replay``). It holds the
caller's and the agent's lines, tool calls and their outputs, in the order the worker saw
them. The agent's lines are cut at what the caller heard: a barge-in's truncation cuts the
text in proportion, and a line still being said when the session dropped keeps no more words
than the audio sent to the carrier could carry.

The same lines are in the call's events stream in Redis (``transcript``, ``tool`` audit),
which is what a resume in another process would read; this copy is the fast path.

Memory per call: at most ``max_items`` entries and ``max_chars`` characters of text (oldest
dropped first), a few tens of KB by default.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from service.realtime.events import Purpose, ReplayItem

if TYPE_CHECKING:
    from service.realtime.session import ModelSession

__all__ = ["MS_PER_WORD_FLOOR", "ConversationMirror", "MirroredModel", "replay_summary"]

# The fastest ordinary speech is ~200 words/min; a line being said when the session dropped
# keeps at most one word per this many ms of its audio sent (text runs ahead of audio).
MS_PER_WORD_FLOOR = 300


@dataclass(slots=True)
class _Entry:
    kind: str
    text: str
    item_id: str = ""
    call_id: str = ""
    name: str = ""
    heard_fraction: float | None = None  # set when a barge-in cut the agent's line
    final: bool = False  # the agent's line is complete (its transcript is done)


class ConversationMirror:
    def __init__(self, *, max_items: int = 200, max_chars: int = 32_000) -> None:
        self._entries: deque[_Entry] = deque()
        self._agent: dict[str, _Entry] = {}  # item_id → the agent's line being said
        self._chars = 0
        self.max_items = max_items
        self.max_chars = max_chars
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    # --- what happened ------------------------------------------------------------------------

    def caller_said(self, text: str) -> None:
        self._add(_Entry("caller", text))

    def agent_said(self, item_id: str, text: str) -> None:
        """The agent's final transcript of ``item_id`` (replaces what its deltas built)."""
        entry = self._agent.get(item_id)
        if entry is None:
            self._add(entry := _Entry("agent", "", item_id=item_id))
            self._agent[item_id] = entry
        self._chars += len(text) - len(entry.text)
        entry.text, entry.final = text, True
        self._trim()

    def agent_saying(self, item_id: str, delta: str) -> None:
        entry = self._agent.get(item_id)
        if entry is None:
            self._add(entry := _Entry("agent", "", item_id=item_id))
            self._agent[item_id] = entry
        if entry.final:
            return
        entry.text += delta
        self._chars += len(delta)
        self._trim()

    def agent_cut(self, item_id: str, heard_ms: int, sent_ms: int) -> None:
        """A barge-in cut ``item_id`` at ``heard_ms`` of ``sent_ms``."""
        entry = self._agent.get(item_id)
        if entry is not None and sent_ms > 0:
            entry.heard_fraction = min(1.0, max(0.0, heard_ms / sent_ms))

    def tool_called(self, call_id: str, name: str, arguments: str) -> None:
        self._add(_Entry("tool_call", arguments, call_id=call_id, name=name))

    def tool_answered(self, call_id: str, output: str) -> None:
        self._add(_Entry("tool_output", output, call_id=call_id))

    # --- what a fresh session is told ---------------------------------------------------------

    def items(self, sent_ms: Callable[[str], float]) -> list[ReplayItem]:
        """The conversation in order. ``sent_ms(item_id)``: ms of that agent item sent to
        the carrier (the playback ledger's count). A tool output whose call was evicted is
        left out (the model would refuse an output for a call it never saw)."""
        calls = {e.call_id for e in self._entries if e.kind == "tool_call"}
        replay: list[ReplayItem] = []
        for entry in self._entries:
            match entry.kind:
                case "agent":
                    text = _heard_words(entry, sent_ms(entry.item_id))
                    if text:
                        replay.append(ReplayItem("agent", text))
                case "caller" if entry.text:
                    replay.append(ReplayItem("caller", entry.text))
                case "tool_call":
                    replay.append(
                        ReplayItem("tool_call", entry.text, call_id=entry.call_id, name=entry.name)
                    )
                case "tool_output" if entry.call_id in calls:
                    replay.append(ReplayItem("tool_output", entry.text, call_id=entry.call_id))
        return replay

    def unfinished_agent_line(self) -> bool:
        """True when the newest agent line never got its final transcript (cut by a drop)."""
        return any(not e.final for e in self._agent.values())

    def session_replaced(self) -> None:
        """The lines of the old session are now plain history: nothing is still being said."""
        for entry in self._agent.values():
            entry.final = True
        self._agent.clear()

    # --- bounds ---------------------------------------------------------------------------

    def _add(self, entry: _Entry) -> None:
        self._entries.append(entry)
        self._chars += len(entry.text)
        self._trim()

    def _trim(self) -> None:
        # Invariant: len(_entries) ≤ max_items and _chars ≤ max_chars (but the newest stays).
        while len(self._entries) > 1 and (
            len(self._entries) > self.max_items or self._chars > self.max_chars
        ):
            old = self._entries.popleft()
            self._chars -= len(old.text)
            self.evicted += 1
            if old.kind == "agent":
                self._agent.pop(old.item_id, None)


def _heard_words(entry: _Entry, sent_ms: float) -> str:
    words = entry.text.split()
    if entry.heard_fraction is not None:
        words = words[: round(len(words) * entry.heard_fraction)]
    elif not entry.final:
        words = words[: math.ceil(sent_ms / MS_PER_WORD_FLOOR)]
    return " ".join(words)


class MirroredModel:
    """What the tool coordinator talks to: the call's model session, with every output and
    user text it sends also written into the mirror (sent or not: a session that is down
    gets them in the replay)."""

    def __init__(self, model: ModelSession, mirror: ConversationMirror) -> None:
        self._model = model
        self._mirror = mirror

    @property
    def active_response_id(self) -> str | None:
        return self._model.active_response_id

    async def function_output(self, call_id: str, output: str) -> bool:
        self._mirror.tool_answered(call_id, output)
        return await self._model.function_output(call_id, output)

    async def send_user_text(self, text: str) -> bool:
        self._mirror.caller_said(text)
        return await self._model.send_user_text(text)

    async def create_response(
        self,
        instructions: str | None = None,
        *,
        purpose: Purpose | None = None,
        out_of_band: bool = False,
    ) -> bool:
        return await self._model.create_response(
            instructions, purpose=purpose, out_of_band=out_of_band
        )

    async def cancel_response(self) -> bool:
        return await self._model.cancel_response()


def replay_summary(items: Sequence[ReplayItem]) -> dict[str, int]:
    """Counts per kind, for the call record."""
    counts: dict[str, int] = {}
    for item in items:
        counts[item.kind] = counts.get(item.kind, 0) + 1
    return counts
