"""Attempt results and the retry policy."""

from __future__ import annotations

import pytest

from service.campaigns.policy import RetryPolicy, classify
from service.campaigns.rules import CampaignRules


def test_classify() -> None:
    assert classify("completed", "human") == "answered"
    assert classify("completed", "") == "answered"
    assert classify("completed", "unknown") == "answered"
    assert classify("completed", "machine_end_beep", voicemail_left=True) == "voicemail_left"
    assert classify("completed", "machine_start") == "machine"
    assert classify("completed", "fax") == "fax"
    assert classify("busy", "") == "busy"
    assert classify("no_answer", "") == "no_answer"
    assert classify("", "") == "failed"


def test_retry_rules_and_attempt_limit() -> None:
    policy = RetryPolicy.from_json({"max_attempts": 2, "rules": {"busy": {"delay_s": 60}}})
    assert policy.retry_after("busy", 1) == 60
    assert policy.retry_after("busy", 2) is None  # attempts used up
    assert policy.retry_after("no_answer", 1) == 1800
    assert policy.retry_after("answered", 1) is None
    assert policy.retry_after("voicemail_left", 1) is None
    retry_voicemail = RetryPolicy.from_json({"rules": {"voicemail_left": {"retry": True}}})
    assert retry_voicemail.retry_after("voicemail_left", 1) == 0
    assert [policy.backoff_s(n) for n in (1, 2, 3, 10)] == [2, 4, 8, 60]
    with pytest.raises(ValueError):
        RetryPolicy.from_json({"rules": {"nonsense": {}}})


def test_rules_round_trip_through_redis_fields() -> None:
    rules = CampaignRules.from_request(
        {"profile": "reminder", "concurrency": 3, "cps": 2, "windows": "Mon-Fri 09:00-20:00",
         "retry": {"max_attempts": 4}},
        "America/Chicago",
    )  # fmt: skip
    again = CampaignRules.from_fields(rules.to_fields())
    assert again == rules and again.interval_ms == 500.0
    for bad in ({"concurrency": 0}, {"cps": 0}, {"windows": "whenever"}):
        with pytest.raises(ValueError):
            CampaignRules.from_request({"profile": "p", **bad}, "UTC")
