"""The built-in call-control tools: end the call, transfer it.

They act through ``ctx.call`` (:class:`~service.agent.tools.CallControl`, the call worker),
which sends neutral ``HangUp``/``Transfer`` commands to whichever carrier edge holds the call;
the edge decides how (Twilio: REST or closing the stream; SIP: BYE or REFER). Their
docstrings are written for the model.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from service.agent.tools import ToolContext
from service.telephony.numbers import validate_transfer_target

__all__ = ["end_call", "transfer_call"]


async def end_call(
    ctx: ToolContext,
    reason: Annotated[
        str, Field(description='Why the call ends, e.g. "caller_done" or "caller_request".')
    ] = "caller_done",
) -> dict[str, object]:
    """End the phone call. Say a short goodbye first; the line is hung up after your goodbye
    has played. Use it when the caller is done or asks to hang up.

    The worker runs this only once the goodbye audio has been heard (marks echoed); ``reason``
    reaches the audit with the arguments.
    """
    await ctx.control().hang_up("agent_hangup")
    return {"ended": True}


async def transfer_call(
    ctx: ToolContext,
    target: Annotated[
        str,
        Field(
            description='A phone number with country code (like "+15551234567"), a SIP '
            'address ("sip:user@example.com"), or "human" for a person on our team.'
        ),
    ],
) -> dict[str, object]:
    """Transfer the caller to another phone number or to a person on our team. Tell the
    caller you are transferring them before you call this.

    ``target`` is validated first (a ValueError carries a sentence the agent can say); the
    carrier then moves the call, which ends our media stream. A carrier failure (the caller
    already hung up, the carrier's API is down) raises ``CarrierError``.
    """
    dialable = validate_transfer_target(target, ctx.transfer_policy)
    await ctx.control().transfer(dialable)
    return {"transferred": True, "target": dialable}
