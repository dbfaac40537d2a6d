"""Sans-I/O protocol state machine for one GA Realtime connection (protocols.md B).

``receive(message, now)`` takes one client message, ``tick(now)`` advances a streaming
response; both return the server events to send, in order. Nothing here touches sockets, the
event loop or the wall clock: ``now`` (seconds, any monotonic origin) is passed in, and the
input audio clock is derived from sample counts (B.4).

Memory bounds per connection: the conversation keeps at most ``max_items`` items and never
audio bytes (durations only — all truncate needs); ``received`` keeps the last ``log_size``
client events with audio payloads replaced by their length; the VAD carries < 1 frame; a
streaming response holds one chunk. A speech-engine session (``Script.session_engine``) adds
its engine share: recent input audio (``max_turn_s``), ≤ 16 transcripts, the brain's state.

Engine work (transcription, the brain, synthesis) runs on other threads; when it progresses
it calls the waker the server installed (:meth:`RealtimeSession.set_waker`), and the server
calls :meth:`tick`. ``now`` stays the only clock the session reads.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from service.audio.vad import VadParams
from service.modelserver.config import check_ranges, default_session, merge_session
from service.modelserver.conversation import Conversation
from service.modelserver.engine.base import BrainRequest
from service.modelserver.input_audio import InputAudioHandlers
from service.modelserver.items import ItemHandlers
from service.modelserver.protocol import (
    IdFactory,
    ProtocolError,
    error_event,
    parse_client_event,
)
from service.modelserver.response import ActiveResponse
from service.modelserver.script import ResponseRequest, Script, Trigger

__all__ = ["CloseRequest", "RealtimeSession"]

log = structlog.get_logger(__name__)

Events = list[dict[str, Any]]


def _without_audio(value: Any) -> Any:
    """A copy for the event log with every base64 ``audio`` payload replaced by its length,
    so the log's size is bounded by its entry count, not by how much audio was sent."""
    if isinstance(value, dict):
        return {
            k: f"<{len(v)} base64 chars>"
            if k == "audio" and isinstance(v, str)
            else _without_audio(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_without_audio(v) for v in value]
    return value


@dataclass(frozen=True)
class CloseRequest:
    """The script wants the connection ended: ``code`` None aborts TCP, else a close frame."""

    code: int | None
    reason: str = ""


class RealtimeSession(InputAudioHandlers, ItemHandlers):
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
        self.engine = self.script.session_engine()  # before the VAD: the engine picks it
        self._init_input_audio()

    # -- public driving API ----------------------------------------------------------------
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
        """Events that are due by ``now``: the active response's, and transcripts that an
        engine finished."""
        return self._engine_transcripts() + self._advance(now)

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do (None: only a client event or a
        wake-up can)."""
        return self.response.next_deadline() if self.response else None

    def set_waker(self, wake: Callable[[], None]) -> None:
        """``wake()`` is called (from any thread) when engine work has progressed, so the
        server should :meth:`tick`. Scripted sessions never call it."""
        if self.engine is not None:
            self.engine.wake = wake

    @property
    def waiting(self) -> bool:
        """True while the active response waits on engine work rather than on time."""
        return self.response is not None and self.response.waiting

    def close(self) -> None:
        """The connection ended: stop engine work (synthesis, pending jobs); no events."""
        if self.response is not None:
            self.response.abandon()
            self.response = None
        if self.engine is not None:
            self.engine.close()

    # -- helpers ---------------------------------------------------------------------------
    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "event_id": self.ids.new("event"), **fields}

    def _observe(self, event: dict[str, Any]) -> None:
        if self.script.on_client_event is not None:
            try:
                self.script.on_client_event(self.id, event)
            except Exception:
                log.exception("realtime_local.observer_failed")
        self.received.append(_without_audio(event))

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

    def _start_response(self, now: float, overrides: dict[str, Any], trigger: Trigger) -> Events:
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
        plan = None
        if self.engine is not None:  # the brain decides, off the event loop
            turn = None
            plan = self.engine.plan(self._brain_request(request, overrides))
        else:
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
            plan=plan,
            engine=self.engine,
        )
        return self._advance(now)

    def _brain_request(self, request: ResponseRequest, overrides: dict[str, Any]) -> BrainRequest:
        items = self.conversation.items()
        return BrainRequest(
            request=request,
            items=tuple(item.public() for item in items),
            response_ids=tuple(item.response_id for item in items),
            tools=tuple(copy.deepcopy(overrides.get("tools") or self.config["tools"])),
            tool_choice=overrides.get("tool_choice") or self.config["tool_choice"],
            in_conversation=overrides.get("conversation", "auto") != "none",
            max_output_tokens=overrides.get("max_output_tokens", self.config["max_output_tokens"]),
        )

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
