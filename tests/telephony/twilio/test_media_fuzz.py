"""Property-based fuzzing of the Twilio Media Streams codec and of mark names (issue 11, item 2).

Any JSON value in any field of any frame: the codec returns an event or ``None``, never raises;
a number field ``int`` cannot read ("²", "①", 5000 digits, a list …) is a counted
``ProtocolViolation``. A mark name, whatever it is, is applied or ignored, never raises.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from service.calls.playback import PlaybackLedger
from service.telephony.events import CallerAudio, ProtocolViolation
from service.telephony.twilio.media import MediaStreamCodec
from tests.realtime.openai.test_protocol_fuzz import FUZZ, FUZZ_LIGHT
from tests.support.fuzzing import json_values, mutations, put

START = {
    "event": "start",
    "streamSid": "MZ1",
    "start": {
        "callSid": "CA1",
        "streamSid": "MZ1",
        "accountSid": "AC1",
        "customParameters": {"token": "t", "from": "+15550100001"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    },
}
MEDIA = {
    "event": "media",
    "streamSid": "MZ1",
    "media": {
        "track": "inbound",
        "chunk": "2",
        "timestamp": "40",
        "payload": base64.b64encode(b"\xff" * 160).decode(),
    },
}
FRAMES: list[dict[str, Any]] = [
    {"event": "connected", "protocol": "Call", "version": "1.0.0"},
    START,
    MEDIA,
    {"event": "dtmf", "streamSid": "MZ1", "dtmf": {"track": "inbound_track", "digit": "5"}},
    {"event": "mark", "streamSid": "MZ1", "mark": {"name": "0:item_1:200"}},
    {"event": "stop", "streamSid": "MZ1", "stop": {"callSid": "CA1"}},
]
NUMBERS = ["²", "①", "9" * 5000, "-1", "1.5", "٨٠", "", [], {}, 1.5, True, -3, 10**16]


def started_codec() -> MediaStreamCodec:
    codec = MediaStreamCodec()
    codec.receive(orjson.dumps(START).decode())
    return codec


@FUZZ
@given(mutations(FRAMES))
def test_any_value_in_any_field_never_raises(mutation: tuple[dict, tuple, Any]) -> None:
    template, path, value = mutation
    codec = MediaStreamCodec() if template is START else started_codec()
    codec.receive(orjson.dumps(put(template, path, value)).decode())


@FUZZ_LIGHT
@given(st.sampled_from(["timestamp", "chunk"]), st.sampled_from(NUMBERS) | json_values)
def test_a_number_int_cannot_read_is_a_counted_violation(field: str, value: Any) -> None:
    codec = started_codec()
    event = codec.receive(orjson.dumps(put(MEDIA, ("media", field), value)).decode())
    digits = isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 15
    number = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**15
    if value is None or digits or number:
        assert isinstance(event, CallerAudio)
    else:
        assert isinstance(event, ProtocolViolation) and codec.violations["media_invalid"] == 1


@FUZZ_LIGHT
@given(json_values | st.binary(max_size=64).map(lambda b: b.decode("latin-1")))
def test_any_frame_is_handled(value: Any) -> None:
    codec = started_codec()
    codec.receive(value if isinstance(value, str) else orjson.dumps(value).decode())


@FUZZ_LIGHT
@given(st.text(max_size=40) | st.sampled_from(["²:a:1", "①:a:1", "9" * 5000 + ":a:1", "0:a"]))
def test_any_mark_name_is_applied_or_ignored(name: str) -> None:
    ledger = PlaybackLedger()
    mark = ledger.audio_sent("item_1", 200.0, now=0.0)
    assert ledger.mark_played(name, now=0.1) == (name == mark)
