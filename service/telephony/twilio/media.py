"""Sans-I/O codec for Twilio Media Streams (protocols.md A.2, A.3).

``MediaStreamCodec`` turns each text frame Twilio sends into at most one neutral caller event
and turns neutral commands into the text frames Twilio accepts. It holds no socket: the
asyncio layer feeds it frames and writes out what it returns.

Invariants: ``start`` is accepted once; ``media``/``dtmf``/``mark`` are only accepted after it;
nothing is accepted after ``stop``. Bad frames never raise: they come back as
``ProtocolViolation`` events (counted in ``violations``) and the stream carries on, except a
``start`` without the identifiers a call needs, which is fatal.
"""

from __future__ import annotations

import binascii
import re
from base64 import b64decode, b64encode
from collections import Counter

import orjson

from service.telephony.events import (
    CallEnded,
    CallerAudio,
    CallerCommand,
    CallerEvent,
    CallStarted,
    ClearPlayback,
    DtmfReceived,
    HangUp,
    MarkPlayed,
    PlaceMark,
    PlayAudio,
    ProtocolViolation,
)

__all__ = ["DTMF_DIGITS", "MediaStreamCodec"]

DTMF_DIGITS = frozenset("0123456789*#ABCDabcdw")
_KNOWN_EVENTS = frozenset({"connected", "start", "media", "dtmf", "mark", "stop"})


# ASCII digits only, at most 15 of them: ``str.isdigit`` also accepts "²" and "①" (which
# ``int`` rejects), and ``int`` refuses strings of over 4300 digits; either would raise.
_NUMBER = re.compile(r"[0-9]{1,15}")
_MAX_NUMBER = 10**15 - 1


