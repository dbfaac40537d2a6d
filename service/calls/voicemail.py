"""What an outbound call does once the carrier says who answered. The worker's policy for
``AnswerDetected``, kept in its own small object the factory attaches to outbound calls.

``decide`` is pure; ``apply`` acts through the worker's public surface (``send`` a neutral
command, the tool coordinator's ``farewell`` — the same path a drain goodbye takes — and
``hang_up``):

=====================================  ====================================================
who answered                           what the call does
=====================================  ====================================================
``human`` / ``unknown``                carry on (a ``wait_for_callee`` profile has not
                                       greeted: the model answers the callee's first words)
``machine``, greeting ended, message   clear playback, say the profile's voicemail message
                                       verbatim, hang up (end reason ``voicemail_left``)
``machine``, no message, or greeting   hang up (``answering_machine``); Twilio's ``Enable``
still running (``machine_start``)      mode never waits for the beep
``fax``                                hang up (``fax``)
=====================================  ====================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from service.telephony.events import AnswerDetected, ClearPlayback

if TYPE_CHECKING:
    from service.calls.worker import CallWorker

__all__ = ["VoicemailPolicy"]

log = structlog.get_logger(__name__)
VOICEMAIL_REASON = "voicemail_left"


@dataclass
class VoicemailPolicy:
    """Per outbound call; ``message`` is the filled-in voicemail text ("" = none)."""

    message: str = ""
    acted: bool = False

    def decide(self, event: AnswerDetected) -> str:
        """``carry_on`` | ``leave_message`` | ``hang_up``."""
        if event.party == "fax":
            return "hang_up"
        if event.party != "machine":
            return "carry_on"
        if self.message and event.greeting_ended:
            return "leave_message"
        return "hang_up"

    async def apply(self, worker: CallWorker, event: AnswerDetected) -> str:
        action = self.decide(event)
        worker.store.append_event(
            worker.call_sid, "answered_by", party=event.party, verdict=event.verdict,
            action=action,
        )  # fmt: skip
        if action == "carry_on" or self.acted:
            return action
        self.acted = True
        if action == "leave_message" and worker.model_ready:
            await worker.send(ClearPlayback())
            worker.store.update_call(worker.call_sid, voicemail_message=self.message)
            instructions = (
                "You reached an answering machine and its beep has sounded. Say exactly this "
                f'message, then nothing else: "{self.message}"'
            )
            await worker.tool_calls.farewell(VOICEMAIL_REASON, instructions)
            return action
        reason = "fax" if event.party == "fax" else "answering_machine"
        await worker.hang_up(reason)
        return "hang_up"
