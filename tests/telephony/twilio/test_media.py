"""The Twilio Media Streams codec, without sockets (protocols.md A.2, A.3)."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.telephony.events import (
    CallEnded,
    CallerAudio,
    CallStarted,
    ClearPlayback,
    DtmfReceived,
    HangUp,
    MarkPlayed,
    PlaceMark,
    PlayAudio,
    ProtocolViolation,
)
from service.telephony.twilio.media import MediaStreamCodec

STREAM = "MZ" + "a" * 32
CALL = "CA" + "b" * 32


def frame(event: str, **fields: object) -> str:
    return json.dumps({"event": event, "streamSid": STREAM, "sequenceNumber": "1", **fields})


def start_frame(**start: object) -> str:
    body = {
        "streamSid": STREAM,
        "accountSid": "AC" + "c" * 32,
        "callSid": CALL,
        "tracks": ["inbound"],
        "customParameters": {"token": "t", "from": "+1555"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    body.update(start)
    return frame("start", start=body)


def media_frame(payload: bytes | str, chunk: str = "1", timestamp: str = "20") -> str:
    if isinstance(payload, bytes):
        payload = base64.b64encode(payload).decode()
    return frame(
        "media",
        media={"track": "inbound", "chunk": chunk, "timestamp": timestamp, "payload": payload},
    )


@pytest.fixture
def codec() -> MediaStreamCodec:
    c = MediaStreamCodec()
    assert (
        c.receive(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        is None
    )
    started = c.receive(start_frame())
    assert isinstance(started, CallStarted)
    return c


def test_start_gives_identifiers_and_parameters() -> None:
    c = MediaStreamCodec()
    event = c.receive(start_frame())
    assert event == CallStarted(
        call_sid=CALL,
        carrier="twilio",
        from_number="+1555",
        carrier_fields={"stream_sid": STREAM, "account_sid": "AC" + "c" * 32},
        parameters={"token": "t", "from": "+1555"},
    )
    assert c.started and c.call_sid == CALL


def test_media_numbers_arrive_as_strings(codec: MediaStreamCodec) -> None:
    event = codec.receive(media_frame(b"\xff" * 160, chunk="12", timestamp="240"))
    assert event == CallerAudio(ulaw=b"\xff" * 160, timestamp_ms=240, chunk=12)


@given(st.binary(min_size=0, max_size=2000))
def test_media_any_length(payload: bytes) -> None:
    c = MediaStreamCodec()
    c.receive(start_frame())
    event = c.receive(media_frame(payload))
    assert isinstance(event, CallerAudio) and event.ulaw == payload


def test_dtmf_mark_stop(codec: MediaStreamCodec) -> None:
    assert codec.receive(
        frame("dtmf", dtmf={"track": "inbound_track", "digit": "7"})
    ) == DtmfReceived("7")
    assert codec.receive(frame("mark", mark={"name": "g1:item:40"})) == MarkPlayed("g1:item:40")
    assert isinstance(
        codec.receive(frame("stop", stop={"accountSid": "AC", "callSid": CALL})), CallEnded
    )
    late = codec.receive(media_frame(b"\xff"))
    assert isinstance(late, ProtocolViolation) and late.reason == "frame_after_stop"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", "malformed_json"),
        ("[1, 2]", "not_an_object"),
        (json.dumps({"event": "bogus", "streamSid": STREAM}), "unknown_event"),
        (json.dumps({"streamSid": STREAM}), "unknown_event"),
        (media_frame("!!!notbase64"), "bad_base64"),
        (media_frame("abc"), "bad_base64"),  # base64 of a length that is not a multiple of 4
        (frame("media", media={"payload": 5}), "media_invalid"),
        (frame("media"), "media_invalid"),
        (frame("dtmf", dtmf={"digit": "xx"}), "dtmf_invalid"),
        (frame("mark", mark={}), "mark_invalid"),
        (start_frame(), "duplicate_start"),
        (
            json.dumps({"event": "media", "streamSid": "MZother", "media": {"payload": ""}}),
            "stream_sid_mismatch",
        ),
    ],
)
def test_bad_frames_are_violations_not_exceptions(
    codec: MediaStreamCodec, raw: str, reason: str
) -> None:
    event = codec.receive(raw)
    assert isinstance(event, ProtocolViolation)
    assert event.reason == reason and not event.fatal
    assert codec.violations[reason] == 1
    # The stream carries on.
    assert isinstance(codec.receive(media_frame(b"\x00" * 160)), CallerAudio)


def test_oversized_and_binary_frames(codec: MediaStreamCodec) -> None:
    big = media_frame(b"\xff" * 60_000)
    assert len(big) > 64 * 1024
    event = codec.receive(big)
    assert isinstance(event, ProtocolViolation) and event.reason == "frame_too_large"
    event = codec.receive(b"\x00\x01")
    assert isinstance(event, ProtocolViolation) and event.reason == "binary_frame"


def test_unknown_events_are_counted(codec: MediaStreamCodec) -> None:
    for _ in range(3):
        codec.receive(json.dumps({"event": "future_thing"}))
    assert codec.unknown_events["future_thing"] == 3


def test_media_before_start() -> None:
    c = MediaStreamCodec()
    event = c.receive(media_frame(b"\xff" * 160))
    assert isinstance(event, ProtocolViolation) and event.reason == "media_before_start"
    assert not event.fatal


@pytest.mark.parametrize(
    "start",
    [
        {"callSid": None},
        {"mediaFormat": {"encoding": "audio/l16", "sampleRate": 16000, "channels": 1}},
    ],
)
def test_unusable_start_is_fatal(start: dict) -> None:
    event = MediaStreamCodec().receive(start_frame(**start))
    assert isinstance(event, ProtocolViolation) and event.fatal


def test_outbound_track_is_not_caller_audio(codec: MediaStreamCodec) -> None:
    assert codec.receive(frame("media", media={"track": "outbound", "payload": ""})) is None


def test_encode_commands(codec: MediaStreamCodec) -> None:
    media = json.loads(codec.encode(PlayAudio(b"\x01\x02\x03")) or "")
    assert media == {"event": "media", "streamSid": STREAM, "media": {"payload": "AQID"}}
    mark = json.loads(codec.encode(PlaceMark("g2:item_1:480")) or "")
    assert mark == {"event": "mark", "streamSid": STREAM, "mark": {"name": "g2:item_1:480"}}
    assert json.loads(codec.encode(ClearPlayback()) or "") == {
        "event": "clear",
        "streamSid": STREAM,
    }
    assert codec.encode(HangUp()) is None


def test_encode_before_start_is_a_bug() -> None:
    with pytest.raises(RuntimeError):
        MediaStreamCodec().encode(ClearPlayback())


@given(sid=st.text(min_size=1, max_size=40), audio=st.binary(max_size=400))
def test_media_frames_built_from_pieces_are_the_json_of_the_message(sid: str, audio: bytes) -> None:
    """``media`` skips the dict (hot path); its frame must stay exactly that dict's JSON, for
    any sid Twilio could send (quotes, backslashes, non-ASCII)."""
    codec = MediaStreamCodec()
    started = codec.receive(
        json.dumps({"event": "start", "start": {"callSid": CALL, "streamSid": sid}})
    )
    assert isinstance(started, CallStarted)
    frame_text = codec.encode(PlayAudio(audio)) or ""
    assert json.loads(frame_text) == {
        "event": "media",
        "streamSid": sid,
        "media": {"payload": base64.b64encode(audio).decode()},
    }
