"""Campaign operations: create, upload contacts, pause/resume/cancel, status, results.

The operator API and the CLI call these; the dispatcher (``dispatcher.py``) dials and
``progress.py`` records what came of each call. All state is in Redis (``store.py``).
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from service.campaigns.contacts import Contact, parse_contacts, validate_e164
from service.campaigns.outbound import OutboundCalls, OutboundError
from service.campaigns.rules import CampaignRules
from service.campaigns.store import CampaignStore, now_ms
from service.campaigns.windows import next_open

__all__ = ["EXPORT_COLUMNS", "Campaigns"]

EXPORT_COLUMNS = (
    "contact_id", "phone", "state", "result", "attempts", "call_sids", "answered_by",
    "duration_s", "outcome", "outcome_note", "voicemail_left", "last_error", "next_at",
)  # fmt: skip
TRANSITIONS = {
    "pause": ("paused", ("running",)),
    "resume": ("running", ("paused",)),
    "cancel": ("canceled", ("running", "paused")),
}


class Campaigns:
    def __init__(
        self,
        store: CampaignStore,
        outbound: OutboundCalls,
        *,
        ring_s: float,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.store = store
        self.outbound = outbound
        self.ring_s = ring_s
        self._clock = clock

    def now(self) -> datetime:
        seconds = self._clock() if self._clock else now_ms() / 1000
        return datetime.fromtimestamp(seconds, UTC)

    async def create(self, rules: CampaignRules, campaign_id: str = "") -> str:
        """A new running campaign; ``ValueError`` for an unknown profile or bad caller id."""
        try:
            self.outbound.profile(rules.profile)
            validate_e164(rules.from_number or self.outbound.settings.outbound_from_number)
        except (OutboundError, ValueError) as exc:
            raise ValueError(f"campaign rules: {exc}") from None
        campaign_id = campaign_id or uuid.uuid4().hex[:12]
        if not await self.store.create(campaign_id, rules.to_fields()):
            raise ValueError(f"campaign {campaign_id} exists")
        return campaign_id

    async def rules(self, campaign_id: str) -> CampaignRules:
        fields = await self.store.get(campaign_id)
        if not fields:
            raise KeyError(campaign_id)
        return CampaignRules.from_fields(fields)

    async def upload(self, campaign_id: str, data: bytes | str, fmt: str) -> dict[str, Any]:
        """Add contacts; returns ``{"added", "duplicates", "errors": [{row, contact_id,
        error}]}``. Rows already in the campaign are skipped (never dialed twice)."""
        rules = await self.rules(campaign_id)
        profile = self.outbound.profile(rules.profile)
        contacts, errors = parse_contacts(
            data,
            fmt=fmt,
            required=profile.required_variables(),
            default_timezone=rules.default_timezone,
        )
        now = self.now()
        schedulable: list[Contact] = []
        due: list[int] = []
        error_rows = [e.__dict__ for e in errors]
        for contact in contacts:
            opens = next_open(rules.windows, contact.zones, now, self.ring_s)
            if opens is None:
                error_rows.append(
                    {"row": 0, "contact_id": contact.contact_id,
                     "error": f"calling windows never open in {', '.join(contact.zones)}"}
                )  # fmt: skip
                continue
            schedulable.append(contact)
            due.append(int(opens.timestamp() * 1000))
        added = await self.store.add_contacts(campaign_id, schedulable, due)
        await self.store.record_errors(campaign_id, error_rows)
        return {"added": added, "duplicates": len(schedulable) - added, "errors": error_rows}

    async def change(self, campaign_id: str, action: str) -> str:
        """pause | resume | cancel → the new state; ``ValueError`` if not allowed now."""
        state, allowed = TRANSITIONS[action]
        current = (await self.store.get(campaign_id)).get("state")
        if current is None:
            raise KeyError(campaign_id)
        if not await self.store.set_state(campaign_id, state, only_from=allowed):
            raise ValueError(f"cannot {action} a campaign that is {current}")
        return state

    async def status(self, campaign_id: str) -> dict[str, Any]:
        fields = await self.store.get(campaign_id)
        if not fields:
            raise KeyError(campaign_id)
        keys = self.store.keys(campaign_id)
        redis = self.store.redis
        now = now_ms()
        waiting = int(await redis.zcard(keys.due))
        ready = int(await redis.zcount(keys.due, "-inf", now))
        live = int(await redis.zcard(keys.live))
        counters = {k: int(v) for k, v in fields.items() if v.isdigit() and k != "concurrency"}
        counters["rejected"] = await self.store.rejected_count(campaign_id)
        return {
            "id": campaign_id,
            "state": fields.get("state"),
            "rules": {k: fields.get(k) for k in ("profile", "from", "concurrency", "cps",
                                                  "windows", "default_tz")},
            "counters": counters,
            "live": live,
            "waiting": waiting,
            "waiting_for_window": waiting - ready,
        }  # fmt: skip

    async def results(self, campaign_id: str) -> list[dict[str, str]]:
        """One row per contact (upload order) plus the rejected rows."""
        if not await self.store.get(campaign_id):
            raise KeyError(campaign_id)
        rows = []
        ids = await self.store.contact_ids(campaign_id)
        for start in range(0, len(ids), 500):
            async with self.store.redis.pipeline(transaction=False) as pipe:
                for contact_id in ids[start : start + 500]:
                    pipe.hgetall(self.store.keys(campaign_id).contact(contact_id))
                for contact_id, raw in zip(
                    ids[start : start + 500], await pipe.execute(), strict=True
                ):
                    rows.append(_row(contact_id, raw))
        for error in await self.store.errors(campaign_id):
            rows.append(
                {
                    "contact_id": str(error.get("contact_id", "")),
                    "state": "rejected",
                    "result": "invalid",
                    "last_error": str(error.get("error", "")),
                }
            )
        return rows  # fmt: skip

    async def export_csv(self, campaign_id: str) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in await self.results(campaign_id):
            writer.writerow(row)
        return out.getvalue()


def _row(contact_id: str, raw: Mapping[Any, Any]) -> dict[str, str]:
    fields = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }
    next_at = fields.get("next_at_ms", "")
    if next_at and fields.get("state") == "waiting":
        fields["next_at"] = datetime.fromtimestamp(int(next_at) / 1000, UTC).isoformat()
    return {"contact_id": contact_id, **fields}
