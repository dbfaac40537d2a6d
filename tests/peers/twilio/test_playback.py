"""PlaybackBuffer: Twilio's outbound queue semantics (protocols.md A.3), sans-I/O."""

from __future__ import annotations

import pytest

from service.peers.twilio.playback import PlaybackBuffer


def audio(n: int, value: int = 0x10) -> bytes:
    return bytes([value]) * n


def test_mark_on_empty_buffer_is_due_immediately() -> None:
    pb = PlaybackBuffer()
    assert pb.enqueue_mark("m0") == ["m0"]
    assert pb.marks_echoed == 1
    assert pb.pending_marks == 0
    rec = pb.mark_records[0]
    assert (rec.name, rec.played_ms_at_echo, rec.cleared) == ("m0", 0.0, False)


def test_mark_after_fully_played_audio_is_due_immediately() -> None:
    pb = PlaybackBuffer()
    pb.enqueue_audio(audio(160))
    assert pb.advance(160) == (audio(160), [])
    assert pb.enqueue_mark("late") == ["late"]
    assert pb.mark_records[0].played_ms_at_echo == 20.0


def test_mark_behind_audio_waits_until_played() -> None:
    pb = PlaybackBuffer()
    pb.enqueue_audio(audio(400))
    assert pb.enqueue_mark("a") == []
    assert pb.pending_marks == 1
    assert pb.pending_mark_names == ["a"]
    played, marks = pb.advance(160)
    assert (len(played), marks) == (160, [])
    played, marks = pb.advance(160)
    assert (len(played), marks) == (160, [])
    played, marks = pb.advance(160)
    # Only 80 bytes were left; the mark right after them is reached in the same call.
    assert (len(played), marks) == (80, ["a"])
    assert pb.mark_records[0].played_ms_at_echo == 50.0
    assert pb.pending_marks == 0


def test_mark_exactly_at_boundary_is_reached_in_that_advance() -> None:
    pb = PlaybackBuffer()
    pb.enqueue_audio(audio(160))
    pb.enqueue_mark("edge")
    pb.enqueue_audio(audio(160))
    assert pb.advance(160) == (audio(160), ["edge"])
    assert pb.advance(160) == (audio(160), [])


def test_marks_reached_in_order_across_chunks() -> None:
    pb = PlaybackBuffer()
    for i in range(5):
        pb.enqueue_audio(audio(100, value=i))
        pb.enqueue_mark(f"m{i}")
    played, marks = pb.advance(250)
    assert marks == ["m0", "m1"]
    assert played == audio(100, 0) + audio(100, 1) + audio(50, 2)
    played, marks = pb.advance(1000)
    assert marks == ["m2", "m3", "m4"]
    assert played == audio(50, 2) + audio(100, 3) + audio(100, 4)
    assert [r.played_ms_at_echo for r in pb.mark_records] == [12.5, 25.0, 37.5, 50.0, 62.5]


def test_consecutive_marks_without_audio_between() -> None:
    pb = PlaybackBuffer()
    pb.enqueue_audio(audio(8))
    pb.enqueue_mark("x")
    pb.enqueue_mark("y")
    assert pb.advance(4) == (audio(4), [])
    assert pb.advance(4) == (audio(4), ["x", "y"])


def test_partial_advances_preserve_byte_order() -> None:
    pb = PlaybackBuffer()
    data = bytes(range(256)) * 3
    pb.enqueue_audio(data[:100])
    pb.enqueue_audio(data[100:500])
    pb.enqueue_audio(data[500:])
    out = b""
    for step in (1, 7, 160, 33, 99, 250, 1000):
        played, _ = pb.advance(step)
        out += played
    assert out == data
    assert pb.buffered_bytes == 0
    assert pb.advance(160) == (b"", [])


def test_advance_zero_and_empty() -> None:
    pb = PlaybackBuffer()
    assert pb.advance(0) == (b"", [])
    assert pb.advance(160) == (b"", [])
    pb.enqueue_audio(audio(10))
    assert pb.advance(0) == (b"", [])
    assert pb.buffered_bytes == 10


