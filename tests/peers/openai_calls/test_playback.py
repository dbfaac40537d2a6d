"""The stand-in's model of OpenAI's output audio buffer on a SIP call (1.4)."""

from __future__ import annotations

import base64

from service.peers.openai_calls.playback import OutputBuffer


def ms_of_audio(ms: int) -> str:
    return base64.b64encode(b"\0" * (48 * ms)).decode()  # PCM16 24 kHz


def test_a_response_starts_at_its_first_delta_and_stops_once_played_out() -> None:
    buffer = OutputBuffer()
    started = buffer.audio("r1", ms_of_audio(500), now=10.0)
    assert [e["type"] for e in started] == ["output_audio_buffer.started"]
    assert started[0]["response_id"] == "r1"
    assert buffer.audio("r1", ms_of_audio(500), now=10.1) == []
    assert buffer.response_done("r1") == 11.0
    assert [e["type"] for e in buffer.played_out("r1")] == ["output_audio_buffer.stopped"]
    assert buffer.played_out("r1") == []


def test_responses_queue_behind_each_other() -> None:
    buffer = OutputBuffer(rate=2.0)
    buffer.audio("r1", ms_of_audio(1000), now=0.0)
    buffer.audio("r2", ms_of_audio(1000), now=0.1)
    assert buffer.response_done("r1") == 0.5
    assert buffer.response_done("r2") == 1.0


def test_clear_drops_everything_queued() -> None:
    buffer = OutputBuffer()
    buffer.audio("r1", ms_of_audio(1000), now=0.0)
    buffer.audio("r2", ms_of_audio(1000), now=0.0)
    cleared = buffer.clear()
    assert [(e["type"], e["response_id"]) for e in cleared] == [
        ("output_audio_buffer.cleared", "r1"),
        ("output_audio_buffer.cleared", "r2"),
    ]
    assert buffer.played_out("r1") == []
    assert buffer.response_done("r2") is None
