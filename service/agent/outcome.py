"""``record_outcome``: the agent says how an (outbound) call went, in one word.

Written to the call record (``outcome``, ``outcome_note``); a campaign copies it to the
contact's results when the call's final status arrives (``campaigns.progress``). The tool
call itself is in the audit like every other.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from service.agent.tools import ToolContext
from service.store.keys import CallKeys

__all__ = ["OUTCOMES", "record_outcome"]

Outcome = Literal[
    "confirmed", "declined", "rescheduled", "callback_requested", "wrong_person",
    "not_interested", "other",
]  # fmt: skip
OUTCOMES: tuple[str, ...] = Outcome.__args__  # type: ignore[attr-defined]


async def record_outcome(
    ctx: ToolContext,
    outcome: Annotated[Outcome, Field(description="How the call went, in one word.")],
    note: Annotated[
        str, Field(description="A short note, e.g. the time a callback was asked for.")
    ] = "",
) -> dict[str, object]:
    """Record how this call went (for example that the customer confirmed, or asked to be
    called back). Call it once you know, before saying goodbye."""
    if ctx.redis is not None:
        key = CallKeys(ctx.key_prefix).call(ctx.call_sid)
        await ctx.redis.hset(key, mapping={"outcome": outcome, "outcome_note": note[:300]})
    return {"recorded": outcome}
