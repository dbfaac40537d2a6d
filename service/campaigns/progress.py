"""What came of a campaign call: final ``CallProgress`` → the contact's result and retry.

The carrier edge reports a call's final status as a neutral ``CallProgress`` carrying the
campaign and contact it was placed for. The call record (``P call:{sid}``) already holds what
happened during the call — the AMD verdict (``answered_by``), ``voicemail_left`` (the
voicemail policy), ``outcome`` (the agent's ``record_outcome`` tool) — so it is read here and
copied to the contact with the result and, if the retry policy says so, its next due time
(inside its calling window).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import structlog

from service.campaigns.campaigns import Campaigns
from service.campaigns.policy import classify
from service.campaigns.windows import next_open
from service.store.calls import CallStore
from service.telephony.events import CallProgress

__all__ = ["CampaignProgress"]

log = structlog.get_logger(__name__)
RECORD_WAIT_S = 3.0


class CampaignProgress:
    def __init__(self, campaigns: Campaigns, calls: CallStore) -> None:
        self.campaigns = campaigns
        self.calls = calls

    async def _call_record(self, call_sid: str) -> dict[str, str]:
        """The call record, once its media side has recorded its end: the final status can
        overtake the stream's close (both end the call at once), and ``end_reason`` says
        whether the voicemail was left. Bounded: ``RECORD_WAIT_S`` at most."""
        record = await self.calls.get_call(call_sid)
        waited = 0.0
        while record.get("stream_sid") and not record.get("end_reason") and waited < RECORD_WAIT_S:
            await asyncio.sleep(0.1)
            waited += 0.1
            record = await self.calls.get_call(call_sid)
        return record

    async def on_progress(self, progress: CallProgress) -> None:
        campaign_id = progress.tags.get("campaign", "")
        contact_id = progress.tags.get("contact", "")
        if not (progress.final and campaign_id and contact_id):
            return
        try:
            rules = await self.campaigns.rules(campaign_id)
        except KeyError:
            log.warning("final status for an unknown campaign", campaign_id=campaign_id)
            return
        record = await self._call_record(progress.call_sid)
        answered_by = progress.answered_by or str(record.get("answered_by", ""))
        # The voicemail policy ends the call with this reason once the message has played.
        voicemail_left = record.get("end_reason") == "voicemail_left"
        result = classify(progress.outcome, answered_by, voicemail_left=voicemail_left)
        contact = await self.campaigns.store.contact(campaign_id, contact_id)
        attempts = int(contact.get("attempts", "0") or 0)
        delay = rules.retry.retry_after(result, attempts)
        retry_at: int | None = None
        if delay is not None:
            now = self.campaigns.now()
            zones = tuple(contact.get("zones", rules.default_timezone).split())
            opens = next_open(rules.windows, zones, now + timedelta(seconds=delay),
                              self.campaigns.ring_s)  # fmt: skip
            retry_at = int(opens.timestamp() * 1000) if opens else None
        fields = {
            "answered_by": answered_by,
            "duration_s": progress.duration_s if progress.duration_s is not None else "",
            "voicemail_left": "true" if voicemail_left else "false",
            "outcome": record.get("outcome", ""),
            "outcome_note": record.get("outcome_note", ""),
            "last_status": progress.status,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        applied = await self.campaigns.store.finish(
            campaign_id, contact_id, call_sid=progress.call_sid, result=result,
            retry_at=retry_at, fields=fields,
        )  # fmt: skip
        log.info("campaign attempt finished", campaign_id=campaign_id, contact_id=contact_id,
                 result=result, retry=retry_at is not None, applied=applied)  # fmt: skip
