"""What one softphone call saw, as numbers and a printable table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from service.peers.twilio.playback import MarkRecord
from service.peers.twilio.twiml import TwimlVerb

__all__ = ["CallSummary"]


@dataclass(slots=True)
class CallSummary:
    call_sid: str
    stream_sid: str
    frames_sent: int  # caller media messages sent
    ms_sent: int
    frames_received: int  # server media messages
    ms_received: float
    ms_played: float
    ms_dropped_by_clear: float
    ms_overflow: float  # dropped because the playback queue hit max_buffered_ms
    marks_received: int
    marks_echoed: int
    clears: int
    dtmf_sent: int
    invalid_messages: int
    invalid_reasons: dict[str, int]
    closed_by: Literal["softphone", "server"] | None  # None while the call is still up
    close_code: int | None
    close_reason: str | None
    fallback_verbs: list[TwimlVerb]
    fallback_would_run: bool  # server ended the stream and TwiML follows </Connect> (A.1)
    twiml_parameters: dict[str, str]
    twiml_warnings: list[str]
    marks: list[MarkRecord]  # per server mark: played_ms_at_echo (None = never echoed), cleared
    marks_pending_at_end: list[str]
    duration_s: float  # webhook answered → hang-up
    status_callback_code: int | None = None

    def to_table(self) -> str:
        def row(k: str, v: object) -> str:
            return f"  {k:<22} {v}"

        if self.closed_by == "server":
            ended = f"stream ended by server (code {self.close_code} {self.close_reason or ''})"
            if self.fallback_would_run:
                ended += "; Twilio would now run: " + ", ".join(map(str, self.fallback_verbs))
            else:
                ended += "; nothing after </Connect>: the call would hang up"
        else:
            ended = f"softphone hung up (server close code {self.close_code})"
        cleared = sum(1 for m in self.marks if m.cleared)
        lines = [
            f"call {self.call_sid}  stream {self.stream_sid}  {self.duration_s:.2f} s",
            row("ended", ended.rstrip()),
            row("caller audio sent", f"{self.frames_sent} frames / {self.ms_sent} ms"),
            row("agent audio recv", f"{self.frames_received} msgs / {self.ms_received:.0f} ms"),
            row("agent audio played", f"{self.ms_played:.0f} ms"),
            row("dropped by clear", f"{self.ms_dropped_by_clear:.0f} ms ({self.clears} clears)"),
            row(
                "marks",
                f"{self.marks_received} received, {self.marks_echoed} echoed "
                f"({cleared} by clear), {len(self.marks_pending_at_end)} pending at end",
            ),
            row("dtmf sent", self.dtmf_sent),
            row("parameters", self.twiml_parameters),
        ]
        if self.ms_overflow:
            lines.append(row("playback overflow", f"{self.ms_overflow:.0f} ms dropped"))
        if self.invalid_messages:
            lines.append(
                row("INVALID from server", f"{self.invalid_messages} {dict(self.invalid_reasons)}")
            )
        lines.extend(row("TwiML warning", w) for w in self.twiml_warnings)
        if self.status_callback_code is not None:
            lines.append(row("status callback", f"HTTP {self.status_callback_code}"))
        return "\n".join(lines)
