"""What a finished attempt means, and whether (and when) to try the contact again. Pure.

Results (one word per attempt, kept on the contact):

====================  ===============================================  default retry
``answered``          a person (or AMD unsure) took the call            no
``voicemail_left``    a machine; our message was spoken after the beep  no
``machine``           a machine; no message left                        after 1 h
``fax``               a fax tone                                        no
``busy``              busy signal                                       after 5 min
``no_answer``         rang out                                          after 30 min
``failed``            the carrier could not connect (or refused)        after 10 min
``canceled``          the call was canceled before it connected         no
====================  ===============================================  =============

Final (never retried, decided before any dial): ``dnc`` (on the do-not-call list),
``invalid`` (refused at dial time: profile or variables gone, the carrier rejected the
number), ``never_open`` (its zones' windows never overlap). Upload rows that fail
validation are ``rejected`` and never become contacts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["RetryPolicy", "RetryRule", "classify"]

MACHINE_PARTIES = frozenset({"machine"})


def classify(outcome: str, answered_by: str, *, voicemail_left: bool = False) -> str:
    """The attempt's result from the neutral ``CallProgress.outcome`` and Twilio's
    ``AnsweredBy`` (kept verbatim on the call record)."""
    if outcome != "completed":
        return outcome or "failed"
    if answered_by == "fax":
        return "fax"
    if answered_by.startswith("machine"):
        return "voicemail_left" if voicemail_left else "machine"
    return "answered"


@dataclass(frozen=True)
class RetryRule:
    delay_s: float
    retry: bool = True


DEFAULT_RULES: Mapping[str, RetryRule] = {
    "busy": RetryRule(300),
    "no_answer": RetryRule(1800),
    "failed": RetryRule(600),
    "machine": RetryRule(3600),
    "voicemail_left": RetryRule(0, retry=False),
    "answered": RetryRule(0, retry=False),
    "fax": RetryRule(0, retry=False),
    "canceled": RetryRule(0, retry=False),
}


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` dials per contact at most; per-result delay and whether to retry.

    Back-offs for errors that placed no call (Twilio 429/20429, 5xx, network) are not
    attempts: ``backoff_s(n)`` grows 2, 4, 8 … s up to ``max_backoff_s``.
    """

    max_attempts: int = 3
    rules: Mapping[str, RetryRule] = field(default_factory=lambda: dict(DEFAULT_RULES))
    max_backoff_s: float = 60.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 20:
            raise ValueError("max_attempts must be between 1 and 20")

    def retry_after(self, result: str, attempts: int) -> float | None:
        """Seconds until the next attempt, or None when the contact is done."""
        rule = self.rules.get(result)
        if rule is None or not rule.retry or attempts >= self.max_attempts:
            return None
        return rule.delay_s

    def backoff_s(self, failures: int) -> float:
        return min(self.max_backoff_s, 2.0 ** max(1, failures))

    def to_json(self) -> dict[str, object]:
        return {
            "max_attempts": self.max_attempts,
            "max_backoff_s": self.max_backoff_s,
            "rules": {k: {"delay_s": r.delay_s, "retry": r.retry} for k, r in self.rules.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> RetryPolicy:
        """Rules given override the defaults one by one (``{"busy": {"delay_s": 60}}``)."""
        rules = dict(DEFAULT_RULES)
        raw_rules = data.get("rules") or {}
        if not isinstance(raw_rules, Mapping):
            raise ValueError("retry.rules must be an object")
        for result, raw in raw_rules.items():
            if result not in DEFAULT_RULES or not isinstance(raw, Mapping):
                raise ValueError(f"retry.rules.{result}: unknown result or not an object")
            base = rules[result]
            rules[result] = RetryRule(
                float(raw.get("delay_s", base.delay_s)), bool(raw.get("retry", base.retry))
            )
        return cls(
            max_attempts=int(data.get("max_attempts", 3)),  # type: ignore[call-overload]
            rules=rules,
            max_backoff_s=float(data.get("max_backoff_s", 60.0)),  # type: ignore[arg-type]
        )
