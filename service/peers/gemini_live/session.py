"""Sans-I/O Gemini Live peer for one connection (protocols.md D): the server's side.

``receive(message, now)`` takes one client message, ``tick(now)`` advances timers and the
streaming turn; both return the server messages to send, in order. ``now`` is passed in
(seconds, any monotonic origin); nothing here touches sockets or the clock.

Behaviour (D.2–D.5): ``setup`` first (else close 1007), ``setupComplete``; an energy VAD on
``realtimeInput.audio`` at the declared rate; the caller's turn end → ``inputTranscription`` and
a model turn (24 kHz ``inlineData`` chunks faster than real time, ``outputTranscription``,
``generationComplete``, ``turnComplete``); caller speech during a turn → ``interrupted`` then
``turnComplete``, during a tool wait → ``toolCallCancellation``; ``clientContent`` with
``turnComplete`` → a model turn (interrupting one in progress, D.3); ``toolResponse`` → the
next turn; ``sessionResumptionUpdate`` handles at idle moments (``resumable: false`` while
generating or waiting for tools, D.4); ``goAway`` and the close after it.

Memory per connection: the last ``log_size`` client messages (audio replaced by its length),
< 1 VAD frame, one streaming turn's plan (conversations: see state.py).
"""

from __future__ import annotations

import base64
import math
import re
import secrets
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from service.audio.vad import EnergyVad, VadParams, VoiceStarted
from service.peers.gemini_live.conformance import ConformanceError, check_client_message
from service.peers.gemini_live.script import GeminiScript, GeminiTurn
from service.peers.gemini_live.state import Conversation, HandleBook

__all__ = ["CloseRequest", "GeminiPeerSession", "duration_string"]

log = structlog.get_logger(__name__)

OUTPUT_RATE = 24_000  # D.4
MAX_ERRORS = 64
_RATE = re.compile(r"rate=(\d+)")
Message = dict[str, Any]


@dataclass(frozen=True)
class CloseRequest:
    """``code`` None aborts the TCP connection (a network drop); else a close frame."""

    code: int | None
    reason: str = ""


@dataclass
class _Turn:
    spec: GeminiTurn
    next_at: float
    state: str = "pending"  # pending → audio → (tool) → gone
    chunks: Iterator[bytes] | None = None
    words: list[str] = field(default_factory=list)
    words_sent: int = 0
    sent_ms: float = 0.0
    call_ids: tuple[str, ...] = ()
    cancel_at: float | None = None


def _rechunk(pieces: Iterator[bytes], size: int) -> Iterator[bytes]:
    buffer = b""
    for piece in pieces:
        buffer += piece
        while len(buffer) >= size:
            yield buffer[:size]
            buffer = buffer[size:]
    if buffer:
        yield buffer


def duration_string(seconds: float) -> str:
    """A proto3 JSON ``Duration`` (0, 3 fractional digits), e.g. ``"1s"``, ``"0.500s"``."""
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms // 1000}.{ms % 1000:03d}s"


def _content(**fields: Any) -> Message:
    return {"serverContent": fields}


