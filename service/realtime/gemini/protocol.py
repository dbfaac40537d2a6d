"""Sans-I/O Gemini Live protocol (BidiGenerateContent, protocols.md D).

``GeminiLiveProtocol`` builds the client messages we send and turns server messages into the
neutral ``ModelEvent``s the worker understands. No sockets here; the session layer
(gemini_session.py) moves frames and reconnects.

Gemini has no response objects, so this class makes them (decisions, with the D.x they rest on):

* A **turn** starts at the first audio of a model turn and gets a minted ``response_id`` (and
  the same-numbered ``item_id``); ``ResponseStarted`` carries ``pending_purpose``, which
  ``create_response`` set — Gemini continues on its own after a ``toolResponse`` (D.3), so the
  purpose tags whatever it generates next. ``turnComplete`` ends it (``ResponseDone``).
* ``interrupted`` is Gemini's barge-in signal (D.4, D.6): ``SpeechStarted`` at once, audio of
  that turn dropped from then on, and ``ResponseDone(cancelled, turn_detected)`` at the
  ``turnComplete`` that follows it. Speech is only reported this way: transcription is too late
  and unordered (D.4) to trigger a ``clear`` safely.
* ``toolCall`` **ends the turn** that asked for it: Gemini sends no ``turnComplete`` until the
  ``toolResponse`` arrives, and the worker answers tools only once no response is active (the
  OpenAI rule it follows), so waiting would deadlock. Audio that trails the call, and a
  content-less ``turnComplete`` some models send after it, still belong to that turn.
* ``sessionResumptionUpdate`` keeps the newest *resumable* handle (D.4, D.5); ``goAway`` records
  ``timeLeft``. Both are read by the session layer; they produce no event.

Input rate, decided by measuring (bench/gemini_backend.py): caller audio is sent as **8 kHz
PCM16 declared as ``audio/pcm;rate=8000``**, not resampled to 16 kHz. D.3 documents that any
rate is accepted and resampled server-side when declared; the phone band ends at 3.4 kHz, so
upsampling adds bytes, not information. Measured per 20 ms frame (μ-law decode + resample +
base64 + JSON): 1.5 µs at 8k vs 10.9 µs at 16k (7×), 500 vs 929 wire bytes (25 vs 46.5 KB/s
per call), and the 8k→16k filter's 3 ms group delay is avoided. 16 kHz stays selectable
(``input_rate``) in case the server's own resampling ever proves worse.

Memory per call: the ids and flags below, at most ``MAX_PENDING_CALLS`` call names and
as many cancelled ids, and each side's transcript text of the current turn (capped at
``MAX_TRANSCRIPT_CHARS``).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from collections import deque
from typing import Any

import orjson

from service.realtime.config import SessionConfig
from service.realtime.events import (
    PCM16_24K,
    AgentAudio,
    ModelAudioFormat,
    ModelError,
    ModelEvent,
    ResponseDone,
    ResponseStarted,
    SessionReady,
    SpeechStarted,
    ToolCallCancelled,
    ToolCallRequested,
    Transcript,
)
from service.realtime.gemini.setup import build_setup, gemini_voice
from service.realtime.wire import MAX_MESSAGE_BYTES, MAX_TEXT_CHARS, Fields, json_object

__all__ = [
    "INPUT_RATES",
    "MALFORMED",
    "GeminiLiveProtocol",
    "function_response_object",
    "parse_duration_ms",
]

INPUT_RATES = (8000, 16000)  # D.3: any rate is accepted if declared; 16 kHz is native
MAX_PENDING_CALLS = 64
MAX_TRANSCRIPT_CHARS = MAX_TEXT_CHARS
DEFAULT_GO_AWAY_MS = 5000  # when ``timeLeft`` is missing or unreadable
MAX_GO_AWAY_MS = 3_600_000  # D.5: a connection lasts ~10 min; anything longer is nonsense
# The code of the ModelError for a message that is not JSON or has fields of the wrong type.
MALFORMED = "malformed_message"
# A 1 MiB blob is ~16 s of 24 kHz PCM16; the connection refuses bigger messages anyway.
MAX_AUDIO_CHARS = MAX_MESSAGE_BYTES
AUDIO_STEP_BYTES = 48_000  # one second of 24 kHz PCM16
_KNOWN = frozenset(
    {
        "setupComplete",
        "serverContent",
        "toolCall",
        "toolCallCancellation",
        "goAway",
        "sessionResumptionUpdate",
        "usageMetadata",
    }
)
# ASCII digits with a length bound: ``\d`` and ``int()`` accept other scripts' digits.
_RATE = re.compile(r"rate=([0-9]*)")
_DURATION = re.compile(r"^\s*([0-9]{1,9}(?:\.[0-9]{0,9})?)s\s*$")


def parse_duration_ms(value: Any) -> int:
    """A protobuf ``Duration`` string (``"10s"``, ``"0.5s"``, D.4 ``goAway.timeLeft``) in ms."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        return DEFAULT_GO_AWAY_MS
    return min(round(float(match.group(1)) * 1000), MAX_GO_AWAY_MS)


