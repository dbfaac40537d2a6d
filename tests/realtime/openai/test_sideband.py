"""The OpenAI protocol core on a sideband: no audio formats, the vendor's playback and DTMF
events (sip-and-outbound.md 1.3, 1.4)."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import TypeAdapter

from service.realtime.backends import call_accept_session
from service.realtime.config import SessionConfig
from service.realtime.events import CallerDigit, PlaybackEnded, PlaybackStarted
from service.realtime.openai.protocol import OpenAIRealtimeProtocol
from service.realtime.openai.sideband import sideband_url
from tests.support.conformance import check_openai_client_event

TOOL = {"type": "function", "name": "ping", "description": "Ping.", "parameters": {}}
CONFIG = SessionConfig(transcription_model="gpt-4o-transcribe", tools=(TOOL,))


def test_sideband_session_names_no_audio_format_and_is_a_valid_update() -> None:
    protocol = OpenAIRealtimeProtocol(CONFIG, carries_audio=False)
    update = protocol.session_update()
    audio = update["session"]["audio"]
    assert "format" not in audio["input"]
    assert audio["output"] == {"voice": CONFIG.voice}
    assert audio["input"]["transcription"] == {"model": "gpt-4o-transcribe"}
    check_openai_client_event(update)


def test_the_accept_body_is_the_sdks_call_accept_params() -> None:
    from openai.types.realtime.call_accept_params import CallAcceptParams

    body: dict[str, Any] = call_accept_session(CONFIG)
    assert body["type"] == "realtime"
    assert body["model"] == CONFIG.model
    assert body["tools"] == [TOOL]
    assert set(body) <= set(CallAcceptParams.__annotations__)
    TypeAdapter(CallAcceptParams).validate_python(body)


def test_output_audio_buffer_and_dtmf_events_become_neutral_events() -> None:
    protocol = OpenAIRealtimeProtocol(CONFIG, carries_audio=False)
    started = {"type": "output_audio_buffer.started", "event_id": "e1", "response_id": "r1"}
    stopped = {"type": "output_audio_buffer.stopped", "event_id": "e2", "response_id": "r1"}
    cleared = {"type": "output_audio_buffer.cleared", "event_id": "e3", "response_id": "r2"}
    dtmf = {
        "type": "input_audio_buffer.dtmf_event_received",
        "event": "#",
        "received_at": 1,
    }
    assert protocol.receive(orjson.dumps(started)) == [PlaybackStarted("r1")]
    assert protocol.receive(orjson.dumps(stopped)) == [PlaybackEnded("r1", cleared=False)]
    assert protocol.receive(orjson.dumps(cleared)) == [PlaybackEnded("r2", cleared=True)]
    assert protocol.receive(orjson.dumps(dtmf)) == [CallerDigit("#")]
    assert protocol.unknown_events == 0


def test_sideband_url_carries_the_call_id_and_no_model() -> None:
    assert sideband_url("wss://api.openai.com/v1/realtime", "rtc_a b") == (
        "wss://api.openai.com/v1/realtime?call_id=rtc_a%20b"
    )
    assert sideband_url("ws://h/v1/realtime?x=1", "rtc_1").endswith("?x=1&call_id=rtc_1")
