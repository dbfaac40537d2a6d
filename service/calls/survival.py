"""When the worker replaces its model session, and how hard it tries (issue 17).

A session that drops mid-call (socket gone, server error close) is replaced by a fresh one
that is told the conversation so far (``mirror.ConversationMirror``); a session about to hit
the provider's maximum length (OpenAI closes at 60 minutes) is rolled over between turns the
same way. The edge only offers ``reopen()`` and ``replay(items)``; every decision is here and
in the worker's "model session survival" section.

Memory per call: the policy is a few numbers; the caller audio held during a gap is bounded
by ``held_frames`` (20 ms μ-law frames, 160 bytes each).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RESUME_INSTRUCTIONS", "SurvivalPolicy"]

# Said when the session dropped while the agent was talking: the caller heard it stop.
RESUME_INSTRUCTIONS = (
    "The line dropped for a moment while you were speaking. Without apologising at length, "
    "finish your last answer in one or two short sentences; do not repeat what you had "
    "already said."
)
FRAME_MS = 20


@dataclass(frozen=True, slots=True)
class SurvivalPolicy:
    """``attempts``: fresh sessions tried after a drop before the call ends (0: never);
    ``backoff_s``: wait before the second attempt, doubled for each later one;
    ``attempt_timeout_s``: how long one attempt may take (connect + session.updated);
    ``session_max_s``: roll to a fresh session, between turns, once a session is this old
    (0: never); ``held_audio_ms``: caller audio held while there is no session, beyond which
    frames are dropped and counted."""

    attempts: int = 3
    backoff_s: float = 0.2
    attempt_timeout_s: float = 1.5
    session_max_s: float = 3300.0
    held_audio_ms: int = 3000
    # A replaced session that drops again sooner than this counts as a quick drop.
    stable_after_s: float = 10.0

    @property
    def held_frames(self) -> int:
        return max(1, self.held_audio_ms // FRAME_MS)

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt`` (1-based): none before the first."""
        return 0.0 if attempt <= 1 else self.backoff_s * 2 ** (attempt - 2)

    def roll_due(self, session_age_s: float) -> bool:
        return self.session_max_s > 0 and session_age_s >= self.session_max_s
