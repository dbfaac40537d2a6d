"""Sans-I/O messages for Twilio's side of a Media Stream (protocols.md A.2, A.3).

:class:`TwilioStreamWriter` builds what *Twilio* sends (``connected``, ``start``, ``media``,
``dtmf``, mark echoes, ``stop``) with Twilio's exact field shapes: numeric-looking fields are
strings, ``sequenceNumber`` counts from "1" on the first message after ``connected``, and every
message after ``connected`` carries a top-level ``streamSid``.

:func:`parse_server_message` checks what the *server* may send back (``media``, ``mark``,
``clear``) and classifies anything else as invalid, the way Twilio would raise 31950/31924.

Memory: the writer holds three counters; each built message is a few hundred bytes.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "FRAME_BYTES",
    "FRAME_MS",
    "InvalidServerMessage",
    "ServerClear",
    "ServerMark",
    "ServerMedia",
    "ServerMessage",
    "TwilioStreamWriter",
    "new_sid",
    "parse_server_message",
]

FRAME_MS = 20  # A.2 [OBSERVED]: inbound frames are 20 ms ...
FRAME_BYTES = 160  # ... = 160 μ-law bytes at 8 kHz

MEDIA_FORMAT: dict[str, Any] = {  # A.2: always μ-law / 8000 / mono
    "encoding": "audio/x-mulaw",
    "sampleRate": 8000,
    "channels": 1,
}


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two-letter prefix + 32 lowercase hex (CA…, MZ…, AC…)."""
    return prefix + secrets.token_hex(16)


class TwilioStreamWriter:
    """Builds Twilio→server messages for one stream, numbering them as Twilio does (A.2).

    Each method returns UTF-8 JSON bytes meant for a *text* frame (send with ``text=True``;
    A.6: only text frames both ways). Sequence numbers are assigned at build time, so build
    and send in the same order.
    """

    def __init__(self, *, stream_sid: str, account_sid: str, call_sid: str) -> None:
        self.stream_sid = stream_sid
        self.account_sid = account_sid
        self.call_sid = call_sid
        self._seq = 0  # last sequenceNumber used; "connected" has none (A.2)
        self._chunk = 0  # last media chunk number; starts at 1 (A.2)

    @property
    def last_sequence_number(self) -> int:
        return self._seq

    @property
    def chunks_built(self) -> int:
        return self._chunk

    def _next_seq(self) -> str:
        self._seq += 1
        return str(self._seq)  # A.2: strings, not numbers

    @staticmethod
    def connected() -> bytes:
        # A.2: first message after the upgrade; no streamSid, no sequenceNumber.
        return orjson.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self, custom_parameters: dict[str, str]) -> bytes:
        # A.2 `start`: bidirectional streams only ever carry the inbound track (A.1).
        return orjson.dumps(
            {
                "event": "start",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": dict(custom_parameters),
                    "mediaFormat": dict(MEDIA_FORMAT),
                },
            }
        )

    def media(self, ulaw: bytes, timestamp_ms: int) -> bytes:
        # A.2 `media`: track "inbound" (not "inbound_track"), chunk from 1, timestamp = ms since
        # stream start; all three as strings; payload = headerless base64 μ-law.
        self._chunk += 1
        return orjson.dumps(
            {
                "event": "media",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "media": {
                    "track": "inbound",
                    "chunk": str(self._chunk),
                    "timestamp": str(timestamp_ms),
                    "payload": base64.b64encode(ulaw).decode("ascii"),
                },
            }
        )

    def dtmf(self, digit: str) -> bytes:
        # A.2 `dtmf`: one message per key; track is "inbound_track" here (A.6).
        return orjson.dumps(
            {
                "event": "dtmf",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    def mark(self, name: str) -> bytes:
        # A.2 `mark`: echo of a mark the server sent, when played or cleared (A.3).
        return orjson.dumps(
            {
                "event": "mark",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
        )

    def stop(self) -> bytes:
        # A.2 `stop`: the call ended.
        return orjson.dumps(
            {
                "event": "stop",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
            }
        )


# ---------------------------------------------------------------------- server → Twilio
@dataclass(slots=True)
class ServerMedia:
    ulaw: bytes
    raw: dict[str, Any] = field(repr=False)


@dataclass(slots=True)
class ServerMark:
    name: str
    raw: dict[str, Any] = field(repr=False)


@dataclass(slots=True)
class ServerClear:
    raw: dict[str, Any] = field(repr=False)


@dataclass(slots=True)
class InvalidServerMessage:
    """Something Twilio would reject. ``reason`` is a short fixed label (safe to count by)."""

    reason: str
    raw: dict[str, Any] | None = field(default=None, repr=False)  # the JSON object, if any


ServerMessage = ServerMedia | ServerMark | ServerClear | InvalidServerMessage


def parse_server_message(
    frame: str | bytes, expected_stream_sid: str | None = None
) -> ServerMessage:
    """Classify one WebSocket frame the server sent (A.3).

    ``frame`` is what ``websockets`` returns: ``str`` for text frames, ``bytes`` for binary
    frames. Binary frames are invalid even if they hold JSON (A.3 error 31950, A.6).
    """
    if isinstance(frame, bytes | bytearray | memoryview):
        return InvalidServerMessage("binary frame")
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return InvalidServerMessage("not json")
    if not isinstance(msg, dict):
        return InvalidServerMessage("not a json object")
    event = msg.get("event")
    if event not in ("media", "mark", "clear"):
        # A.3: only media/mark/clear are defined for the server; anything else is 31924.
        # Fixed label (the event name stays in ``raw``) so counting by reason stays bounded.
        return InvalidServerMessage("unknown event", msg)
    sid = msg.get("streamSid")
    if not isinstance(sid, str) or not sid:
        return InvalidServerMessage("missing streamSid", msg)
    if expected_stream_sid is not None and sid != expected_stream_sid:
        return InvalidServerMessage("wrong streamSid", msg)
    if event == "clear":
        return ServerClear(msg)
    if event == "mark":
        mark = msg.get("mark")
        name = mark.get("name") if isinstance(mark, dict) else None
        if not isinstance(name, str):
            return InvalidServerMessage("mark without name", msg)
        return ServerMark(name, msg)
    media = msg.get("media")
    payload = media.get("payload") if isinstance(media, dict) else None
    if not isinstance(payload, str):
        return InvalidServerMessage("media without payload", msg)
    try:
        ulaw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return InvalidServerMessage("bad base64", msg)
    return ServerMedia(ulaw, msg)
