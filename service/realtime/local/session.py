"""Sans-I/O protocol state machine for one GA Realtime connection (protocols.md B).

``receive(message, now)`` takes one client message, ``tick(now)`` advances a streaming
response; both return the server events to send, in order. Nothing here touches sockets, the
event loop or the wall clock: ``now`` (seconds, any monotonic origin) is passed in, and the
input audio clock is derived from sample counts (B.4).

Memory bounds per connection: the conversation keeps at most ``max_items`` items and never
audio bytes (durations only — all truncate needs); ``received`` keeps the last ``log_size``
client events with append payloads replaced by their length; the VAD carries < 1 frame; a
streaming response holds one chunk.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from service.realtime.local.config import (
    PCM_RATE,
    audio_format,
    check_ranges,
    default_session,
    merge_session,
)
from service.realtime.local.conversation import Conversation, Item
from service.realtime.local.items import ItemHandlers
from service.realtime.local.protocol import (
    IdFactory,
    ProtocolError,
    error_event,
    parse_client_event,
)
from service.realtime.local.response import ActiveResponse
from service.realtime.local.script import ResponseRequest, Script
from service.realtime.local.vad import EnergyVad, SpeechStarted, VadEvent, VadParams

__all__ = ["CloseRequest", "RealtimeSession"]

log = structlog.get_logger(__name__)

MAX_APPEND_CHARS = 15 * 1024 * 1024  # B.7: 15 MiB of base64 per append
MIN_COMMIT_MS = 100  # B.4: input_audio_buffer_commit_empty below 100 ms
TICKS_PER_S = PCM_RATE  # input clock unit: 1/24000 s, exact for 24 kHz and 8 kHz samples
# semantic_vad has no energy equivalent; its eagerness maps to how long a pause ends a turn.
_EAGERNESS_SILENCE_MS = {"low": 1200, "medium": 600, "auto": 600, "high": 300}

Events = list[dict[str, Any]]


@dataclass(frozen=True)
class CloseRequest:
    """The script wants the connection ended: ``code`` None aborts TCP, else a close frame."""

    code: int | None
    reason: str = ""


class RealtimeSession(ItemHandlers):
    """One connection's protocol state. Invariants: at most one active response; every
    emitted event has a fresh ``event_id``; ``session.created`` is the first event."""

    def __init__(
        self,
        script: Script | None = None,
        *,
        model: str = "gpt-realtime",
        max_items: int = 512,
        log_size: int = 1000,
    ) -> None:
        self.script = script or Script()
        self.ids = IdFactory()
        self.id = self.ids.new("sess")
        self.config: dict[str, Any] = default_session(self.id, model)
        self.conversation = Conversation(self.ids.new("conv"), max_items)
        self.received: deque[dict[str, Any]] = deque(maxlen=log_size)
        self.response: ActiveResponse | None = None
        self.responses_started = 0
        self.close_request: CloseRequest | None = None
        self.audio_output_started = False  # the voice is locked from then on (B.1)
        self._input_ticks = 0  # all input audio since the session started
        self._buffer_ticks = 0  # uncommitted input audio
        self._odd_byte = b""  # audio/pcm appends may split a sample
        self._vad: EnergyVad | None = None
        self._speech_item_id: str | None = None
        self._speech_start_ms = 0
        self._idle_deadline_ms: float | None = None
        self._rebuild_vad()

    # -- public driving API ----------------------------------------------------------------
    @property
    def input_ms(self) -> float:
        """Input audio received since the session started (B.4 clock)."""
        return self._input_ticks * 1000.0 / TICKS_PER_S

    def open(self, now: float) -> Events:
        """The events a new connection starts with (B.4: first is ``session.created``)."""
        events = [self._event("session.created", session=copy.deepcopy(self.config))]
        if self.script.send_conversation_created:
            conversation = {"id": self.conversation.id, "object": "realtime.conversation"}
            events.append(self._event("conversation.created", conversation=conversation))
        return events

    def receive(self, message: str | bytes | dict[str, Any], now: float) -> Events:
        """Handle one client message; never raises (failures become ``error`` events)."""
        try:
            event = orjson.loads(message) if isinstance(message, str | bytes) else message
        except orjson.JSONDecodeError as exc:
            err = ProtocolError(f"Invalid JSON in client event: {exc}.", code="invalid_json")
            return [error_event(self.ids, err, None)]
        client_id = event.get("event_id") if isinstance(event, dict) else None
        client_id = client_id if isinstance(client_id, str) else None
        if isinstance(event, dict):
            self._observe(event)
        try:
            parse_client_event(event)  # B.3 shapes, via the SDK's client event types
            handler = getattr(self, "_on_" + event["type"].replace(".", "_"))
            return handler(event, now)
        except ProtocolError as err:
            return [error_event(self.ids, err, client_id)]
        except Exception:
            log.exception("realtime_local.handler_failed", event_type=event.get("type"))
            err = ProtocolError(
                "The server had an error while processing your request. Sorry about that!",
                type="server_error",
            )
            return [error_event(self.ids, err, client_id)]

    def tick(self, now: float) -> Events:
        """Events of the active response that are due by ``now``."""
        return self._advance(now)

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do (None: only a client event can)."""
        return self.response.next_deadline() if self.response else None

    # -- helpers ---------------------------------------------------------------------------
    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "event_id": self.ids.new("event"), **fields}

    def _observe(self, event: dict[str, Any]) -> None:
        if self.script.on_client_event is not None:
            try:
                self.script.on_client_event(self.id, event)
            except Exception:
                log.exception("realtime_local.observer_failed")
        logged = dict(event)
        if isinstance(logged.get("audio"), str):  # bound the log: no audio payloads
            logged["audio"] = f"<{len(logged['audio'])} base64 chars>"
        self.received.append(logged)

    @property
    def _turn_detection(self) -> dict[str, Any] | None:
        return self.config["audio"]["input"]["turn_detection"]

    def _vad_params(self) -> VadParams | None:
        td = self._turn_detection
        if td is None:
            return None
        if td["type"] == "semantic_vad":
            return VadParams(silence_duration_ms=_EAGERNESS_SILENCE_MS[td.get("eagerness", "auto")])
        defaults = VadParams()
        return VadParams(
            td.get("threshold", defaults.threshold),
            td.get("prefix_padding_ms", defaults.prefix_padding_ms),
            td.get("silence_duration_ms", defaults.silence_duration_ms),
        )

    def _rebuild_vad(self) -> None:
        params = self._vad_params()
        rate = audio_format(self.config["audio"]["input"]["format"]).rate
        self._vad = EnergyVad(rate, params, start_ms=self.input_ms) if params else None
        self._speech_item_id = None

    # -- session.update (B.1) --------------------------------------------------------------
    def _on_session_update(self, raw: dict[str, Any], now: float) -> Events:
        if not self.script.answer_session_update:
            return []  # scripted: a server that never answers (client timeout tests)
        update = raw["session"]
        if update["type"] != "realtime":
            raise ProtocolError(
                f"Invalid value: '{update['type']}'. This is a realtime session; "
                "its type cannot change.",
                code="invalid_value",
                param="session.type",
            )
        check_ranges(update)
        voice = ((update.get("audio") or {}).get("output") or {}).get("voice")
        if voice is not None and voice != self.config["audio"]["output"]["voice"]:
            if self.audio_output_started:  # B.1: voice is locked after the first audio
                raise ProtocolError(
                    "Cannot update a conversation's voice if assistant audio is present.",
                    code="cannot_update_voice",
                    param="session.audio.output.voice",
                )
        before = self.config["audio"]["input"]
        self.config = merge_session(self.config, update)
        after = self.config["audio"]["input"]
        if before["format"] != after["format"] or (before["turn_detection"] is None) != (
            after["turn_detection"] is None
        ):
            self._rebuild_vad()
            self._odd_byte = b""
        elif self._vad is not None:
            self._vad.configure(self._vad_params() or VadParams())
        # B.1: the full effective config; the client's event_id is not echoed here.
        return [self._event("session.updated", session=copy.deepcopy(self.config))]

    # -- input audio buffer (B.3, B.4) -----------------------------------------------------
    def _on_input_audio_buffer_append(self, raw: dict[str, Any], now: float) -> Events:
        audio = raw["audio"]
        if len(audio) > MAX_APPEND_CHARS:
            raise ProtocolError(
                "Invalid 'audio': string too long. Expected a string with maximum length "
                f"{MAX_APPEND_CHARS}, but got a string with length {len(audio)} instead.",
                code="string_above_max_length",
                param="audio",
            )
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError(
                "Invalid 'audio'. Expected base64-encoded audio data.",
                code="invalid_value",
                param="audio",
            ) from None
        fmt = audio_format(self.config["audio"]["input"]["format"])
        if fmt.bytes_per_sample == 2:
            data = self._odd_byte + data
            self._odd_byte, data = data[len(data) - len(data) % 2 :], data[: len(data) & ~1]
        pcm = fmt.to_pcm16(data)
        ticks = len(pcm) // 2 * (TICKS_PER_S // fmt.rate)
        self._input_ticks += ticks
        self._buffer_ticks += ticks
        events: Events = []
        for vad_event in self._vad.process(pcm) if self._vad else []:
            events += self._handle_vad(vad_event, now)
        return events + self._check_idle_timeout(now)

    def _handle_vad(self, event: VadEvent, now: float) -> Events:
        td = self._turn_detection or {}
        if isinstance(event, SpeechStarted):
            item_id = self._speech_item_id = self.ids.new("item")
            self._speech_start_ms = event.audio_start_ms
            events = [
                self._event(
                    "input_audio_buffer.speech_started",
                    audio_start_ms=event.audio_start_ms,
                    item_id=item_id,
                )
            ]
            interrupt = td.get("interrupt_response", True)
            if self.response and self.response.in_conversation and interrupt:
                events += self._cancel("turn_detected")  # B.6
            self._idle_deadline_ms = None
            return events
        item_id = self._speech_item_id or self.ids.new("item")
        self._speech_item_id = None
        events = [
            self._event(
                "input_audio_buffer.speech_stopped",
                audio_end_ms=event.audio_end_ms,
                item_id=item_id,
            )
        ]
        events += self._commit(item_id, event.audio_end_ms - self._speech_start_ms)
        self._buffer_ticks = max(0, self._input_ticks - event.audio_end_ms * TICKS_PER_S // 1000)
        if td.get("create_response", True) and self.response is None:
            events += self._start_response(now, {}, "turn_detection")
        return events

    def _commit(self, item_id: str, audio_ms: float) -> Events:
        """Buffer → user audio item: committed, then item added/done (B.4)."""
        previous = self.conversation.last_id()
        item = Item(
            {
                "id": item_id,
                "object": "realtime.item",
                "type": "message",
                "status": "completed",
                "role": "user",
                "content": [{"type": "input_audio", "transcript": None}],
            },
            audio_ms=max(0, int(audio_ms)),
        )
        self.conversation.add(item)
        self._buffer_ticks = 0
        return [
            self._event("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous),
            self._event("conversation.item.added", previous_item_id=previous, item=item.public()),
            self._event("conversation.item.done", previous_item_id=previous, item=item.public()),
        ]

    def _on_input_audio_buffer_commit(self, raw: dict[str, Any], now: float) -> Events:
        buffered = self._buffer_ticks * 1000.0 / TICKS_PER_S
        if buffered < MIN_COMMIT_MS:
            raise ProtocolError(
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {buffered:.2f}ms of audio.",
                code="input_audio_buffer_commit_empty",
            )
        item_id = self._speech_item_id or self.ids.new("item")
        if self._vad is not None and self._vad.in_speech:
            # The ongoing utterance continues as a new item (SDK speech_started docstring).
            self._speech_item_id = self.ids.new("item")
            self._speech_start_ms = int(self.input_ms)
        return self._commit(item_id, buffered)

    def _on_input_audio_buffer_clear(self, raw: dict[str, Any], now: float) -> Events:
        self._buffer_ticks = 0
        if self._vad is not None:
            self._vad.reset()
        self._speech_item_id = None
        return [self._event("input_audio_buffer.cleared")]

    def _check_idle_timeout(self, now: float) -> Events:
        """B.1 ``idle_timeout_ms``: after response.done + its audio length + the timeout
        (measured on the input clock), commit the silence and respond."""
        deadline = self._idle_deadline_ms
        busy = self.response is not None or (self._vad is not None and self._vad.in_speech)
        if deadline is None or busy or self.input_ms < deadline:
            return []
        self._idle_deadline_ms = None
        item_id = self.ids.new("item")
        buffered = self._buffer_ticks * 1000.0 / TICKS_PER_S
        start = int(self.input_ms - buffered)
        events = [
            self._event(
                "input_audio_buffer.timeout_triggered",
                audio_start_ms=start,
                audio_end_ms=int(self.input_ms),
                item_id=item_id,
            )
        ]
        events += self._commit(item_id, buffered)
        return events + self._start_response(now, {}, "idle_timeout")

    # -- responses (B.3, B.4, B.6) ---------------------------------------------------------
    def _on_response_create(self, raw: dict[str, Any], now: float) -> Events:
        if self.response is not None:
            raise ProtocolError(
                "Conversation already has an active response in progress: "
                f"{self.response.id}. Wait until the response is finished before creating "
                "a new one.",
                code="conversation_already_has_active_response",
            )
        overrides = raw.get("response") or {}
        check_ranges(overrides, prefix="response")
        return self._start_response(now, overrides, "client")

    def _on_response_cancel(self, raw: dict[str, Any], now: float) -> Events:
        wanted = raw.get("response_id")
        if self.response is None or (wanted and wanted != self.response.id):
            raise ProtocolError(
                "Cancellation failed: no active response found", code="response_cancel_not_active"
            )
        return self._cancel("client_cancelled")

    def _on_output_audio_buffer_clear(self, raw: dict[str, Any], now: float) -> Events:
        # B.3: output_audio_buffer.* exists only for WebRTC/SIP, never on a WebSocket.
        raise ProtocolError(
            "output_audio_buffer.clear is only supported for WebRTC and SIP connections.",
            code="invalid_value",
            param="type",
        )

    def _start_response(self, now: float, overrides: dict[str, Any], trigger: Any) -> Events:
        last_user = next(
            (
                item.public()
                for item in reversed(self.conversation.items())
                if item.data.get("role") == "user" or item.data["type"] == "function_call_output"
            ),
            None,
        )
        request = ResponseRequest(
            index=self.responses_started,
            trigger=trigger,
            instructions=overrides.get("instructions") or self.config["instructions"],
            last_user_item=last_user,
        )
        turn = self.script.turn_for(request)
        self.responses_started += 1
        self._idle_deadline_ms = None
        self.response = ActiveResponse(
            ids=self.ids,
            conversation=self.conversation,
            session=self.config,
            overrides=overrides,
            turn=turn,
            request=request,
            script=self.script,
            now=now,
        )
        return self._advance(now)

    def _advance(self, now: float) -> Events:
        response = self.response
        if response is None:
            return []
        events = response.advance(now)
        self._after_response_step(response)
        return events

    def _cancel(self, reason: str) -> Events:
        assert self.response is not None
        response = self.response
        events = response.cancel(reason)
        self._after_response_step(response)
        return events

    def _after_response_step(self, response: ActiveResponse) -> None:
        if response.audio_ms > 0:
            self.audio_output_started = True
        if response.drop is not None and self.close_request is None:
            self.close_request = CloseRequest(response.drop.close_code, "scripted drop")
        if response.finished:
            self.response = None
            td = self._turn_detection or {}
            idle = td.get("idle_timeout_ms")
            if idle:  # B.1: from response.done + the response's audio length
                self._idle_deadline_ms = self.input_ms + response.audio_ms + idle