def _as_int(value: object) -> int | None:
    """A.2: sequenceNumber, chunk and timestamp arrive as strings; compare them as numbers.
    ``None`` for anything else (the caller decides whether that is a violation)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value <= _MAX_NUMBER else None
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return int(value)
    return None


class MediaStreamCodec:
    """One per media-stream connection. Holds only identifiers and counters (O(1) memory)."""

    def __init__(self, *, max_frame_bytes: int = 64 * 1024) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.stream_sid: str | None = None
        self.call_sid: str | None = None
        self.connected = False
        self.started = False
        self.stopped = False
        self.frames_in = 0
        self.media_in = 0
        self.violations: Counter[str] = Counter()
        self.unknown_events: Counter[str] = Counter()
        self._media_head = ""

    # --- Twilio → us ------------------------------------------------------------------------

    def receive(self, frame: str | bytes) -> CallerEvent | None:
        """Parse one WebSocket frame; ``bytes`` means a binary frame, which Twilio never sends."""
        self.frames_in += 1
        if isinstance(frame, bytes):
            return self._violation("binary_frame", f"{len(frame)} bytes")
        if len(frame) > self.max_frame_bytes:
            return self._violation("frame_too_large", f"{len(frame)} > {self.max_frame_bytes}")
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            return self._violation("malformed_json", str(exc)[:120])
        if not isinstance(message, dict):
            return self._violation("not_an_object", type(message).__name__)
        event = message.get("event")
        if self.stopped:
            return self._violation("frame_after_stop", str(event)[:40])
        if event == "media":
            return self._media(message)
        if event == "mark":
            return self._mark(message)
        if event == "start":
            return self._start(message)
        if event == "dtmf":
            return self._dtmf(message)
        if event == "stop":
            return self._stop(message)
        if event == "connected":
            self.connected = True
            return None
        name = str(event)[:40] if event is not None else "<missing>"
        self.unknown_events[name] += 1
        return self._violation("unknown_event", name)

    def _violation(
        self, reason: str, detail: str = "", *, fatal: bool = False
    ) -> ProtocolViolation:
        self.violations[reason] += 1
        return ProtocolViolation(reason=reason, detail=detail, fatal=fatal)

    def _check_stream(self, message: dict) -> ProtocolViolation | None:
        if not self.started:
            return self._violation(f"{message['event']}_before_start")
        sid = message.get("streamSid")
        if sid is not None and sid != self.stream_sid:
            return self._violation("stream_sid_mismatch", str(sid)[:64])
        return None

    def _start(self, message: dict) -> CallerEvent:
        if self.started:
            return self._violation("duplicate_start")
        start = message.get("start")
        if not isinstance(start, dict):
            return self._violation("start_invalid", "no start object", fatal=True)
        call_sid = start.get("callSid")
        stream_sid = start.get("streamSid") or message.get("streamSid")
        if not isinstance(call_sid, str) or not call_sid or not isinstance(stream_sid, str):
            return self._violation("start_invalid", "missing callSid or streamSid", fatal=True)
        params = start.get("customParameters")
        params = {str(k): str(v) for k, v in params.items()} if isinstance(params, dict) else {}
        media_format = start.get("mediaFormat")
        media_format = media_format if isinstance(media_format, dict) else {}
        encoding = str(media_format.get("encoding", "audio/x-mulaw"))[:40]
        rate = _as_int(media_format.get("sampleRate", 8000))
        channels = _as_int(media_format.get("channels", 1))
        # A.2: Media Streams always carry μ-law 8 kHz mono; anything else we cannot play or hear.
        if (encoding, rate, channels) != ("audio/x-mulaw", 8000, 1):
            return self._violation(
                "unsupported_media_format", f"{encoding}/{rate}/{channels}", fatal=True
            )
        self.started = True
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        # Outgoing frames are built from pieces (see ``media``): the sid, JSON-quoted once.
        self._media_head = f'{{"event":"media","streamSid":{orjson.dumps(stream_sid).decode()}'
        # from/to/direction are <Parameter>s our own voice webhook put in the TwiML (A.1).
        return CallStarted(
            call_sid=call_sid,
            carrier="twilio",
            from_number=params.get("from", ""),
            to_number=params.get("to", ""),
            direction=params.get("direction", "inbound"),
            carrier_fields={
                "stream_sid": stream_sid,
                "account_sid": str(start.get("accountSid", "")),
            },
            parameters=params,
            encoding=encoding,
            sample_rate=8000,  # checked above
            channels=1,
        )

    def _media(self, message: dict) -> CallerEvent | None:
        if (bad := self._check_stream(message)) is not None:
            return bad
        media = message.get("media")
        if not isinstance(media, dict):
            return self._violation("media_invalid", "no media object")
        # A.2: bidirectional streams only carry the caller's track; a fork of ours is not audio in.
        track = media.get("track", "inbound")
        if track not in ("inbound", "inbound_track"):
            return None
        payload = media.get("payload")
        if not isinstance(payload, str):
            return self._violation("media_invalid", "payload is not a string")
        try:
            ulaw = b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return self._violation("bad_base64", f"{len(payload)} chars")
        timestamp, chunk = media.get("timestamp"), media.get("chunk")
        timestamp_ms, chunk_number = _as_int(timestamp), _as_int(chunk)
        if (timestamp is not None and timestamp_ms is None) or (
            chunk is not None and chunk_number is None
        ):
            return self._violation("media_invalid", "timestamp or chunk is not a number")
        self.media_in += 1
        return CallerAudio(ulaw=ulaw, timestamp_ms=timestamp_ms, chunk=chunk_number)

    def _mark(self, message: dict) -> CallerEvent:
        if (bad := self._check_stream(message)) is not None:
            return bad
        mark = message.get("mark")
        name = mark.get("name") if isinstance(mark, dict) else None
        if not isinstance(name, str):
            return self._violation("mark_invalid", "no mark name")
        return MarkPlayed(name=name)

    def _dtmf(self, message: dict) -> CallerEvent:
        if (bad := self._check_stream(message)) is not None:
            return bad
        dtmf = message.get("dtmf")
        digit = dtmf.get("digit") if isinstance(dtmf, dict) else None
        if not isinstance(digit, str) or len(digit) != 1 or digit not in DTMF_DIGITS:
            return self._violation("dtmf_invalid", repr(digit)[:20])
        return DtmfReceived(digit=digit.upper())

    def _stop(self, message: dict) -> CallerEvent:
        if (bad := self._check_stream(message)) is not None:
            return bad
        self.stopped = True
        return CallEnded(reason="stream_stopped")

    # --- us → Twilio (A.3) -----------------------------------------------------------------

    def encode(self, command: CallerCommand) -> str | None:
        """The text frame for ``command``; ``None`` for commands that are not a frame (hang-up)."""
        if self.stream_sid is None:
            raise RuntimeError("cannot send to a stream that has not started")
        if isinstance(command, PlayAudio):
            return self.media(command.ulaw)
        if isinstance(command, PlaceMark):
            return self.mark(command.name)
        if isinstance(command, ClearPlayback):
            return self.clear()
        if isinstance(command, HangUp):
            return None
        raise TypeError(f"not a caller command: {command!r}")

    def media(self, ulaw: bytes) -> str:
        # A.3: raw μ-law 8 kHz, no header, any size; Twilio plays media in order.
        # Built from pieces, not a dict through orjson: this runs 50 times a call-second, and
        # base64 needs no JSON escaping (the sid was quoted by orjson at ``start``). Same bytes
        # as orjson.dumps of the dict (tests/telephony check both).
        return self._media_head + ',"media":{"payload":"' + b64encode(ulaw).decode() + '"}}'

    def mark(self, name: str) -> str:
        return orjson.dumps(
            {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}
        ).decode()

    def clear(self) -> str:
        return orjson.dumps({"event": "clear", "streamSid": self.stream_sid}).decode()
