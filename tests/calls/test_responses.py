"""The response slot's state machine, transition by transition (no I/O, no clock but ours)."""

from __future__ import annotations

import pytest

from service.calls.responses import Active, Idle, Requested, ResponseSlot, Retry

ANSWERS = (("call_1", "lookup_order"),)


def requested(slot: ResponseSlot, now: float = 0.0) -> ResponseSlot:
    slot.request("tool_answer", ANSWERS, now)
    return slot


def test_request_started_done_is_the_happy_path() -> None:
    slot = requested(ResponseSlot(ack_timeout=5))
    assert slot.busy(None) and slot.deadline() == 5
    assert slot.started("resp_1", "tool_answer") == Active("resp_1", "tool_answer", ANSWERS)
    assert slot.deadline() is None  # acknowledged: no timeout runs
    assert slot.done("resp_other") is None  # someone else's response ending changes nothing
    assert slot.done("resp_1") == Active("resp_1", "tool_answer", ANSWERS)
    assert slot.state == Idle() and not slot.busy(None)


def test_responses_that_are_not_ours_never_enter_the_slot() -> None:
    slot = requested(ResponseSlot())
    assert slot.started("resp_vad", "") is None  # the server's VAD started one
    assert slot.started("resp_filler", "filler") is None  # out of band
    assert isinstance(slot.state, Requested)
    assert ResponseSlot().busy("resp_vad")  # a server response holds the model: we wait


def test_a_lost_race_keeps_the_answers_and_is_asked_again() -> None:
    slot = requested(ResponseSlot())
    assert slot.refused(busy=True) is None
    assert slot.state == Retry("tool_answer", ANSWERS, 0)
    assert not slot.busy(None)
    again = slot.retry_request(now=1.0)
    assert again is not None and again.answers == ANSWERS and again.attempt == 1


def test_a_refusal_is_retried_once_then_given_up() -> None:
    slot = requested(ResponseSlot())
    assert slot.refused(busy=False) is None
    assert isinstance(slot.state, Retry)
    second = slot.retry_request(now=1.0)
    assert second is not None and second.attempt == 2
    dropped = slot.refused(busy=False)
    assert dropped is not None and dropped.answers == ANSWERS
    assert slot.state == Idle() and slot.refused_count == 2


def test_an_unacknowledged_request_expires_at_its_deadline() -> None:
    slot = requested(ResponseSlot(ack_timeout=2.0), now=10.0)
    assert slot.expire(11.9) is None and isinstance(slot.state, Requested)
    assert slot.expire(12.0) is None and isinstance(slot.state, Retry)
    slot.retry_request(now=12.0)
    assert slot.expire(14.0) is not None
    assert slot.state == Idle() and slot.expired == 2


def test_a_late_created_for_the_first_attempt_answers_the_retry() -> None:
    slot = requested(ResponseSlot(ack_timeout=1.0))
    slot.expire(1.0)
    slot.retry_request(now=1.0)
    assert slot.started("resp_late", "tool_answer") is not None
    assert slot.refused(busy=True) is None  # the retry's own refusal arrives while ACTIVE
    assert isinstance(slot.state, Active)


def test_only_an_idle_slot_takes_a_request_unless_forced() -> None:
    slot = requested(ResponseSlot())
    with pytest.raises(AssertionError):
        slot.request("reply", (), 0.0)
    slot.request("goodbye", (), 0.0, force=True)  # the service ends the call
    assert slot.state == Requested("goodbye", (), 5.0, 1)
