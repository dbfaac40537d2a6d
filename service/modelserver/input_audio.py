"""Input audio of one session (B.3, B.4): the input clock, the uncommitted buffer, server VAD
turns, input transcription and ``idle_timeout_ms`` (B.1).

:class:`InputAudio` decides nothing about responses. Its methods return the events to send
interleaved with *outcomes* (:class:`SpeechBegan`, :class:`TurnEnded`, :class:`IdleTimedOut`)
in the order they happened; the session acts on each outcome in place (cancel the active
response, start a new one), so the events keep the real server's order.

The input clock counts decoded samples (in 1/24000 s ticks, exact for 24 kHz and 8 kHz),
never wall time. Memory per connection: counters, one odd byte of ``audio/pcm`` and the VAD's
< 1 frame of carry; no audio is kept — except by a speech engine session, which keeps the last
``max_turn_s`` of input for transcription (:class:`~.engine.engine.AudioRing`).
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from service.audio.vad import EnergyVad, VadEvent, VadParams, VoiceStarted
from service.modelserver.config import PCM_RATE, audio_format
from service.modelserver.conversation import Conversation, Item
from service.modelserver.protocol import IdFactory, ProtocolError
from service.modelserver.script import Script

if TYPE_CHECKING:
    from service.modelserver.engine.engine import EngineSession

__all__ = ["IdleTimedOut", "InputAudio", "InputStep", "SpeechBegan", "TurnEnded"]

Events = list[dict[str, Any]]

MAX_APPEND_CHARS = 15 * 1024 * 1024  # B.7: 15 MiB of base64 per append
MIN_COMMIT_MS = 100  # B.4: input_audio_buffer_commit_empty below 100 ms
TICKS_PER_S = PCM_RATE  # input clock unit: 1/24000 s, exact for 24 kHz and 8 kHz samples
# semantic_vad has no energy equivalent; its eagerness maps to how long a pause ends a turn.
_EAGERNESS_SILENCE_MS = {"low": 1200, "medium": 600, "auto": 600, "high": 300}


@dataclass(frozen=True)
class SpeechBegan:
    """The VAD heard the caller start speaking; ``interrupt_response`` is the client's
    turn_detection setting (B.6: barge-in cancels an in-conversation response)."""

    interrupt_response: bool


@dataclass(frozen=True)
class TurnEnded:
    """The VAD ended and committed a user turn; ``create_response`` is the client's
    turn_detection setting (B.4: respond if no response is active)."""

    create_response: bool


@dataclass(frozen=True)
class IdleTimedOut:
    """``idle_timeout_ms`` passed in silence; the silence was committed (B.1: respond)."""


InputStep = dict[str, Any] | SpeechBegan | TurnEnded | IdleTimedOut


class InputAudio:
    """One session's input audio.

    Invariants: ``buffer_ticks <= input_ticks``; the VAD (None without turn detection) was
    built for the configured input format; an idle deadline is armed only between a
    response's end and the next speech or response.
    """

    def __init__(
        self,
        *,
        ids: IdFactory,
        conversation: Conversation,
        script: Script,
        engine: EngineSession | None,
        config: dict[str, Any],
    ) -> None:
        self.ids = ids
        self.conversation = conversation
        self.script = script
        self.engine = engine
        self.config = config  # the session's audio.input (a new dict after each update)
        self.input_ticks = 0  # all input audio since the session started
        self.buffer_ticks = 0  # uncommitted input audio
        self._odd_byte = b""  # audio/pcm appends may split a sample
        self._vad: EnergyVad | None = None
        self._speech_item_id: str | None = None
        self._speech_start_ms = 0
        self._idle_deadline_ms: float | None = None
        self._user_turns = 0  # committed user audio items (index into script transcripts)
        self._rebuild_vad()

    @property
    def input_ms(self) -> float:
        """Input audio received since the session started (B.4 clock)."""
        return self.input_ticks * 1000.0 / TICKS_PER_S

    @property
    def _turn_detection(self) -> dict[str, Any] | None:
        td: dict[str, Any] | None = self.config["turn_detection"]
        return td

    # -- configuration (B.1) ---------------------------------------------------------------
    def configure(self, config: dict[str, Any]) -> None:
        """The session's ``audio.input`` after a ``session.update``: a new format, or turning
        detection on or off, starts a fresh VAD; other changes retune the current one."""
        before, self.config = self.config, config
        if before["format"] != config["format"] or (before["turn_detection"] is None) != (
            config["turn_detection"] is None
        ):
            self._rebuild_vad()
            self._odd_byte = b""
        elif self._vad is not None:
            self._vad.configure(self._vad_params() or VadParams())

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
        rate = audio_format(self.config["format"]).rate
        if params is None:
            self._vad = None
        elif self.engine is not None:  # the engine's VAD (Silero) for real speech
            self._vad = self.engine.engine.make_vad(rate, params, self.input_ms)
        else:
            self._vad = EnergyVad(rate, params, start_ms=self.input_ms)
        self._speech_item_id = None

    # -- input_audio_buffer.* (B.3) --------------------------------------------------------
    def append(self, audio: str) -> list[InputStep]:
        """``input_audio_buffer.append``: the clock moves, the VAD runs (B.4)."""
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
        fmt = audio_format(self.config["format"])
        if fmt.bytes_per_sample == 2:
            data = self._odd_byte + data
            self._odd_byte, data = data[len(data) - len(data) % 2 :], data[: len(data) & ~1]
        pcm = fmt.to_pcm16(data)
        ticks = len(pcm) // 2 * (TICKS_PER_S // fmt.rate)
        self.input_ticks += ticks
        self.buffer_ticks += ticks
        if self.engine is not None:
            self.engine.capture(pcm, fmt.rate, self.input_ms)
        steps: list[InputStep] = []
        for vad_event in self._vad.process(pcm) if self._vad else []:
            steps += self._vad_turn(vad_event)
        if self.engine is not None and self._vad is not None and self._vad.in_speech:
            if self._vad.silence_ms:  # a pause: maybe the end of the turn, transcribe early
                self.engine.pause(self._speech_start_ms, self.input_ms, self._vad.silence_ms)
            else:
                self.engine.resumed()
        return steps

    def _vad_turn(self, event: VadEvent) -> list[InputStep]:
        td = self._turn_detection or {}
        if isinstance(event, VoiceStarted):
            item_id = self._speech_item_id = self.ids.new("item")
            self._speech_start_ms = event.audio_start_ms
            started = self.ids.event(
                "input_audio_buffer.speech_started",
                audio_start_ms=event.audio_start_ms,
                item_id=item_id,
            )
            return [started, SpeechBegan(td.get("interrupt_response", True))]
        item_id = self._speech_item_id or self.ids.new("item")
        self._speech_item_id = None
        steps: list[InputStep] = [
            self.ids.event(
                "input_audio_buffer.speech_stopped",
                audio_end_ms=event.audio_end_ms,
                item_id=item_id,
            )
        ]
        span = (self._speech_start_ms, event.audio_end_ms, event.speech_end_ms)
        steps += self._commit(item_id, event.audio_end_ms - self._speech_start_ms, span)
        self.buffer_ticks = max(0, self.input_ticks - event.audio_end_ms * TICKS_PER_S // 1000)
        return [*steps, TurnEnded(td.get("create_response", True))]

    def commit(self) -> Events:
        """``input_audio_buffer.commit`` (B.4)."""
        buffered = self.buffer_ticks * 1000.0 / TICKS_PER_S
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
        end = self.input_ms
        return self._commit(item_id, buffered, (end - buffered, end, end))

    def clear(self) -> Events:
        """``input_audio_buffer.clear`` (B.4)."""
        self.buffer_ticks = 0
        if self.engine is not None:
            self.engine.resumed()  # an early transcript of cleared audio is moot
        if self._vad is not None:
            self._vad.reset()
        self._speech_item_id = None
        return [self.ids.event("input_audio_buffer.cleared")]

    def _commit(
        self, item_id: str, audio_ms: float, span: tuple[float, float, float] | None = None
    ) -> Events:
        """Buffer → user audio item: committed, then item added/done (B.4). ``span`` (start,
        end, end of speech; input clock ms) is what an engine transcribes; None: nothing."""
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
        self.buffer_ticks = 0
        event = self.ids.event
        events = [
            event("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous),
            event("conversation.item.added", previous_item_id=previous, item=item.public()),
            event("conversation.item.done", previous_item_id=previous, item=item.public()),
        ]
        transcription = self.config["transcription"]
        if self.engine is not None:
            if span is not None:  # the event follows when the transcript is ready (tick)
                self.engine.commit(item_id, *span)
        elif transcription is not None:  # B.4: arrives after the item (asynchronous ASR)
            events.append(self._transcribed(item, transcription.get("model", "")))
        return events

    # -- idle_timeout_ms (B.1) -------------------------------------------------------------
    def arm_idle_timeout(self, response_audio_ms: float) -> None:
        """A response ended: B.1 counts the timeout from ``response.done`` plus the length
        of the response's audio, on the input clock."""
        idle = (self._turn_detection or {}).get("idle_timeout_ms")
        if idle:
            self._idle_deadline_ms = self.input_ms + response_audio_ms + idle

    def disarm_idle_timeout(self) -> None:
        """A response started, or the caller spoke (after any barge-in, which ends the
        response and so arms the timeout): no idle timeout until the next response ends."""
        self._idle_deadline_ms = None

    def idle(self, *, responding: bool) -> list[InputStep]:
        """After an append: once the idle deadline has passed with no response and no
        speech, commit the silence (``timeout_triggered``) and report :class:`IdleTimedOut`."""
        deadline = self._idle_deadline_ms
        busy = responding or (self._vad is not None and self._vad.in_speech)
        if deadline is None or busy or self.input_ms < deadline:
            return []
        self._idle_deadline_ms = None
        item_id = self.ids.new("item")
        buffered = self.buffer_ticks * 1000.0 / TICKS_PER_S
        steps: list[InputStep] = [
            self.ids.event(
                "input_audio_buffer.timeout_triggered",
                audio_start_ms=int(self.input_ms - buffered),
                audio_end_ms=int(self.input_ms),
                item_id=item_id,
            )
        ]
        steps += self._commit(item_id, buffered)
        return [*steps, IdleTimedOut()]

    # -- input transcription (B.4) ---------------------------------------------------------
    def engine_transcripts(self) -> Events:
        """Transcription events for engine transcripts finished since last asked (only if
        the session asked for input transcription, as on the real server)."""
        if self.engine is None:
            return []
        transcription = self.config["transcription"]
        events: Events = []
        for item_id, text in self.engine.finished_transcripts():
            item = self.conversation.get(item_id)
            if transcription is None or item is None:
                continue
            if text is None:
                error = {
                    "type": "server_error",
                    "code": "transcription_failed",
                    "message": "Transcription failed.",
                    "param": None,
                }
                events.append(
                    self.ids.event(
                        "conversation.item.input_audio_transcription.failed",
                        item_id=item_id,
                        content_index=0,
                        error=error,
                    )
                )
            else:
                events.append(self._transcribed(item, transcription.get("model", ""), text))
        return events

    def _transcribed(self, item: Item, model: str, transcript: str | None = None) -> dict[str, Any]:
        if transcript is None:
            transcript = self.script.user_transcript(self._user_turns)
        self._user_turns += 1
        item.data["content"][0]["transcript"] = transcript
        seconds = item.audio_ms / 1000.0
        if model == "whisper-1":  # billed by duration; the gpt-4o transcribers by tokens
            usage: dict[str, Any] = {"type": "duration", "seconds": seconds}
        else:
            audio, text = math.ceil(seconds * 10), math.ceil(len(transcript) / 4)
            usage = {
                "type": "tokens",
                "input_tokens": audio,
                "output_tokens": text,
                "total_tokens": audio + text,
                "input_token_details": {"audio_tokens": audio, "text_tokens": 0},
            }
        return self.ids.event(
            "conversation.item.input_audio_transcription.completed",
            item_id=item.id,
            content_index=0,
            transcript=transcript,
            usage=usage,
        )