def function_response_object(output: str) -> dict[str, Any]:
    """``FunctionResponse.response`` for a tool output string (D.3: a JSON *object*).

    The SDK documents the keys: ``output`` for the result, ``error`` for error details. Our
    tools already answer failures as ``{"error": …, "message": …}``; those go as they are."""
    try:
        value = orjson.loads(output)
    except orjson.JSONDecodeError:
        return {"output": output}
    if isinstance(value, dict) and "error" in value:
        return value
    return {"output": value}


class _Text:
    """One side's transcript of the current turn, from fragments (capped)."""

    __slots__ = ("item_id", "parts", "size")

    def __init__(self) -> None:
        self.item_id = ""
        self.parts: list[str] = []
        self.size = 0

    def add(self, text: str) -> None:
        if self.size < MAX_TRANSCRIPT_CHARS:
            self.parts.append(text[: MAX_TRANSCRIPT_CHARS - self.size])
            self.size += len(self.parts[-1])

    def take(self) -> str:
        text = "".join(self.parts).strip()
        self.parts, self.size = [], 0
        return text


class GeminiLiveProtocol:
    """One per call (it outlives reconnections, so ids and handles carry over)."""

    audio_format: ModelAudioFormat = PCM16_24K  # D.4: output is always 24 kHz PCM16

    def __init__(
        self,
        config: SessionConfig,
        *,
        model: str,
        input_rate: int = 8000,
        voice: str | None = None,
    ) -> None:
        if input_rate not in INPUT_RATES:
            raise ValueError(f"input_rate must be one of {INPUT_RATES}, not {input_rate}")
        self.config = config
        self.model = model
        self.voice = gemini_voice(config.voice, voice)
        self.input_format = ModelAudioFormat("pcm16", input_rate)
        self._mime = f"audio/pcm;rate={input_rate}"  # D.3: declare the rate we send
        self._in_bytes_per_ms = input_rate * 2 / 1000
        self.ready = False
        self.session_id = ""
        self.resume_handle: str | None = None
        self.go_away_ms: int | None = None
        self.active_response_id: str | None = None
        self.pending_purpose = ""
        self.pending_calls: dict[str, str] = {}  # call_id → function name, until answered
        self.cancelled_calls: deque[str] = deque(maxlen=MAX_PENDING_CALLS)
        self.audio_sent_ms = 0.0
        self.unknown_messages = 0
        self.malformed_messages = 0  # not JSON, not an object, or fields of the wrong type
        self._item_id = ""
        self._interrupted = False
        self._tool_turn: tuple[str, str] | None = None  # (response, item) awaiting answers
        self._caller = _Text()
        self._agent = _Text()
        self._turns = itertools.count(1)
        self._ids = itertools.count(1)

    @property
    def idle(self) -> bool:
        """No turn is being generated and no tool call awaits its answer (safe to reconnect:
        D.4 says handles are not resumable while generating or executing tools)."""
        return self.active_response_id is None and not self.pending_calls

    # --- client messages (D.2, D.3) ----------------------------------------------------------

    def setup(self) -> dict[str, Any]:
        """The first message of every connection; resumes ``resume_handle`` when we have one."""
        return build_setup(
            self.config, model=self.model, voice=self.voice, handle=self.resume_handle
        )

    def realtime_audio(self, pcm: bytes) -> dict[str, Any]:
        # D.3: ``audio`` (not the deprecated ``mediaChunks``), rate stated in the MIME type.
        self.audio_sent_ms += len(pcm) / self._in_bytes_per_ms
        return {
            "realtimeInput": {
                "audio": {"data": base64.b64encode(pcm).decode("ascii"), "mimeType": self._mime}
            }
        }

    def client_text(self, text: str, turn_complete: bool = True) -> dict[str, Any]:
        """D.3 ``clientContent``: a user turn; ``turnComplete`` makes the model answer it."""
        return {
            "clientContent": {
                "turns": [{"role": "user", "parts": [{"text": text}]}],
                "turnComplete": turn_complete,
            }
        }

    def tool_response(self, call_id: str, name: str, response: dict[str, Any]) -> dict[str, Any]:
        # D.3/D.6: the call's id echoed; the name too (some models treat a nameless answer
        # as a failed call).
        return {
            "toolResponse": {
                "functionResponses": [{"id": call_id, "name": name, "response": response}]
            }
        }

    def function_output(self, call_id: str, output: str) -> dict[str, Any] | None:
        """The ``toolResponse`` for a call we were asked, or ``None`` when the model withdrew
        it (``toolCallCancellation``), a reconnection orphaned it, or it was never asked."""
        name = self.pending_calls.pop(call_id, None)
        if name is None:
            return None
        if not self.pending_calls:
            self._tool_turn = None  # what Gemini says next is a new turn (the answer)
        return self.tool_response(call_id, name, function_response_object(output))

    # --- connection life cycle (D.5) ---------------------------------------------------------

    def connection_lost(self) -> list[ModelEvent]:
        """The connection ended. The open turn will never finish, and outstanding tool calls are
        orphaned: the newest resumable handle predates them (D.4 ``resumable`` is false while
        tools execute), so the resumed session never asked for them."""
        events: list[ModelEvent] = []
        if self.active_response_id is not None:
            events += self._end_turn("incomplete", "connection_lost")
        if self.pending_calls:
            ids = tuple(self.pending_calls)
            self.cancelled_calls.extend(ids)
            self.pending_calls.clear()
            events.append(ToolCallCancelled(ids))
        self._tool_turn = None
        self.ready = False
        self.go_away_ms = None
        return events

    # --- server messages (D.4) ---------------------------------------------------------------

    def receive(self, frame: str | bytes, now: float = 0.0) -> list[ModelEvent]:
        """Parse one server frame, text or binary (D.1: binary frames carry UTF-8 JSON).

        Total: any JSON value in any field gives events, never an exception. Fields of the
        wrong type read as absent (``wire.Fields``) and the message adds one counted
        ``ModelError(MALFORMED)`` naming them; the call carries on.
        """
        decoded = json_object(frame, MALFORMED)
        if isinstance(decoded, ModelError):
            self.malformed_messages += 1
            return [decoded]
        message = Fields(decoded)
        events: list[ModelEvent] = []
        if message.has("setupComplete"):
            setup = message.object("setupComplete")
            self.ready = True
            self.session_id = setup.text("sessionId") or self.session_id
            events.append(SessionReady(self.session_id))
        if message.has("serverContent"):
            events += self._server_content(message.object("serverContent"), now)
        if message.has("toolCall"):
            events += self._tool_call(message.object("toolCall"))
        if message.has("toolCallCancellation"):
            events += self._cancellation(message.object("toolCallCancellation"))
        if message.has("goAway"):
            self.go_away_ms = parse_duration_ms(message.object("goAway").text("timeLeft"))
        if message.has("sessionResumptionUpdate"):
            update = message.object("sessionResumptionUpdate")
            # D.4: an empty handle / resumable false while generating; keep the last good one.
            resumable, handle = update.flag("resumable"), update.text("newHandle")
            if resumable and handle:
                self.resume_handle = handle
        if not _KNOWN.intersection(decoded):
            self.unknown_messages += 1
        if message.problems:
            self.malformed_messages += 1
            events.append(ModelError(MALFORMED, "; ".join(message.problems)))
        return events

    def _server_content(self, content: Fields, now: float) -> list[ModelEvent]:
        events: list[ModelEvent] = []
        heard = content.object("inputTranscription")
        if text := heard.text("text", limit=MAX_TRANSCRIPT_CHARS):
            if not self._caller.item_id:
                self._caller.item_id = f"gem_user_{next(self._ids)}"
            self._caller.add(text)
        if heard.flag("finished"):
            events += self._caller_line()
        if content.has("modelTurn"):
            events += self._model_turn(content.object("modelTurn"), now)
        if said := content.object("outputTranscription").text("text", limit=MAX_TRANSCRIPT_CHARS):
            self._agent.add(said)
        if content.flag("interrupted"):
            events += self._interrupt(now)
        if content.flag("turnComplete"):
            events += self._turn_complete()
        return events

    def _model_turn(self, turn: Fields, now: float) -> list[ModelEvent]:
        events: list[ModelEvent] = []
        for part in turn.objects("parts"):
            if not part.has("inlineData"):
                continue  # text or thought parts: with AUDIO modality the audio is the answer
            blob = part.object("inlineData")
            mime = blob.text("mimeType")
            if not mime.startswith("audio/pcm"):
                continue
            # D.4: 24 kHz always; the exact MIME string is unverified, so parse the rate.
            rate = _RATE.search(mime)
            # Compared as text: no int() of a model-chosen digit string (length, other scripts).
            if rate is not None and rate.group(1) != str(self.audio_format.sample_rate):
                events.append(ModelError("unexpected_audio_rate", mime[:64]))
                continue
            data = blob.text("data", limit=MAX_AUDIO_CHARS + 1)
            if len(data) > MAX_AUDIO_CHARS:
                events.append(ModelError("audio_too_large", f"over {MAX_AUDIO_CHARS} characters"))
                continue
            try:
                audio = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                events.append(ModelError("bad_audio", "inlineData is not base64"))
                continue
            if self._interrupted:
                continue  # D.4: after ``interrupted`` nothing of the turn is to be played
            if self.active_response_id is None:
                if self._tool_turn is not None:
                    # Audio trailing a tool call: still the turn that asked for the tool
                    # (dropped once a barge-in cut that turn: its ids are blanked).
                    response_id, item_id = self._tool_turn
                    if response_id:
                        events += self._audio(response_id, item_id, audio, now)
                    continue
                events.append(self._start_turn())
            events += self._audio(self.active_response_id or "", self._item_id, audio, now)
        return events

    def _audio(self, response_id: str, item_id: str, audio: bytes, now: float) -> list[ModelEvent]:
        # Long blobs go on in pieces of at most a second, so playback work comes in bounded steps.
        step = AUDIO_STEP_BYTES
        return [
            AgentAudio(response_id, item_id, audio[i : i + step], now)
            for i in range(0, max(len(audio), 1), step)
        ]

    def _start_turn(self) -> ResponseStarted:
        n = next(self._turns)
        self.active_response_id, self._item_id = f"gem_resp_{n}", f"gem_item_{n}"
        purpose, self.pending_purpose = self.pending_purpose, ""
        return ResponseStarted(self.active_response_id, purpose)

    def _interrupt(self, now: float) -> list[ModelEvent]:
        if self._interrupted:
            return []  # one barge-in per turn
        if self.active_response_id is not None:
            self._interrupted = True
        elif self._tool_turn is not None:
            self._tool_turn = ("", "")  # the rest of the tool turn's audio is not to be played
        if not self._caller.item_id:
            self._caller.item_id = f"gem_user_{next(self._ids)}"
        # The worker decides whether anything was playing; Gemini only says it stopped.
        return [SpeechStarted(self._caller.item_id, int(self.audio_sent_ms), now)]

    def _turn_complete(self) -> list[ModelEvent]:
        if self.active_response_id is not None:
            if self._interrupted:
                return self._end_turn("cancelled", "turn_detected")
            return self._end_turn("completed")
        if self._tool_turn is not None:
            # The content-less turnComplete some models send after a tool call (or the tail
            # of that turn's transcript): that turn already ended at the call.
            return self._agent_line(self._tool_turn[1])
        return []

    def _end_turn(self, status: str, reason: str = "") -> list[ModelEvent]:
        response_id, item_id = self.active_response_id or "", self._item_id
        # A barge-in's words are still coming: that caller line ends with the next turn.
        events = [] if self._interrupted else self._caller_line()
        events += self._agent_line(item_id)
        events.append(ResponseDone(response_id, status, reason))
        self.active_response_id, self._interrupted = None, False
        return events

    def _caller_line(self) -> list[ModelEvent]:
        item_id, text = self._caller.item_id, self._caller.take()
        self._caller.item_id = ""
        return [Transcript("caller", item_id, text)] if text else []

    def _agent_line(self, item_id: str) -> list[ModelEvent]:
        text = self._agent.take()
        return [Transcript("agent", item_id, text)] if text else []

    def _tool_call(self, call: Fields) -> list[ModelEvent]:
        events: list[ModelEvent] = []
        if self.active_response_id is not None:
            turn = (self.active_response_id, self._item_id)
            events += self._end_turn("completed")
            self._tool_turn = turn
        elif self._tool_turn is None:
            n = next(self._turns)  # a call with no speech before it: a turn of its own
            self._tool_turn = (f"gem_resp_{n}", f"gem_item_{n}")
        for fc in call.objects("functionCalls", limit=MAX_PENDING_CALLS):
            call_id = fc.text("id") or f"gem_call_{next(self._ids)}"
            name = fc.text("name")
            args = fc.object("args").as_dict()
            if len(self.pending_calls) >= MAX_PENDING_CALLS:
                self.pending_calls.pop(next(iter(self.pending_calls)))
            self.pending_calls[call_id] = name
            events.append(ToolCallRequested(call_id, name, orjson.dumps(args).decode()))
        return events

    def _cancellation(self, cancel: Fields) -> list[ModelEvent]:
        ids = tuple(cancel.texts("ids", limit=MAX_PENDING_CALLS))
        for call_id in ids:
            self.pending_calls.pop(call_id, None)
            self.cancelled_calls.append(call_id)
        if not self.pending_calls:
            self._tool_turn = None
        return [ToolCallCancelled(ids)] if ids else []
