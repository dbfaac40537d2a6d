"""Sans-I/O OpenAI Realtime GA protocol (protocols.md B; Azure's GA endpoint is the same, E).

``OpenAIRealtimeProtocol`` builds the client events we send and turns server events into
neutral ``ModelEvent``s. It holds what the protocol needs to know between events: whether a
response is active (only one may be, B.3) and the audio format negotiated. No sockets here.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from collections import deque
from collections.abc import Callable
from typing import Any

from service.realtime.config import SessionConfig
from service.realtime.events import (
    PCM16_24K,
    PURPOSES,
    ULAW_8K,
    AgentAudio,
    CallerDigit,
    ItemTruncated,
    ModelAudioFormat,
    ModelError,
    ModelEvent,
    PlaybackEnded,
    PlaybackStarted,
    Purpose,
    ReplayItem,
    ResponseDone,
    ResponseRefused,
    ResponseStarted,
    SessionReady,
    SpeechStarted,
    SpeechStopped,
    ToolCallRequested,
    Transcript,
    TranscriptDelta,
)
from service.realtime.wire import (
    MAX_CODE_CHARS,
    MAX_MESSAGE_BYTES,
    MAX_MESSAGE_CHARS,
    MAX_TEXT_CHARS,
    Fields,
    json_object,
    short,
)

__all__ = ["MALFORMED", "RACE_LOST", "OpenAIRealtimeProtocol", "realtime_url"]

# B.3: the refusal of a response.create while another response holds the conversation.
RACE_LOST = "conversation_already_has_active_response"
# The code of the ModelError reported for an event that is not JSON, or has fields of the
# wrong type (those read as absent; the event is still handled).
MALFORMED = "malformed_event"
# Error codes become metric labels: only short identifier-like codes are passed on.
_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
# A 1 MiB delta is ~16 s of 24 kHz PCM16; no server sends one (they come in ~100 ms pieces),
# and the connection refuses bigger messages anyway (wire.MAX_MESSAGE_BYTES).
MAX_DELTA_CHARS = MAX_MESSAGE_BYTES
MAX_ARGUMENTS_CHARS = 64 * 1024

# Server events we read nothing from; listed so that anything else is noticed and counted.
_IGNORED = frozenset(
    {
        "session.created",
        "conversation.created",
        "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "input_audio_buffer.timeout_triggered",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.created",
        "conversation.item.deleted",
        "conversation.item.retrieved",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.segment",
        "conversation.item.input_audio_transcription.failed",
        "response.output_item.added",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_audio.done",
        "response.output_text.delta",
        "response.output_text.done",
        "response.function_call_arguments.delta",
        "rate_limits.updated",
    }
)


def realtime_url(base: str, model: str) -> str:
    """B.0: the model is chosen by the ``model`` query parameter of the WebSocket URL."""
    separator = "&" if "?" in base else "?"
    return base if "model=" in base else f"{base}{separator}model={model}"


class OpenAIRealtimeProtocol:
    """One per model connection. Memory: a few ids and counters.

    ``carries_audio=False``: a sideband connection to a call whose audio the vendor carries
    itself (SIP or WebRTC, sip-and-outbound.md 1.4): the session names no audio formats (the
    SIP leg negotiated them; overriding them distorts G.711 calls) and no audio is sent.
    """

    def __init__(self, config: SessionConfig, *, carries_audio: bool = True) -> None:
        self.config = config
        self.carries_audio = carries_audio
        self.audio_format: ModelAudioFormat = (
            ULAW_8K if config.audio_mode == "passthrough" else PCM16_24K
        )
        self.session_id: str | None = None
        self.ready = False
        self.active_response_id: str | None = None
        self.unknown_events = 0
        self.malformed_events = 0  # not JSON, not an object, or fields of the wrong type
        self._audio_step = round(self.audio_format.bytes_per_ms * 1000)  # 1 s of audio
        self._handlers: dict[str, Callable[[Fields, float], list[ModelEvent]]] = {
            "response.output_audio.delta": self._audio_delta,
            "input_audio_buffer.speech_started": self._speech_started,
            "input_audio_buffer.speech_stopped": self._speech_stopped,
            "response.created": self._response_created,
            "response.done": self._response_done,
            "response.output_audio_transcript.done": self._agent_transcript,
            "response.output_audio_transcript.delta": self._agent_transcript_delta,
            "conversation.item.input_audio_transcription.completed": self._caller_transcript,
            "response.function_call_arguments.done": self._function_call,
            "conversation.item.truncated": self._truncated,
            "session.updated": self._session_updated,
            "error": self._error,
            # sip-and-outbound.md 1.4: SIP/WebRTC only; the vendor plays the audio itself.
            "output_audio_buffer.started": self._playback_started,
            "output_audio_buffer.stopped": self._playback_stopped,
            "output_audio_buffer.cleared": self._playback_cleared,
            "input_audio_buffer.dtmf_event_received": self._dtmf,
        }
        self._ids = itertools.count(1)
        # event_ids of our latest response.create events, to tell which errors answer them.
        self._response_requests: deque[str] = deque(maxlen=8)

    # --- client events (B.1, B.3) -------------------------------------------------------

    def _event_id(self) -> str:
        return f"evt_{next(self._ids)}"

    def _wire_format(self) -> dict[str, Any]:
        # B.1: audio/pcm is 24 kHz only; audio/pcmu is Twilio's own μ-law, no DSP needed.
        if self.audio_format == ULAW_8K:
            return {"type": "audio/pcmu"}
        return {"type": "audio/pcm", "rate": 24_000}

    def session_update(self) -> dict[str, Any]:
        return {"type": "session.update", "event_id": self._event_id(), "session": self.session()}

    def session(self) -> dict[str, Any]:
        """B.1 the session object: sent in ``session.update``, and as the body of a SIP
        call's ``accept`` (the same ``RealtimeSessionCreateRequest`` shape, 1.3)."""
        config = self.config
        vad = config.vad
        turn_detection: dict[str, Any] = {
            "type": "server_vad",
            "threshold": vad.threshold,
            "prefix_padding_ms": vad.prefix_padding_ms,
            "silence_duration_ms": vad.silence_duration_ms,
            "create_response": True,
            # The worker still truncates what was not heard; the server cancels the response.
            "interrupt_response": True,
        }
        if vad.idle_timeout_ms is not None:
            turn_detection["idle_timeout_ms"] = vad.idle_timeout_ms
        audio_input: dict[str, Any] = {"turn_detection": turn_detection}
        audio_output: dict[str, Any] = {"voice": config.voice}
        if self.carries_audio:
            audio_input["format"] = audio_output["format"] = self._wire_format()
        if config.transcription_model:
            audio_input["transcription"] = {"model": config.transcription_model}
        session: dict[str, Any] = {
            "type": "realtime",  # B.1: required; without it the whole update is rejected
            "output_modalities": ["audio"],
            "instructions": config.instructions,
            "audio": {"input": audio_input, "output": audio_output},
        }
        if config.tools:
            session["tools"] = list(config.tools)
            session["tool_choice"] = "auto"
        return session

    def append_audio(self, audio: bytes) -> dict[str, Any]:
        return {
            "type": "input_audio_buffer.append",
            "audio": base64.b64encode(audio).decode("ascii"),
        }

    def create_response(
        self,
        instructions: str | None = None,
        *,
        purpose: Purpose | None = None,
        out_of_band: bool = False,
    ) -> dict[str, Any]:
        """B.3 ``response.create``. ``purpose`` travels in ``metadata`` so the matching
        ``response.created`` can be told apart from one the server's VAD started; an
        out-of-band response (``conversation: "none"``) is spoken but not remembered, and is
        marked in ``metadata`` too so that its ``response.created`` is known not to hold the
        conversation's one response slot."""
        event_id = self._event_id()
        event: dict[str, Any] = {"type": "response.create", "event_id": event_id}
        response: dict[str, Any] = {}
        metadata: dict[str, str] = {}
        if instructions:
            response["instructions"] = instructions
        if purpose:
            metadata["purpose"] = purpose
        if out_of_band:
            response["conversation"] = "none"
            metadata["conversation"] = "none"
        if metadata:
            response["metadata"] = metadata
        if response:
            event["response"] = response
        self._response_requests.append(event_id)
        return event

    def user_text(self, text: str) -> dict[str, Any]:
        """A user message in text (e.g. DTMF digits), B.3 conversation item shapes."""
        return {
            "type": "conversation.item.create",
            "event_id": self._event_id(),
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            },
        }

    def replay_item(self, item: ReplayItem) -> dict[str, Any]:
        """A line of an earlier session's conversation, as a ``conversation.item.create``
        (B.3 item shapes): the caller's words as ``input_text``, the agent's as an assistant
        message's ``output_text``, a tool call and its output as the function call items."""
        created: dict[str, Any]
        match item.kind:
            case "caller":
                created = {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": item.text}],
                }
            case "agent":
                created = {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": item.text}],
                }
            case "tool_call":
                created = {
                    "type": "function_call",
                    "call_id": item.call_id,
                    "name": item.name,
                    "arguments": item.text,
                }
            case "tool_output":
                created = {
                    "type": "function_call_output",
                    "call_id": item.call_id,
                    "output": item.text,
                }
        return {"type": "conversation.item.create", "event_id": self._event_id(), "item": created}

    def truncate(self, item_id: str, audio_end_ms: int) -> dict[str, Any]:
        # B.3: content_index 0, audio_end_ms in the item's own timeline (F.6).
        return {
            "type": "conversation.item.truncate",
            "event_id": self._event_id(),
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": audio_end_ms,
        }

    def cancel_response(self) -> dict[str, Any]:
        return {"type": "response.cancel", "event_id": self._event_id()}

    def function_output(self, call_id: str, output: str) -> dict[str, Any]:
        return {
            "type": "conversation.item.create",
            "event_id": self._event_id(),
            "item": {"type": "function_call_output", "call_id": call_id, "output": output},
        }

    # --- server events (B.4) -------------------------------------------------------------

    def receive(self, frame: str | bytes, now: float = 0.0) -> list[ModelEvent]:
        """Parse one server frame; ``now`` (the caller's clock) stamps audio and speech.

        Total: any JSON value in any field gives events, never an exception. Fields of the
        wrong type read as absent (``wire.Fields``) and the event adds one counted
        ``ModelError(MALFORMED)`` naming them; the call carries on.
        """
        message = json_object(frame, MALFORMED)
        if isinstance(message, ModelError):
            self.malformed_events += 1
            return [message]
        event = Fields(message)
        kind = message.get("type")
        if not isinstance(kind, str):
            self.malformed_events += 1
            return [ModelError(MALFORMED, f"type is {short(kind)}, not a string")]
        handler = self._handlers.get(kind)
        if handler is None:
            if kind not in _IGNORED:
                self.unknown_events += 1
            return []
        events = handler(event, now)
        if event.problems:
            self.malformed_events += 1
            events.append(ModelError(MALFORMED, f"{kind[:60]}: {'; '.join(event.problems)}"))
        return events

    def _speech_started(self, event: Fields, now: float) -> list[ModelEvent]:
        # The barge-in trigger: acted on even when its position fields are garbage.
        return [SpeechStarted(event.text("item_id"), event.integer("audio_start_ms"), now)]

    def _speech_stopped(self, event: Fields, now: float) -> list[ModelEvent]:
        return [SpeechStopped(event.text("item_id"), event.integer("audio_end_ms"))]

    def _response_created(self, event: Fields, now: float) -> list[ModelEvent]:
        response = event.object("response")
        response_id = response.text("id")
        metadata = response.object("metadata")
        # An out-of-band response does not hold the conversation's single response slot.
        if metadata.text("conversation") != "none":
            self.active_response_id = response_id
        purpose = metadata.text("purpose")
        return [ResponseStarted(response_id, purpose if purpose in PURPOSES else "")]  # type: ignore[arg-type]

    def _response_done(self, event: Fields, now: float) -> list[ModelEvent]:
        response = event.object("response")
        response_id = response.text("id")
        if self.active_response_id == response_id:
            self.active_response_id = None
        reason = response.object("status_details").text("reason", limit=MAX_CODE_CHARS)
        return [ResponseDone(response_id, response.text("status", limit=MAX_CODE_CHARS), reason)]

    def _agent_transcript(self, event: Fields, now: float) -> list[ModelEvent]:
        text = event.text("transcript", limit=MAX_TEXT_CHARS)
        return [Transcript("agent", event.text("item_id"), text)]

    def _agent_transcript_delta(self, event: Fields, now: float) -> list[ModelEvent]:
        delta = event.text("delta", limit=MAX_TEXT_CHARS)
        return [TranscriptDelta(event.text("item_id"), delta)] if delta else []

    def _caller_transcript(self, event: Fields, now: float) -> list[ModelEvent]:
        text = event.text("transcript", limit=MAX_TEXT_CHARS)
        return [Transcript("caller", event.text("item_id"), text)]

    def _function_call(self, event: Fields, now: float) -> list[ModelEvent]:
        # Arguments are kept whole: the tool layer validates them (and a cut JSON is invalid).
        return [
            ToolCallRequested(
                event.text("call_id"),
                event.text("name"),
                event.text("arguments", limit=MAX_ARGUMENTS_CHARS),
            )
        ]

    def _truncated(self, event: Fields, now: float) -> list[ModelEvent]:
        return [ItemTruncated(event.text("item_id"), event.integer("audio_end_ms"))]

    def _session_updated(self, event: Fields, now: float) -> list[ModelEvent]:
        self.session_id = event.object("session").text("id")
        first = not self.ready
        self.ready = True
        return [SessionReady(self.session_id)] if first else []

    def _error(self, event: Fields, now: float) -> list[ModelEvent]:
        error = event.object("error")
        code, kind = (
            error.text("code", limit=MAX_CODE_CHARS),
            error.text("type", limit=MAX_CODE_CHARS),
        )
        code = code or kind
        reported = ModelError(
            code if _CODE.fullmatch(code) else "error",
            error.text("message", limit=MAX_MESSAGE_CHARS),
            error.text("event_id"),
        )
        # B.4: ``error.event_id`` names the client event that failed; the race error
        # can only come from a response.create, so it needs no id to be placed.
        if reported.event_id in self._response_requests or reported.code == RACE_LOST:
            return [reported, ResponseRefused(reported.code, reported.code == RACE_LOST)]
        return [reported]

    def _playback_started(self, event: Fields, now: float) -> list[ModelEvent]:
        return [PlaybackStarted(event.text("response_id"))]

    def _playback_stopped(self, event: Fields, now: float) -> list[ModelEvent]:
        return [PlaybackEnded(event.text("response_id"), cleared=False)]

    def _playback_cleared(self, event: Fields, now: float) -> list[ModelEvent]:
        return [PlaybackEnded(event.text("response_id"), cleared=True)]

    def _dtmf(self, event: Fields, now: float) -> list[ModelEvent]:
        digit = event.text("event", limit=MAX_CODE_CHARS)  # one key: 0-9, *, #, A-D
        return [CallerDigit(digit)] if digit else []

    def _audio_delta(self, event: Fields, now: float) -> list[ModelEvent]:
        delta = event.text("delta", limit=MAX_DELTA_CHARS + 1)
        if len(delta) > MAX_DELTA_CHARS:
            return [ModelError("audio_delta_too_large", f"over {MAX_DELTA_CHARS} characters")]
        try:
            audio = base64.b64decode(delta, validate=True)
        except (binascii.Error, ValueError):
            return [ModelError("bad_audio_delta", "delta is not base64")]
        response_id, item_id = event.text("response_id"), event.text("item_id")
        # A long delta is passed on in pieces of at most a second of audio, so the call's
        # playback work (and the event loop) goes in bounded steps.
        step = self._audio_step
        return [
            AgentAudio(response_id, item_id, audio[i : i + step], now)
            for i in range(0, max(len(audio), 1), step)
        ]
