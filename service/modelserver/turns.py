"""What a response is asked for and what it may call: the words shared by the scripted server
(:mod:`.script`) and the offline engine (:mod:`.engine.base`).

It sits at the bottom of the model server's imports (it imports nothing of ours), so the
script and the engine both depend on it and never on each other. Frozen values only: no
state, no memory beyond the instances a caller holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["FunctionCall", "ResponseRequest", "Trigger"]

Trigger = Literal["client", "turn_detection", "idle_timeout"]  # what started a response


@dataclass(frozen=True)
class FunctionCall:
    """A ``function_call`` output item (B.5); arguments are streamed in a few deltas."""

    name: str
    arguments: str = "{}"
    call_id: str | None = None  # None: a fresh "call_…" id


@dataclass(frozen=True)
class ResponseRequest:
    """Why a response is being made: the input to :meth:`.script.Script.turn_for` and, inside
    a :class:`~.engine.base.BrainRequest`, to an engine's brain."""

    index: int  # 0 for the session's first response
    trigger: Trigger
    instructions: str  # response.instructions if given, else the session's
    last_user_item: dict[str, Any] | None  # the newest user/function_call_output item, if any
    # Every item of the conversation before this response (public shapes), oldest first: a
    # script can answer from what was said earlier (e.g. after a replayed conversation).
    history: tuple[dict[str, Any], ...] = ()
