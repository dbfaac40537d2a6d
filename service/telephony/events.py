"""Neutral events between a carrier edge and the call worker.

A carrier edge turns wire messages into ``CallerEvent``s and neutral commands into wire
messages (or carrier API calls). Nothing here knows about Twilio, SIP or any model.

Caller audio stays G.711 μ-law as it arrived: the worker decides whether to decode it
(transcode mode) or forward it untouched (passthrough mode), so no frame is decoded twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class CallStarted:
    """The call's media is up.

    ``call_sid`` is the carrier's id for the call (the store's keys use it); ``carrier`` names
    the edge ("twilio", "sip", …). ``carrier_fields`` is the edge's own part, opaque to the
    middle and recorded on the call as given (Twilio: ``stream_sid``, ``account_sid``).
    ``parameters`` are what the call was set up with (Twilio's ``<Parameter>``s; a SIP
    edge's headers), of which the middle reads none.
    """

    call_sid: str
    carrier: str
    from_number: str = ""
    to_number: str = ""
    direction: str = "inbound"
    carrier_fields: Mapping[str, str] = field(default_factory=dict)
    parameters: Mapping[str, str] = field(default_factory=dict)
    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000
    channels: int = 1


@dataclass(frozen=True, slots=True)
class CallerAudio:
    """One frame of caller audio, μ-law 8 kHz; ``timestamp_ms`` is the carrier's stream clock."""

    ulaw: bytes
    timestamp_ms: int | None = None
    chunk: int | None = None


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    digit: str


@dataclass(frozen=True, slots=True)
class MarkPlayed:
    """The carrier echoed a mark: playback reached it, or a ``clear`` flushed it."""

    name: str


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The carrier stopped the stream (the call ended)."""

    reason: str = "caller_hangup"


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """A frame the edge could not accept. ``fatal`` means the stream cannot go on."""

    reason: str
    detail: str = ""
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class AnswerDetected:
    """Who answered an outbound call, as the carrier's answering-machine detection judged.

    ``party`` is ``human``, ``machine``, ``fax`` or ``unknown``; ``greeting_ended`` is True
    when a machine's greeting is over (its beep or silence): the moment to leave a message.
    ``verdict`` keeps the carrier's own word (Twilio's ``AnsweredBy``) for the record only.
    It may reach the call from another process (the carrier's callback lands on any replica).
    """

    party: str
    greeting_ended: bool = False
    verdict: str = ""


@dataclass(frozen=True, slots=True)
class CallProgress:
    """A carrier's report on a call's life outside its media (ringing, answered, ended).

    ``final`` marks the last report: nothing more happens on the call (Twilio's final status
    callback). ``outcome`` is neutral: ``completed``, ``busy``, ``no_answer``, ``failed``,
    ``canceled`` or ``""`` while the call goes on. ``tags`` are what the call was placed with
    (campaign and contact ids), returned as given.
    """

    call_sid: str
    status: str
    final: bool = False
    outcome: str = ""
    duration_s: int | None = None
    answered_by: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


CallerEvent = CallStarted | CallerAudio | DtmfReceived | MarkPlayed | CallEnded | ProtocolViolation


# Commands: the worker → the carrier edge.


@dataclass(frozen=True, slots=True)
class PlayAudio:
    """Queue μ-law 8 kHz audio for playback, in order, at the carrier."""

    ulaw: bytes


@dataclass(frozen=True, slots=True)
class PlaceMark:
    """Ask the carrier to echo ``name`` once playback reaches this point."""

    name: str


@dataclass(frozen=True, slots=True)
class ClearPlayback:
    """Drop all audio queued at the carrier; pending marks are echoed at once."""


@dataclass(frozen=True, slots=True)
class HangUp:
    """End the call. ``failed`` says the agent could not go on (its model went away): a
    carrier with a fallback for that (Twilio's TwiML after ``</Connect>``, which apologises)
    runs it instead of hanging up outright."""

    reason: str = "agent_hangup"
    failed: bool = False


@dataclass(frozen=True, slots=True)
class Transfer:
    """Move the call to ``target`` (validated by ``telephony.numbers``); our media ends.
    The edge raises :class:`CarrierError` when the carrier cannot do it."""

    target: str


CallerCommand = PlayAudio | PlaceMark | ClearPlayback | HangUp | Transfer


class CarrierError(Exception):
    """A carrier could not carry out a command (its API failed, or the call has gone).

    ``retryable``: the carrier did nothing and the same request may be sent again later
    (rate limited, network error, server error) — a dialer backs off without counting an
    attempt."""

    retryable: bool = False


@dataclass(frozen=True, slots=True)
class DialRequest:
    """Place an outbound call: the middle asks, a carrier edge dials.

    ``dial_id`` names what the call was placed with (``store.dials``); ``tags`` (campaign and
    contact ids) come back on every ``CallProgress`` for the call. ``detect_machine``:
    ``""`` none, ``"answer"`` as soon as a party is known, ``"message_end"`` wait for a
    machine's beep (to leave a message).
    """

    to: str
    from_: str
    dial_id: str
    tags: Mapping[str, str] = field(default_factory=dict)
    detect_machine: str = "answer"
    ring_timeout_s: int = 30
    time_limit_s: int = 600
