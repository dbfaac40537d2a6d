"""The browser softphone's wire ↔ neutral events and commands (sans-I/O).

One WebSocket per call (``/phone/ws``), opened by ``service/ui/static/phone.js``.

Page → service:

* text ``{"type": "start", "profile": "<name>"}`` first, once;
* binary: caller audio, PCM16 little-endian mono at ``PAGE_RATE`` (the page sends 20 ms
  frames, 640 bytes); any even length up to ``max_frame_bytes`` is accepted;
* text ``{"type": "mark", "name": …}``: the page's playback reached that mark (or a ``clear``
  flushed it) — the same echo Twilio gives (protocols.md A.3), so barge-in truncation counts
  what the operator actually heard;
* text ``{"type": "dtmf", "digit": "0"-"9" | "*" | "#"}``; ``{"type": "hangup"}``.

Service → page:

* binary: agent audio, PCM16 LE mono at ``PAGE_RATE``, to play in order;
* text ``{"type": "started", "call_sid": …}``, ``{"type": "mark", "name": …}``,
  ``{"type": "clear", "sent_at": epoch ms}`` (drop queued audio, echo pending marks),
  ``{"type": "hangup", "reason": …}``.

The agent side stays μ-law 8 kHz (the neutral format); this codec converts with one
resampler per direction (3 ms added each way; see ``audio.resample``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from service.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from service.audio.resample import StreamResampler
from service.telephony.events import (
    CallEnded,
    CallerAudio,
    CallerCommand,
    ClearPlayback,
    DtmfReceived,
    HangUp,
    MarkPlayed,
    PlaceMark,
    PlayAudio,
    ProtocolViolation,
)

__all__ = ["PAGE_RATE", "BrowserCodec", "StartRequest"]

PAGE_RATE = 16_000  # the page's AudioContext rate (Chromium resamples the microphone to it)
DTMF_DIGITS = frozenset("0123456789*#")


@dataclass(frozen=True, slots=True)
class StartRequest:
    profile: str


BrowserEvent = StartRequest | CallerAudio | MarkPlayed | DtmfReceived | CallEnded


class BrowserCodec:
    """Per call: two resamplers (~1.3 KB each) and a frame counter. Not thread-safe."""

    def __init__(self, max_frame_bytes: int = 64 * 1024) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._from_page = StreamResampler(PAGE_RATE, 8000)
        self._to_page = StreamResampler(8000, PAGE_RATE)
        self.started = False

    def receive(self, frame: str | bytes) -> BrowserEvent | ProtocolViolation | None:
        if len(frame) > self.max_frame_bytes:
            return ProtocolViolation("frame_too_large", f"{len(frame)} bytes", fatal=True)
        if isinstance(frame, bytes):
            if not self.started:
                return ProtocolViolation("audio_before_start")
            if len(frame) % 2:
                return ProtocolViolation("odd_audio_length", f"{len(frame)} bytes")
            pcm = self._from_page.process(frame)
            return CallerAudio(pcm16_to_ulaw(pcm)) if pcm else None
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            return ProtocolViolation("invalid_json", str(exc)[:200])
        if not isinstance(message, dict):
            return ProtocolViolation("not_an_object")
        kind = message.get("type")
        if kind == "start":
            if self.started:
                return ProtocolViolation("second_start")
            self.started = True
            return StartRequest(str(message.get("profile", ""))[:100])
        if not self.started:
            return ProtocolViolation("message_before_start", str(kind)[:50])
        if kind == "mark":
            name = message.get("name")
            return (
                MarkPlayed(name)
                if isinstance(name, str) and name
                else (ProtocolViolation("mark_without_name"))
            )
        if kind == "dtmf":
            digit = message.get("digit")
            if isinstance(digit, str) and digit in DTMF_DIGITS:
                return DtmfReceived(digit)
            return ProtocolViolation("invalid_dtmf", str(digit)[:10])
        if kind == "hangup":
            return CallEnded("caller_hangup")
        return ProtocolViolation("unknown_message", str(kind)[:50])

    def encode(self, command: CallerCommand) -> str | bytes | None:
        """The page's message for a play/mark/clear/hang-up command (None: nothing to send)."""
        if isinstance(command, PlayAudio):
            pcm = self._to_page.process(ulaw_to_pcm16(command.ulaw))
            return pcm or None
        if isinstance(command, PlaceMark):
            return orjson.dumps({"type": "mark", "name": command.name}).decode()
        if isinstance(command, ClearPlayback):
            # What was queued will never play: start the next reply with a clean filter.
            self._to_page = StreamResampler(8000, PAGE_RATE)
            # ``sent_at`` (epoch ms) lets the page tell how long the clear took to reach it.
            return orjson.dumps({"type": "clear", "sent_at": time.time() * 1000}).decode()
        if isinstance(command, HangUp):
            return orjson.dumps({"type": "hangup", "reason": command.reason}).decode()
        return None

    @staticmethod
    def started_message(call_sid: str) -> str:
        return orjson.dumps({"type": "started", "call_sid": call_sid}).decode()
