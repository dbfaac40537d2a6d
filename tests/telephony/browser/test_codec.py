from __future__ import annotations

import numpy as np
import orjson

from service.telephony.browser.codec import BrowserCodec, StartRequest
from service.telephony.events import (
    CallEnded,
    CallerAudio,
    ClearPlayback,
    DtmfReceived,
    HangUp,
    MarkPlayed,
    PlaceMark,
    PlayAudio,
    ProtocolViolation,
)


def started() -> BrowserCodec:
    codec = BrowserCodec()
    assert codec.receive('{"type":"start","profile":"hotline"}') == StartRequest("hotline")
    return codec


def tone(ms: int, rate: int = 16000) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


def test_page_audio_becomes_ulaw_8k_of_the_same_duration() -> None:
    codec = started()
    total = b""
    for _ in range(10):
        event = codec.receive(tone(20))
        assert isinstance(event, CallerAudio)
        total += event.ulaw
    assert len(total) == 8 * 200  # 200 ms at 8 kHz, one byte a sample


def test_agent_audio_goes_to_the_page_at_its_rate() -> None:
    codec = started()
    out = codec.encode(PlayAudio(b"\xff" * 160))  # 20 ms of μ-law silence
    assert isinstance(out, bytes) and len(out) == 640  # 320 samples at 16 kHz


def test_control_messages() -> None:
    codec = started()
    assert codec.receive('{"type":"mark","name":"0:item:100"}') == MarkPlayed("0:item:100")
    assert codec.receive('{"type":"dtmf","digit":"#"}') == DtmfReceived("#")
    assert codec.receive('{"type":"hangup"}') == CallEnded("caller_hangup")
    assert orjson.loads(codec.encode(PlaceMark("m1"))) == {"type": "mark", "name": "m1"}
    clear = orjson.loads(codec.encode(ClearPlayback()))
    assert clear["type"] == "clear" and clear["sent_at"] > 0
    assert orjson.loads(codec.encode(HangUp("agent_hangup"))) == {
        "type": "hangup",
        "reason": "agent_hangup",
    }


def test_bad_frames_are_reported_not_raised() -> None:
    codec = BrowserCodec(max_frame_bytes=1000)
    assert isinstance(codec.receive(b"\x00\x00"), ProtocolViolation)  # audio before start
    assert isinstance(codec.receive('{"type":"mark","name":"x"}'), ProtocolViolation)
    codec.receive('{"type":"start"}')
    for frame in (
        "{nope",
        "[1]",
        '{"type":"start"}',
        '{"type":"dtmf","digit":"A"}',
        '{"type":"mark"}',
        '{"type":"what"}',
        b"\x00\x00\x00",
    ):
        event = codec.receive(frame)
        assert isinstance(event, ProtocolViolation) and not event.fatal, frame
    big = codec.receive(b"\x00" * 1002)
    assert isinstance(big, ProtocolViolation) and big.fatal
