"""Sans-I/O protocol state machine for one GA Realtime connection (protocols.md B).

``receive(message, now)`` takes one client message, ``tick(now)`` advances a streaming
response; both return the server events to send, in order. Nothing here touches sockets, the
event loop or the wall clock: ``now`` (seconds, any monotonic origin) is passed in, and the
input audio clock is derived from sample counts (B.4).

The session is composed of parts and decides what the protocol leaves to the server: client
events go through :data:`HANDLERS` (one entry per wire name); the input audio
(:class:`~.input_audio.InputAudio`) reports speech and turns, and the session cancels or
starts responses on them; items live in the :class:`~.conversation.Conversation`; at most one
:class:`~.response.ActiveResponse` streams at a time, its body scripted or spoken by the
engine (:class:`~.streaming.EngineSpeech`).

Memory bounds per connection: the conversation keeps at most ``max_items`` items and never
audio bytes (durations only — all truncate needs); ``received`` keeps the last ``log_size``
client events with audio payloads replaced by their length; the VAD carries < 1 frame; a
streaming response holds one chunk. A session given a speech ``engine`` adds its share of it
(:meth:`SpeechEngine.attach`): recent input audio (``max_turn_s``), ≤ 16 transcripts, the
brain's state.

Engine work (transcription, the brain, synthesis) runs on other threads; when it progresses
it calls the waker the server installed (:meth:`RealtimeSession.set_waker`), and the server
calls :meth:`tick`. ``now`` stays the only clock the session reads.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from service.modelserver.config import (
    audio_format,
    check_ranges,
    check_update,
    default_session,
    merge_session,
)
from service.modelserver.conversation import Conversation
from service.modelserver.engine.base import BrainRequest
from service.modelserver.input_audio import (
    IdleTimedOut,
    InputAudio,
    InputStep,
    SpeechBegan,
    TurnEnded,
)
from service.modelserver.protocol import (
    IdFactory,
    ProtocolError,
    error_event,
    parse_client_event,
)
from service.modelserver.response import ActiveResponse
from service.modelserver.script import Script
from service.modelserver.streaming import EngineSpeech
from service.modelserver.turns import ResponseRequest, Trigger

if TYPE_CHECKING:
    from service.modelserver.engine.engine import EngineSession, SpeechEngine

__all__ = ["HANDLERS", "CloseRequest", "RealtimeSession"]

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


class RealtimeSession:
    """One connection's protocol state. Invariants: at most one active response; every
    emitted event has a fresh ``event_id``; ``session.created`` is the first event.

    ``script`` says what scripted responses contain; with ``engine`` (shared by the server's
    sessions) this session attaches to it and the engine's brain and voice answer instead.
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        engine: SpeechEngine | None = None,
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
        # This session's share of the engine: its brain, recent audio, transcription jobs.
        self.engine: EngineSession | None = engine.attach() if engine is not None else None
        self.input = InputAudio(
            ids=self.ids,
            conversation=self.conversation,
            script=self.script,
            engine=self.engine,
            config=self.config["audio"]["input"],
        )

    # -- public driving API ----------------------------------------------------------------
    def open(self, now: float) -> Events:
        """The events a new connection starts with (B.4: first is ``session.created``)."""
        events = [self.ids.event("session.created", session=copy.deepcopy(self.config))]
        if self.script.send_conversation_created:
            conversation = {"id": self.conversation.id, "object": "realtime.conversation"}
            events.append(self.ids.event("conversation.created", conversation=conversation))
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
            return HANDLERS[event["type"]](self, event, now)
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
        return self.input.engine_transcripts() + self._advance(now)

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
    def _observe(self, event: dict[str, Any]) -> None:
        if self.script.on_client_event is not None:
            try:
                self.script.on_client_event(self.id, event)
            except Exception:
                log.exception("realtime_local.observer_failed")
        self.received.append(_without_audio(event))

    # -- session.update (B.1) --------------------------------------------------------------
    def _session_update(self, raw: dict[str, Any], now: float) -> Events:
        if not self.script.answer_session_update:
            return []  # scripted: a server that never answers (client timeout tests)
        update = raw["session"]
        check_update(self.config, update, voice_locked=self.audio_output_started)
        self.config = merge_session(self.config, update)
        self.input.configure(self.config["audio"]["input"])
        # B.1: the full effective config; the client's event_id is not echoed here.
        return [self.ids.event("session.updated", session=copy.deepcopy(self.config))]

    # -- input_audio_buffer.* (B.3, B.4) ---------------------------------------------------
    def _input_append(self, raw: dict[str, Any], now: float) -> Events:
        events = self._act(self.input.append(raw["audio"]), now)
        return events + self._act(self.input.idle(responding=self.response is not None), now)

    def _act(self, steps: list[InputStep], now: float) -> Events:
        """The input audio's events, acting on each outcome where it happened."""
        events: Events = []
        for step in steps:
            match step:
                case SpeechBegan(interrupt_response=interrupt):
                    response = self.response
                    if interrupt and response is not None and response.in_conversation:
                        events += self._cancel("turn_detected")  # B.6 barge-in
                    # After the cancel, which arms the idle timeout: the caller is talking.
                    self.input.disarm_idle_timeout()
                case TurnEnded(create_response=create):
                    if create and self.response is None:
                        events += self._start_response(now, {}, "turn_detection")
                case IdleTimedOut():
                    events += self._start_response(now, {}, "idle_timeout")
                case _:
                    events.append(step)
        return events

    # -- conversation.item.* (B.3) ---------------------------------------------------------
    def _item_create(self, raw: dict[str, Any], now: float) -> Events:
        audio = self.config["audio"]
        item, previous = self.conversation.create(
            raw["item"],
            raw.get("previous_item_id"),
            new_id=lambda: self.ids.new("item"),
            input_format=audio_format(audio["input"]["format"]),
            output_format=audio_format(audio["output"]["format"]),
        )
        return [
            self.ids.event(
                "conversation.item.added", previous_item_id=previous, item=item.public()
            ),
            self.ids.event("conversation.item.done", previous_item_id=previous, item=item.public()),
        ]

    def _item_truncate(self, raw: dict[str, Any], now: float) -> Events:
        item_id, end_ms = raw["item_id"], raw["audio_end_ms"]
        self.conversation.truncate(item_id, raw["content_index"], end_ms)
        if self.response is not None:
            self.response.stop_item_audio(item_id, end_ms)
        truncated = self.ids.event(
            "conversation.item.truncated", item_id=item_id, content_index=0, audio_end_ms=end_ms
        )
        return [truncated, *self._advance(now)]

    def _item_delete(self, raw: dict[str, Any], now: float) -> Events:
        self.conversation.delete(raw["item_id"])
        return [self.ids.event("conversation.item.deleted", item_id=raw["item_id"])]

    def _item_retrieve(self, raw: dict[str, Any], now: float) -> Events:
        item = self.conversation.retrieve(raw["item_id"])
        return [self.ids.event("conversation.item.retrieved", item=item.public())]

    # -- responses (B.3, B.4, B.6) ---------------------------------------------------------
    def _response_create(self, raw: dict[str, Any], now: float) -> Events:
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

    def _response_cancel(self, raw: dict[str, Any], now: float) -> Events:
        wanted = raw.get("response_id")
        if self.response is None or (wanted and wanted != self.response.id):
            raise ProtocolError(
                "Cancellation failed: no active response found", code="response_cancel_not_active"
            )
        return self._cancel("client_cancelled")

    def _output_audio_buffer_clear(self, raw: dict[str, Any], now: float) -> Events:
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
            history=tuple(item.public() for item in self.conversation.items()),
        )
        turn, speech = None, None
        if self.engine is not None:  # the brain decides, off the event loop
            speech = EngineSpeech(
                self.engine, self.engine.plan(self._brain_request(request, overrides))
            )
        else:
            turn = self.script.turn_for(request)
            if trigger == "client" and turn.refuse is not None:  # scripted fault
                raise ProtocolError(
                    turn.refuse.message, code=turn.refuse.code, type=turn.refuse.type
                )
        self.responses_started += 1
        self.input.disarm_idle_timeout()
        self.response = ActiveResponse(
            ids=self.ids,
            conversation=self.conversation,
            session=self.config,
            overrides=overrides,
            turn=turn,
            script=self.script,
            now=now,
            speech=speech,
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
            self.input.arm_idle_timeout(response.audio_ms)


Handler = Callable[[RealtimeSession, dict[str, Any], float], Events]

# Every client event type (B.3), by wire name; parse_client_event has checked the shape.
HANDLERS: dict[str, Handler] = {
    "session.update": RealtimeSession._session_update,
    "input_audio_buffer.append": RealtimeSession._input_append,
    "input_audio_buffer.commit": lambda session, raw, now: session.input.commit(),
    "input_audio_buffer.clear": lambda session, raw, now: session.input.clear(),
    "conversation.item.create": RealtimeSession._item_create,
    "conversation.item.truncate": RealtimeSession._item_truncate,
    "conversation.item.delete": RealtimeSession._item_delete,
    "conversation.item.retrieve": RealtimeSession._item_retrieve,
    "response.create": RealtimeSession._response_create,
    "response.cancel": RealtimeSession._response_cancel,
    "output_audio_buffer.clear": RealtimeSession._output_audio_buffer_clear,
}
