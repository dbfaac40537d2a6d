"""Sans-I/O OpenAI Realtime GA protocol (protocols.md B; Azure's GA endpoint is the same, E).

``OpenAIRealtimeProtocol`` builds the client events we send and turns server events into
neutral ``ModelEvent``s. It holds what the protocol needs to know between events: whether a
response is active (only one may be, B.3) and the audio format negotiated. No sockets here.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from collections import deque
from typing import Any

from service.realtime.config import SessionConfig
from service.realtime.events import (
    PCM16_24K,
    PURPOSES,
    ULAW_8K,
    AgentAudio,
    ItemTruncated,
    ModelAudioFormat,
    ModelError,
    ModelEvent,
    Purpose,
    ResponseDone,
    ResponseRefused,
    ResponseStarted,
    SessionReady,
    SpeechStarted,
    SpeechStopped,
    ToolCallRequested,
    Transcript,
)
from service.realtime.wire import json_object

__all__ = ["RACE_LOST", "OpenAIRealtimeProtocol", "realtime_url"]

# B.3: the refusal of a response.create while another response holds the conversation.
RACE_LOST = "conversation_already_has_active_response"

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
        "response.output_audio_transcript.delta",
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
    """One per model connection. Memory: a few ids and counters."""

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.audio_format: ModelAudioFormat = (
            ULAW_8K if config.audio_mode == "passthrough" else PCM16_24K
        )
        self.session_id: str | None = None
        self.ready = False
        self.active_response_id: str | None = None
        self.unknown_events = 0
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
        audio_input: dict[str, Any] = {
            "format": self._wire_format(),
            "turn_detection": turn_detection,
        }
        if config.transcription_model:
            audio_input["transcription"] = {"model": config.transcription_model}
        session: dict[str, Any] = {
            "type": "realtime",  # B.1: required; without it the whole update is rejected
            "output_modalities": ["audio"],
            "instructions": config.instructions,
            "audio": {
                "input": audio_input,
                "output": {"format": self._wire_format(), "voice": config.voice},
            },
        }
        if config.tools:
            session["tools"] = list(config.tools)
            session["tool_choice"] = "auto"
        return {"type": "session.update", "event_id": self._event_id(), "session": session}

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
        """Parse one server frame; ``now`` (the caller's clock) stamps audio and speech."""
        event = json_object(frame, "malformed_event")
        if isinstance(event, ModelError):
            return [event]
        kind = event.get("type")
        if kind == "response.output_audio.delta":
            return self._audio_delta(event, now)
        if kind == "input_audio_buffer.speech_started":
            return [
                SpeechStarted(
                    str(event.get("item_id", "")), int(event.get("audio_start_ms", 0)), now
                )
            ]
        if kind == "input_audio_buffer.speech_stopped":
            return [SpeechStopped(str(event.get("item_id", "")), int(event.get("audio_end_ms", 0)))]
        if kind == "response.created":
            response = event.get("response") or {}
            response_id = str(response.get("id", ""))
            metadata = response.get("metadata") or {}
            # An out-of-band response does not hold the conversation's single response slot.
            if metadata.get("conversation") != "none":
                self.active_response_id = response_id
            purpose = metadata.get("purpose")
            return [ResponseStarted(response_id, purpose if purpose in PURPOSES else "")]
        if kind == "response.done":
            return self._response_done(event)
        if kind == "response.output_audio_transcript.done":
            return [
                Transcript("agent", str(event.get("item_id", "")), str(event.get("transcript", "")))
            ]
        if kind == "conversation.item.input_audio_transcription.completed":
            return [
                Transcript(
                    "caller", str(event.get("item_id", "")), str(event.get("transcript", ""))
                )
            ]
        if kind == "response.function_call_arguments.done":
            return [
                ToolCallRequested(
                    str(event.get("call_id", "")),
                    str(event.get("name", "")),
                    str(event.get("arguments", "")),
                )
            ]
        if kind == "conversation.item.truncated":
            return [ItemTruncated(str(event.get("item_id", "")), int(event.get("audio_end_ms", 0)))]
        if kind == "session.updated":
            self.session_id = str(event.get("session", {}).get("id", ""))
            first = not self.ready
            self.ready = True
            return [SessionReady(self.session_id)] if first else []
        if kind == "error":
            error = event.get("error") or {}
            reported = ModelError(
                str(error.get("code") or error.get("type") or "error"),
                str(error.get("message", "")),
                str(error.get("event_id") or ""),
            )
            # B.4: ``error.event_id`` names the client event that failed; the race error
            # can only come from a response.create, so it needs no id to be placed.
            if reported.event_id in self._response_requests or reported.code == RACE_LOST:
                return [reported, ResponseRefused(reported.code, reported.code == RACE_LOST)]
            return [reported]
        if kind not in _IGNORED:
            self.unknown_events += 1
        return []

    def _audio_delta(self, event: dict[str, Any], now: float) -> list[ModelEvent]:
        try:
            audio = base64.b64decode(event.get("delta", ""), validate=True)
        except (binascii.Error, ValueError):
            return [ModelError("bad_audio_delta", "delta is not base64")]
        return [
            AgentAudio(str(event.get("response_id", "")), str(event.get("item_id", "")), audio, now)
        ]

    def _response_done(self, event: dict[str, Any]) -> list[ModelEvent]:
        response = event.get("response") or {}
        response_id = str(response.get("id", ""))
        if self.active_response_id == response_id:
            self.active_response_id = None
        details = response.get("status_details") or {}
        return [
            ResponseDone(
                response_id, str(response.get("status", "")), str(details.get("reason") or "")
            )
        ]
