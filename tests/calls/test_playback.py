"""The playback ledger without sockets: marks → what the caller heard (DESIGN "Barge-in")."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from service.calls.playback import PlaybackLedger, Truncation


def test_marks_advance_heard_and_nothing_to_truncate_once_all_heard() -> None:
    ledger = PlaybackLedger()
    marks = [ledger.audio_sent("item_a", 100, now=0.0) for _ in range(3)]
    assert marks == ["0:item_a:100", "0:item_a:200", "0:item_a:300"]
    for i, mark in enumerate(marks, start=1):
        assert ledger.mark_played(mark, now=0.1 * i)
    assert not ledger.playing
    assert ledger.heard_ms("item_a", now=1.0) == 300
    assert ledger.interrupt(now=1.0) == []


def test_interpolates_between_marks() -> None:
    ledger = PlaybackLedger()
    first = ledger.audio_sent("item_a", 200, now=0.0)
    ledger.audio_sent("item_a", 200, now=0.0)
    assert ledger.heard_ms("item_a", now=0.05) == 50
    assert ledger.mark_played(first, now=0.21)  # the carrier started a little late
    assert ledger.heard_ms("item_a", now=0.31) == 300
    assert ledger.heard_ms("item_a", now=5.0) == 400  # capped at the chunk's end
    assert ledger.interrupt(now=0.31) == [Truncation("item_a", 300, 400)]


def test_stale_marks_after_clear_are_ignored() -> None:
    ledger = PlaybackLedger()
    marks = [ledger.audio_sent("item_a", 100, now=0.0) for _ in range(5)]
    ledger.mark_played(marks[0], now=0.1)
    truncations = ledger.interrupt(now=0.15)
    assert truncations == [Truncation("item_a", 150, 500)]
    # The carrier echoes every pending mark on clear; none of them counts as heard.
    for mark in marks[1:]:
        assert not ledger.mark_played(mark, now=0.16)
    assert ledger.stale_marks == 4
    assert ledger.heard_ms("item_a", now=1.0) == 150
    assert ledger.generation == 1
    assert ledger.audio_sent("item_b", 100, now=1.0) == "1:item_b:100"


def test_clear_with_nothing_pending() -> None:
    ledger = PlaybackLedger()
    assert ledger.interrupt(now=0.0) == []
    assert ledger.generation == 1


def test_response_that_ended_before_the_barge_in_but_still_plays() -> None:
    # The model finished sending long ago; the carrier is still playing it.
    ledger = PlaybackLedger()
    marks = [ledger.audio_sent("item_a", 100, now=0.0) for _ in range(30)]  # 3 s in a burst
    for i, mark in enumerate(marks[:12], start=1):
        ledger.mark_played(mark, now=0.1 * i)
    assert ledger.interrupt(now=1.234) == [Truncation("item_a", 1234, 3000)]


def test_without_echoes_the_estimate_stops_at_the_playing_chunk_end() -> None:
    # A carrier that stalls sends no echoes: never claim more than the head chunk.
    ledger = PlaybackLedger()
    for _ in range(30):
        ledger.audio_sent("item_a", 100, now=0.0)
    assert ledger.interrupt(now=1.234) == [Truncation("item_a", 100, 3000)]


def test_interleaved_items_cut_the_playing_one_and_zero_the_queued_one() -> None:
    ledger = PlaybackLedger()
    a1 = ledger.audio_sent("item_a", 100, now=0.0)
    ledger.audio_sent("item_a", 100, now=0.0)
    ledger.audio_sent("item_b", 100, now=0.0)
    ledger.audio_sent("item_b", 100, now=0.0)
    ledger.mark_played(a1, now=0.1)
    assert ledger.interrupt(now=0.15) == [
        Truncation("item_a", 150, 200),
        Truncation("item_b", 0, 200),
    ]


def test_queue_that_ran_dry_restarts_the_clock_at_the_next_send() -> None:
    ledger = PlaybackLedger()
    ledger.mark_played(ledger.audio_sent("item_a", 100, now=0.0), now=0.1)
    ledger.audio_sent("item_a", 100, now=2.0)  # sent long after the queue emptied
    assert round(ledger.heard_ms("item_a", now=2.05)) == 150


def test_foreign_marks_are_not_ours() -> None:
    ledger = PlaybackLedger()
    ledger.audio_sent("item_a", 100, now=0.0)
    assert not ledger.mark_played("hello", now=0.0)
    assert not ledger.mark_played("0:item_zzz:5", now=0.0)
    assert ledger.unknown_marks == 2


@given(
    st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=30),
    st.integers(min_value=0, max_value=20_000),
)
def test_truncation_matches_real_time_playback(chunks: list[int], at_ms: int) -> None:
    """A carrier that echoes each mark on time: the cut is the wall-clock position."""
    ledger = PlaybackLedger()
    marks = [(ledger.audio_sent("item_a", ms, now=0.0), ms) for ms in chunks]
    played = 0
    for mark, ms in marks:
        if played + ms > at_ms:
            break
        played += ms
        ledger.mark_played(mark, now=played / 1000)
    truncations = ledger.interrupt(now=at_ms / 1000)
    if at_ms >= sum(chunks):
        assert truncations == []
    else:
        [cut] = truncations
        assert cut.sent_ms == sum(chunks)
        assert abs(cut.audio_end_ms - at_ms) <= 1
