"""Sans-I/O response slot: the one response we may have asked the model for at a time.

A realtime model runs one response per conversation at a time (protocols.md B.3). Our own
requests (a tool's answer, a reply to keypad digits, a goodbye) must wait for the slot, and a
request can lose a race with a response the server's VAD started, be refused outright, or
never be acknowledged at all. This module is the whole state machine; the tool coordinator
asks it what to do and does the I/O.

States and transitions (anything not listed leaves the state unchanged)::

    IDLE          --request(p)-->              REQUESTED(p)
    RETRY(p)      --request(p)-->              REQUESTED(p)
    REQUESTED(p)  --started(id, p)-->          ACTIVE(id, p)
    REQUESTED(p)  --refused(busy)-->           RETRY(p)      lost a race: ask again when free
    REQUESTED(p)  --refused(other)-->          RETRY(p)      on the first attempt, else IDLE
    REQUESTED(p)  --expire(now ≥ deadline)-->  RETRY(p)      on the first attempt, else IDLE
    ACTIVE(id, p) --done(id)-->                IDLE
    any           --request(p, force=True)-->  REQUESTED(p)  the service ends the call

Invariants:

* At most one of our requests is outstanding: ``request`` without ``force`` is only called
  when ``busy()`` is false, so a second ``response.create`` never goes out while one waits.
* A request's ``answers`` (the tool calls its response will speak about) travel with it from
  REQUESTED through RETRY to ACTIVE, so a lost race never loses a tool's answer.
* REQUESTED always has a deadline: a model that answers ``response.create`` with silence
  blocks later outputs for at most ``ack_timeout`` seconds (twice that with the one retry).
* A failed request (refused, or never acknowledged) is asked once more, then dropped: the
  tool outputs are already items of the conversation, so the next response speaks of them.
  A late ``response.created`` for the first attempt is taken as the answer to the retry, and
  the retry's own refusal then arrives while ACTIVE and changes nothing.
* A response the server started by itself is not ours: it never enters the slot (the model
  edge's ``active_response_id`` covers it in ``busy``).

Memory per call: one state object holding the ids of the tool calls being answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from service.realtime.events import Purpose

__all__ = ["Active", "Idle", "Requested", "ResponseSlot", "Retry", "SlotState"]

MAX_ATTEMPTS = 2  # a refused or unacknowledged request is asked once more
Answers = tuple[tuple[str, str], ...]  # (call_id, tool name) a response speaks about


@dataclass(frozen=True, slots=True)
class Idle:
    pass


@dataclass(frozen=True, slots=True)
class Requested:
    purpose: Purpose
    answers: Answers
    deadline: float
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class Active:
    response_id: str
    purpose: Purpose
    answers: Answers


@dataclass(frozen=True, slots=True)
class Retry:
    purpose: Purpose
    answers: Answers
    attempt: int = 1  # attempts already made


SlotState = Idle | Requested | Active | Retry


@dataclass
class ResponseSlot:
    """``ack_timeout``: seconds a request may wait for ``response.created`` (or a refusal)."""

    ack_timeout: float = 5.0
    state: SlotState = field(default_factory=Idle)
    expired: int = 0
    refused_count: int = 0

    def busy(self, model_active_response: str | None) -> bool:
        """True while a request of ours waits or runs, or any response holds the model."""
        return isinstance(self.state, Requested | Active) or model_active_response is not None

    def request(
        self, purpose: Purpose, answers: Answers, now: float, *, force: bool = False
    ) -> None:
        assert force or isinstance(self.state, Idle | Retry), f"slot is {self.state}"
        previous = self.state
        attempt = previous.attempt + 1 if isinstance(previous, Retry) and not force else 1
        self.state = Requested(purpose, answers, now + self.ack_timeout, attempt)

    def retry_request(self, now: float) -> Requested | None:
        """RETRY(p) → REQUESTED(p): the request to send again, if one waits."""
        state = self.state
        if not isinstance(state, Retry):
            return None
        self.request(state.purpose, state.answers, now)
        assert isinstance(self.state, Requested)
        return self.state

    def started(self, response_id: str, purpose: str) -> Active | None:
        """``response.created`` echoing ``purpose``; the new ACTIVE state if it was ours."""
        state = self.state
        if not isinstance(state, Requested) or purpose != state.purpose:
            return None  # the server's own response, a filler, or a greeting
        self.state = Active(response_id, state.purpose, state.answers)
        return self.state

    def done(self, response_id: str) -> Active | None:
        """``response.done``; the ACTIVE state that ended, if it was ours."""
        state = self.state
        if not isinstance(state, Active) or state.response_id != response_id:
            return None
        self.state = Idle()
        return state

    def refused(self, *, busy: bool) -> Requested | None:
        """The model answered our request with an error (``busy``: another response held the
        conversation); the request dropped for good, if it was."""
        state = self.state
        if not isinstance(state, Requested):
            return None
        self.refused_count += 1
        if busy:
            # Losing a race is not a failed attempt: the server was busy, not broken.
            self.state = Retry(state.purpose, state.answers, state.attempt - 1)
            return None
        return self._failed(state)

    def expire(self, now: float) -> Requested | None:
        """Give up on a request nobody acknowledged by its deadline; the dropped request."""
        state = self.state
        if not isinstance(state, Requested) or now < state.deadline:
            return None
        self.expired += 1
        return self._failed(state)

    def _failed(self, state: Requested) -> Requested | None:
        if state.attempt < MAX_ATTEMPTS:
            self.state = Retry(state.purpose, state.answers, state.attempt)
            return None
        self.state = Idle()
        return state

    def deadline(self) -> float | None:
        return self.state.deadline if isinstance(self.state, Requested) else None