def test_clear_drops_audio_and_echoes_all_pending_marks() -> None:
    pb = PlaybackBuffer()
    pb.enqueue_audio(audio(800))
    pb.enqueue_mark("a")
    pb.enqueue_audio(audio(800))
    pb.enqueue_mark("b")
    pb.enqueue_mark("c")
    pb.advance(160)
    assert pb.clear() == ["a", "b", "c"]
    assert pb.buffered_bytes == 0
    assert pb.cleared_bytes == 1600 - 160
    assert pb.cleared_ms == (1600 - 160) / 8
    assert pb.marks_echoed == 3
    assert pb.marks_cleared == 3
    assert pb.clears == 1
    assert all(r.cleared and r.played_ms_at_echo == 20.0 for r in pb.mark_records)
    # Nothing left: playback yields nothing, a new mark is due at once again.
    assert pb.advance(160) == (b"", [])
    assert pb.enqueue_mark("d") == ["d"]
    assert pb.mark_records[-1].cleared is False


def test_clear_on_empty_buffer_and_repeated_clears() -> None:
    pb = PlaybackBuffer()
    assert pb.clear() == []
    pb.enqueue_audio(audio(10))
    assert pb.clear() == []
    assert pb.clears == 2
    assert pb.cleared_bytes == 10


def test_audio_after_clear_plays_from_its_start() -> None:
    pb = PlaybackBuffer()
    pb.enqueue_audio(audio(300, 1))
    pb.advance(100)  # mid-chunk offset must be reset by clear
    pb.clear()
    pb.enqueue_audio(audio(50, 2))
    assert pb.advance(160) == (audio(50, 2), [])


def test_counters() -> None:
    pb = PlaybackBuffer()
    pb.enqueue_audio(audio(8000))  # 1 s
    pb.enqueue_mark("one")
    pb.enqueue_audio(audio(4000))
    pb.enqueue_mark("two")
    for _ in range(60):  # 1.2 s of ticks
        pb.advance(160)
    assert pb.enqueued_bytes == 12000
    assert pb.played_bytes == 9600
    assert pb.played_ms == 1200.0
    assert pb.buffered_ms == 300.0
    assert pb.marks_enqueued == 2
    assert pb.marks_echoed == 1
    pb.clear()
    assert pb.cleared_bytes == 2400
    assert pb.marks_echoed == 2
    assert [(r.name, r.played_ms_at_echo, r.cleared) for r in pb.mark_records] == [
        ("one", 1000.0, False),
        ("two", 1200.0, True),
    ]
    assert pb.mark_records[1].enqueued_at_played_ms == 0.0


def test_overflow_drops_the_excess_and_counts_it() -> None:
    pb = PlaybackBuffer(max_buffered_ms=100)  # 800 bytes
    assert pb.enqueue_audio(audio(500)) == 500
    assert pb.enqueue_audio(audio(500)) == 300
    assert pb.enqueue_audio(audio(10)) == 0
    assert pb.overflow_bytes == 210
    assert pb.buffered_bytes == 800
    pb.advance(160)
    assert pb.enqueue_audio(audio(200)) == 160


def test_mark_records_are_capped() -> None:
    pb = PlaybackBuffer(max_mark_records=3)
    for i in range(5):
        pb.enqueue_mark(str(i))
    assert [r.name for r in pb.mark_records] == ["2", "3", "4"]
    assert pb.mark_records_dropped == 2
    assert pb.marks_echoed == 5


@pytest.mark.parametrize("chunk", [1, 13, 160, 8000])
def test_real_time_ticks_play_exactly_what_was_sent(chunk: int) -> None:
    pb = PlaybackBuffer()
    sent = 0
    for i in range(0, 8000, chunk):
        n = min(chunk, 8000 - i)
        pb.enqueue_audio(audio(n))
        sent += n
    pb.enqueue_mark("end")
    reached_at = None
    for tick in range(1, 60):
        _, marks = pb.advance(160)
        if marks:
            reached_at = tick
    assert sent == 8000
    assert reached_at == 50  # 1 s of audio = 50 ticks of 20 ms