class GeminiPeerSession:
    """One client connection to the local peer."""

    def __init__(
        self,
        script: GeminiScript,
        book: HandleBook,
        *,
        index: int = 0,
        strict: bool = True,
        log_size: int = 4096,
    ) -> None:
        self.script = script
        self.book = book
        self.index = index
        self.strict = strict
        self.id = f"gemsess_{secrets.token_hex(6)}"
        self.received: deque[Message] = deque(maxlen=log_size)
        self.errors: list[str] = []  # client mistakes that do not close the connection
        self.close_request: CloseRequest | None = None
        self.setup: Message | None = None
        self.ready = False
        self.resumed = False
        self.conversation: Conversation | None = None
        self.audio_received_ms = 0.0
        self.handles_sent: deque[str] = deque(maxlen=64)  # resumable handles, newest last
        self._resumption = False
        self._setup_at: float | None = None
        self._go_away_at: float | None = None
        self._abort_at: float | None = None
        self._vad: EnergyVad | None = None
        self._vad_params = VadParams()
        self._vad_disabled = False
        self._interrupts = True
        self._transcribe_in = self._transcribe_out = False
        self._turn: _Turn | None = None
        self._outstanding: dict[str, str] = {}  # call id → name

    # --- input ------------------------------------------------------------------------------

    def receive(self, message: str | bytes, now: float) -> list[Message]:
        try:
            msg = orjson.loads(message)
        except orjson.JSONDecodeError:
            return self._close(1007, "invalid JSON")
        if not isinstance(msg, dict):
            return self._close(1007, "a message is a JSON object")
        self._record(msg)
        if self.script.on_client_message is not None:
            try:
                self.script.on_client_message(self.index, msg)
            except Exception:
                log.exception("gemini_local.hook_failed")
        if self.strict:
            try:
                check_client_message(msg)
            except ConformanceError as exc:
                # D.3: the real service closes with 1007 on a payload it will not take.
                return self._close(1007, str(exc))
        if "setup" in msg:
            if self.setup is not None:
                return self._close(1007, "setup may only be sent once")
            return self._on_setup(msg["setup"], now)
        if not self.ready:
            return self._close(1007, "setup and setupComplete come first (D.6)")
        out: list[Message] = []
        if isinstance(body := msg.get("realtimeInput"), dict):
            out += self._on_realtime(body, now)
        if isinstance(body := msg.get("clientContent"), dict):
            out += self._on_client_content(body, now)
        if isinstance(body := msg.get("toolResponse"), dict):
            out += self._on_tool_response(body, now)
        return out + self.tick(now)

    def _record(self, msg: Message) -> None:
        audio = (msg.get("realtimeInput") or {}).get("audio") if "realtimeInput" in msg else None
        if isinstance(audio, dict):
            size = len(base64.b64decode(audio.get("data", "")))
            msg = {"realtimeInput": {"audio": {"mimeType": audio.get("mimeType"), "bytes": size}}}
        self.received.append(msg)

    def _close(self, code: int | None, reason: str) -> list[Message]:
        self.close_request = CloseRequest(code, reason.encode()[:120].decode(errors="ignore"))
        return []

    def _on_setup(self, setup: Message, now: float) -> list[Message]:
        self.setup = setup
        resumption = setup.get("sessionResumption")
        self._resumption = isinstance(resumption, dict) and self.script.resumption_updates
        handle = resumption.get("handle") if isinstance(resumption, dict) else None
        if handle:
            if self.book.rejected < self.script.reject_resumptions:
                self.book.rejected += 1
                return self._close(1008, "session resumption refused")
            conversation = self.book.resume(handle)
            if conversation is None:
                return self._close(1008, "unknown session resumption handle")
            self.resumed = True
        else:
            conversation = Conversation(f"conv_{secrets.token_hex(6)}")
        self.conversation = conversation
        ric = setup.get("realtimeInputConfig") or {}
        aad = ric.get("automaticActivityDetection") or {}
        low = aad.get("startOfSpeechSensitivity") == "START_SENSITIVITY_LOW"
        self._vad_params = VadParams(
            threshold=0.6 if low else 0.5,
            prefix_padding_ms=int(aad.get("prefixPaddingMs", 20)),
            silence_duration_ms=int(aad.get("silenceDurationMs", 500)),
        )
        self._vad_disabled = bool(aad.get("disabled", False))
        self._interrupts = ric.get("activityHandling") != "NO_INTERRUPTION"
        self._transcribe_in = "inputAudioTranscription" in setup
        self._transcribe_out = "outputAudioTranscription" in setup
        if not self.script.answer_setup:
            return []
        delay = self.script.resume_setup_delay_ms if self.resumed else self.script.setup_delay_ms
        self._setup_at = now + delay / 1000
        return self.tick(now)

    def _on_realtime(self, body: Message, now: float) -> list[Message]:
        out: list[Message] = []
        audio = body.get("audio")
        if isinstance(audio, dict):
            match = _RATE.search(str(audio.get("mimeType", "")))
            rate = int(match.group(1)) if match else 16_000
            pcm = base64.b64decode(audio.get("data", ""))
            self.audio_received_ms += len(pcm) / (rate * 2 / 1000)
            if not self._vad_disabled:
                if self._vad is None or self._vad.rate != rate:
                    self._vad = EnergyVad(rate, self._vad_params)
                for event in self._vad.process(pcm):
                    if isinstance(event, VoiceStarted):
                        out += self._caller_started()
                    else:
                        out += self._caller_finished(now)
        if body.get("audioStreamEnd") and self._vad is not None and self._vad.in_speech:
            self._vad.reset()  # D.3: flushes the caller's turn
            out += self._caller_finished(now)
        if body.get("text"):
            assert self.conversation is not None
            out += self._caller_started()
            self.conversation.history.append(("user", str(body["text"])))
            out += self._begin_turn(now)
        return out

    def _on_client_content(self, body: Message, now: float) -> list[Message]:
        assert self.conversation is not None
        for turn in body.get("turns") or ():
            text = " ".join(str(p.get("text", "")) for p in turn.get("parts") or ())
            self.conversation.history.append((str(turn.get("role", "user")), text))
        if not body.get("turnComplete"):
            return []
        out = self._stop_turn(cancel_calls=True)  # D.3: clientContent interrupts generation
        return out + self._begin_turn(now)

    def _on_tool_response(self, body: Message, now: float) -> list[Message]:
        assert self.conversation is not None
        for response in body.get("functionResponses") or ():
            call_id = str(response.get("id", ""))
            if self._outstanding.pop(call_id, None) is None:
                if len(self.errors) < MAX_ERRORS:
                    self.errors.append(f"toolResponse for unknown or cancelled call {call_id}")
                continue
            result = orjson.dumps(response.get("response")).decode()
            self.conversation.history.append(("tool", f"{response.get('name')}: {result}"))
        turn = self._turn
        if turn is not None and turn.state == "tool":
            if not any(call_id in self._outstanding for call_id in turn.call_ids):
                # The model goes on by itself with the results (no turnComplete before, D.4).
                self._turn = None
                return self._begin_turn(now)
        return []

    # --- the caller's turns -------------------------------------------------------------------

    def _caller_started(self) -> list[Message]:
        return self._stop_turn(cancel_calls=True) if self._interrupts else []

    def _caller_finished(self, now: float) -> list[Message]:
        assert self.conversation is not None
        text = self.script.user_transcript(self.conversation.caller_turns)
        self.conversation.caller_turns += 1
        self.conversation.history.append(("user", text))
        out: list[Message] = []
        if self._transcribe_in:
            words = text.split()
            half = max(1, len(words) // 2)
            out.append(_content(inputTranscription={"text": " ".join(words[:half])}))
            rest = " " + " ".join(words[half:]) if words[half:] else ""
            out.append(_content(inputTranscription={"text": rest, "finished": True}))
        return out + self._begin_turn(now)

    def _stop_turn(self, *, cancel_calls: bool) -> list[Message]:
        """End the model's turn because the caller (or client content) took the floor."""
        turn, self._turn = self._turn, None
        if turn is None or turn.state == "pending":
            return []  # nothing was sent yet: nothing to interrupt
        out: list[Message] = []
        if turn.state == "audio":
            # D.4: an interrupted turn ends interrupted → turnComplete, no generationComplete.
            out += [_content(interrupted=True), _content(turnComplete=True)]
            if self.conversation is not None and turn.words_sent:
                spoken = " ".join(turn.words[: turn.words_sent])
                self.conversation.history.append(("model", spoken))
        elif turn.state == "tool" and cancel_calls:
            out += self._cancel_calls(turn)
        return out + self._resumable()

    def _cancel_calls(self, turn: _Turn) -> list[Message]:
        ids = [call_id for call_id in turn.call_ids if self._outstanding.pop(call_id, None)]
        # D.4: pending calls of an interrupted turn are withdrawn.
        return [{"toolCallCancellation": {"ids": ids}}] if ids else []

    # --- the model's turns --------------------------------------------------------------------

    def _begin_turn(self, now: float) -> list[Message]:
        if self._turn is not None:
            return []
        assert self.conversation is not None
        spec = self.script.turn_for(self.conversation.turns)
        self.conversation.turns += 1
        turn = _Turn(spec, now + self.script.response_delay_ms / 1000)
        if spec.speaks:
            size = OUTPUT_RATE * 2 * self.script.chunk_ms // 1000
            voice = self.script.voice.synthesize(spec.text, spec.audio_ms, OUTPUT_RATE)
            turn.chunks = _rechunk(voice, size)
            turn.words = spec.text.split()
        self._turn = turn
        return []

    def _resumable(self) -> list[Message]:
        if not self._resumption or self.conversation is None:
            return []
        handle = self.book.issue(self.conversation)
        self.handles_sent.append(handle)
        return [{"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}}]

    def _step_turn(self, turn: _Turn, now: float) -> list[Message]:
        out: list[Message] = []
        if turn.state == "pending":
            turn.state = "audio"
            if self._resumption:
                out.append({"sessionResumptionUpdate": {"newHandle": "", "resumable": False}})
        if turn.state == "audio":
            chunk = next(turn.chunks, None) if turn.chunks is not None else None
            if chunk is not None:
                return out + self._send_chunk(turn, chunk)
            assert self.conversation is not None
            if turn.words:
                self.conversation.history.append(("model", " ".join(turn.words)))
            call = turn.spec.tool_call
            if call is None:
                self._turn = None
                out += [_content(generationComplete=True), _content(turnComplete=True)]
                return out + self._resumable()
            call_id = call.id or f"fc_{secrets.token_hex(6)}"
            self._outstanding[call_id] = call.name
            turn.call_ids, turn.state = (call_id,), "tool"
            if call.cancel_after_ms is not None:
                turn.cancel_at = now + call.cancel_after_ms / 1000
            function_call = {"id": call_id, "name": call.name, "args": dict(call.args)}
            return [*out, {"toolCall": {"functionCalls": [function_call]}}]
        if turn.state == "tool" and turn.cancel_at is not None and now >= turn.cancel_at:
            self._turn = None
            return [*self._cancel_calls(turn), _content(turnComplete=True), *self._resumable()]
        return out

    def _send_chunk(self, turn: _Turn, chunk: bytes) -> list[Message]:
        turn.sent_ms += len(chunk) / (OUTPUT_RATE * 2 / 1000)
        blob = {
            "mimeType": f"audio/pcm;rate={OUTPUT_RATE}",
            "data": base64.b64encode(chunk).decode(),
        }
        out = [_content(modelTurn={"role": "model", "parts": [{"inlineData": blob}]})]
        if self._transcribe_out and turn.words:
            due = min(
                len(turn.words), math.ceil(len(turn.words) * turn.sent_ms / turn.spec.audio_ms)
            )
            if due > turn.words_sent:
                words = " ".join(turn.words[turn.words_sent : due])
                out.append(
                    _content(outputTranscription={"text": (" " if turn.words_sent else "") + words})
                )
                turn.words_sent = due
        pace = self.script.pace
        turn.next_at += 0.0 if pace is None else self.script.chunk_ms / 1000 / pace
        drop = turn.spec.drop_after_ms
        if drop is not None and turn.sent_ms >= drop and self.index < self.script.drop_connections:
            self._close(None, "scripted network drop")
        return out

    # --- timers -------------------------------------------------------------------------------

    def go_away(self, now: float, time_left_s: float) -> list[Message]:
        """D.5: warn that the connection ends in ``time_left_s``; it is closed then."""
        self._abort_at = now + time_left_s
        return [{"goAway": {"timeLeft": duration_string(time_left_s)}}]

    def next_deadline(self) -> float | None:
        times = [self._setup_at, self._go_away_at, self._abort_at]
        if self._turn is not None:
            times.append(self._turn.next_at if self._turn.state != "tool" else self._turn.cancel_at)
        pending = [t for t in times if t is not None]
        return min(pending) if pending else None

    def tick(self, now: float) -> list[Message]:
        out: list[Message] = []
        while self.close_request is None:
            deadline = self.next_deadline()
            if deadline is None or deadline > now:
                break
            if self._setup_at is not None and self._setup_at <= now:
                self._setup_at = None
                self.ready = True
                out.append({"setupComplete": {"sessionId": self.id}})
                out += self._resumable()
                if self.script.go_away_after_s is not None:
                    if self.index < self.script.go_away_connections:
                        self._go_away_at = now + self.script.go_away_after_s
            elif self._go_away_at is not None and self._go_away_at <= now:
                self._go_away_at = None
                out += self.go_away(now, self.script.go_away_time_left_s)
            elif self._abort_at is not None and self._abort_at <= now:
                self._close(1011, "goAway deadline passed")
            elif self._turn is not None:
                out += self._step_turn(self._turn, now)
        return out
