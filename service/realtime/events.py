"""Neutral events between a realtime model edge and the call worker.

A model edge (OpenAI, Azure, Gemini, the local engine) turns its wire events into these and
nothing else; the worker never sees a vendor's event names. Audio is in the format the session
was opened with (``ModelAudioFormat``), so passthrough μ-law is never decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AudioEncoding = Literal["pcm16", "ulaw"]

# Why we asked for a response; sent in ``response.create`` and echoed by ``ResponseStarted``
# ("" for a response the server started by itself). The worker's words, carried opaquely.
Purpose = Literal["greeting", "filler", "tool_answer", "reply", "goodbye"]
PURPOSES: frozenset[str] = frozenset(Purpose.__args__)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ModelAudioFormat:
    encoding: AudioEncoding
    sample_rate: int

    @property
    def bytes_per_ms(self) -> float:
        return self.sample_rate / 1000 * (2 if self.encoding == "pcm16" else 1)


PCM16_24K = ModelAudioFormat("pcm16", 24_000)
ULAW_8K = ModelAudioFormat("ulaw", 8_000)


@dataclass(frozen=True, slots=True)
class SessionReady:
    session_id: str


@dataclass(frozen=True, slots=True)
class AgentAudio:
    """A chunk of the agent's voice for ``item_id`` (part of ``response_id``)."""

    response_id: str
    item_id: str
    audio: bytes
    received_at: float = 0.0  # perf_counter() when the frame arrived (latency accounting)


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The model's VAD heard the caller start talking (the barge-in trigger)."""

    item_id: str
    audio_start_ms: int
    received_at: float = 0.0


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    """``purpose`` is what we asked for in ``response.create`` ("" for the server's own)."""

    response_id: str
    purpose: Purpose | Literal[""] = ""


@dataclass(frozen=True, slots=True)
class ResponseRefused:
    """The model answered one of our response requests with an error instead of a response
    (``code`` as in the ``ModelError`` reported with it). ``busy``: refused only because
    another response holds the conversation, so asking again later will do."""

    code: str
    busy: bool = False


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """``status``: completed, cancelled, failed or incomplete; ``reason`` when not completed."""

    response_id: str
    status: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Transcript:
    """A final line of what the caller said or what the agent said."""

    role: Literal["caller", "agent"]
    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    """A piece of what the agent is saying now (before the final ``Transcript``): lets the
    worker know what was being said if the session drops mid-answer."""

    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ReplayItem:
    """One line of the conversation so far, handed back to a fresh model session.

    ``kind``: ``caller`` / ``agent`` (``text`` is the words), ``tool_call`` (``text`` is the
    arguments JSON, with ``call_id`` and ``name``), ``tool_output`` (``text`` is the output).
    """

    kind: Literal["caller", "agent", "tool_call", "tool_output"]
    text: str
    call_id: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class ToolCallRequested:
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ItemTruncated:
    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class ModelError:
    """An ``error`` from the model. Most are not fatal; the worker decides what to do."""

    code: str
    message: str
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class ModelClosed:
    """The model connection is gone (socket closed, timed out, or refused). ``call_over``: the
    vendor carried the call's audio and ended the session cleanly, so the call itself ended."""

    reason: str
    call_over: bool = False


@dataclass(frozen=True, slots=True)
class ToolCallCancelled:
    """The model withdrew tool calls it had requested (Gemini ``toolCallCancellation``)."""

    call_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SessionResumed:
    """The edge reconnected to the model without ending the phone call (e.g. ``goAway``)."""

    reason: str
    gap_ms: int = 0


# Calls whose audio the model vendor carries itself (OpenAI SIP and WebRTC calls, driven over a
# sideband connection, protocols.md B / sip-and-outbound.md 1.4): no ``AgentAudio`` reaches us;
# the vendor says when a response's audio starts and stops playing, and relays keypad digits.


@dataclass(frozen=True, slots=True)
class PlaybackStarted:
    """The vendor started playing ``response_id``'s audio to the caller."""

    response_id: str


@dataclass(frozen=True, slots=True)
class PlaybackEnded:
    """The vendor's playback of ``response_id`` ended: played out, or ``cleared`` (the caller
    talked over it, and the vendor dropped the rest)."""

    response_id: str
    cleared: bool = False


@dataclass(frozen=True, slots=True)
class CallerDigit:
    """The caller pressed a key; the vendor heard it on its own media leg."""

    digit: str


ModelEvent = (
    SessionReady
    | AgentAudio
    | SpeechStarted
    | SpeechStopped
    | ResponseStarted
    | ResponseDone
    | ResponseRefused
    | Transcript
    | TranscriptDelta
    | ToolCallRequested
    | ItemTruncated
    | ModelError
    | ModelClosed
    | ToolCallCancelled
    | SessionResumed
    | PlaybackStarted
    | PlaybackEnded
    | CallerDigit
)
