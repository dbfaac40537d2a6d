"""The shared playout queue: marks echo when the sender passes them; clear flushes."""

from __future__ import annotations

from service.telephony.playout import PlayoutBuffer


def test_marks_echo_when_playback_passes_them_and_clear_echoes_the_rest() -> None:
    buffer = PlayoutBuffer()
    assert buffer.enqueue_mark("early") == ["early"]  # nothing queued ahead
    buffer.enqueue_audio(b"\x01" * 320)
    buffer.enqueue_mark("a")
    buffer.enqueue_audio(b"\x02" * 320)
    buffer.enqueue_mark("b")
    audio, marks = buffer.advance(160)
    assert (len(audio), marks) == (160, [])
    audio, marks = buffer.advance(160)
    assert marks == ["a"]
    assert buffer.clear() == ["b"]
    assert buffer.advance(160) == (b"", []) and buffer.played_ms == 40
