"""The live-calls table, kept up to date from the calls' Redis entries (sans-I/O).

One ``LiveBoard`` per dashboard connection. It is fed each live call's hash and every new
entry of its events and tool-audit streams, and answers the rows to show. Memory per
connection: one small ``LiveRow`` per live call (a few hundred bytes), nothing per event.

``state`` is read from the newest telling event (the store records no "agent is speaking
now" flag): a tool call requested or started and not yet finished → ``tool running``; else a
barge-in → ``caller speaking``; the caller's transcript → ``agent answering``; the agent's
transcript → ``agent speaking``; a finished response → ``listening``; just started →
``greeting``. It can lag by the time the store takes to write (tens of ms) and is a hint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from service.ui.views import mask_number

__all__ = ["LiveBoard", "LiveRow"]


@dataclass
class LiveRow:
    call_sid: str
    carrier: str = ""
    direction: str = ""
    profile: str = ""
    from_: str = ""
    to: str = ""
    started_at: str = ""
    backend: str = ""
    state: str = "greeting"
    barge_ins: int = 0
    last_heard_ms: str = ""
    transcripts: int = 0
    open_tools: set[str] = field(default_factory=set)

    def as_json(self) -> dict[str, object]:
        return {
            "call_sid": self.call_sid,
            "carrier": self.carrier,
            "direction": self.direction,
            "profile": self.profile,
            "from": self.from_,
            "to": self.to,
            "started_at": self.started_at,
            "backend": self.backend,
            "state": "tool running" if self.open_tools else self.state,
            "barge_ins": self.barge_ins,
            "last_heard_ms": self.last_heard_ms,
            "transcripts": self.transcripts,
        }


class LiveBoard:
    """Rows for the live calls; ``mask`` hides all but the last four digits of numbers."""

    def __init__(self, *, mask: bool) -> None:
        self.mask = mask
        self.rows: dict[str, LiveRow] = {}

    def keep_only(self, call_sids: list[str]) -> None:
        """Invariant: after this, rows hold exactly the given calls' (new ones empty)."""
        wanted = set(call_sids)
        for sid in list(self.rows):
            if sid not in wanted:
                del self.rows[sid]
        for sid in call_sids:
            self.rows.setdefault(sid, LiveRow(sid))

    def apply_hash(self, call_sid: str, fields: Mapping[str, str]) -> None:
        row = self.rows.setdefault(call_sid, LiveRow(call_sid))
        row.carrier = fields.get("carrier", row.carrier or "twilio")
        row.direction = fields.get("direction", row.direction)
        row.profile = fields.get("profile", row.profile)
        row.backend = fields.get("backend", row.backend)
        row.started_at = fields.get("started_at", row.started_at)
        number_from, number_to = fields.get("from", ""), fields.get("to", "")
        row.from_ = mask_number(number_from) if self.mask else number_from
        row.to = mask_number(number_to) if self.mask else number_to

    def apply_event(self, call_sid: str, entry: Mapping[str, str]) -> None:
        row = self.rows.get(call_sid)
        if row is None:
            return
        kind = entry.get("type", "")
        if kind == "barge_in":
            row.barge_ins += 1
            row.state = "caller speaking"
            row.last_heard_ms = entry.get("audio_end_ms", "")
        elif kind == "transcript":
            row.transcripts += 1
            row.state = "agent answering" if entry.get("role") == "caller" else "agent speaking"
        elif kind == "response":
            row.state = "listening"
        elif kind == "ended":
            row.state = "ended"

    def apply_tool(self, call_sid: str, entry: Mapping[str, str]) -> None:
        row = self.rows.get(call_sid)
        if row is None:
            return
        call_id, state = entry.get("call_id", ""), entry.get("state", "")
        if state in ("requested", "started"):
            row.open_tools.add(call_id)
        elif state in ("finished", "cancelled", "duplicate"):
            row.open_tools.discard(call_id)

    def snapshot(self) -> list[dict[str, object]]:
        """Rows oldest call first."""
        rows = sorted(self.rows.values(), key=lambda r: (r.started_at, r.call_sid))
        return [row.as_json() for row in rows if row.started_at]
