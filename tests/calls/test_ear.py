"""Ear latency: from the caller stopping to the first reply audio reaching their ear."""

from __future__ import annotations

from service.calls.ear import EarLatency


def test_ear_latency_times_the_first_reply_chunk_only() -> None:
    ear = EarLatency()
    assert ear.mark_played("0:item:100", now=1.0) is None  # nothing being timed
    ear.speech_stopped(now=10.0)
    ear.chunk_sent("0:item_b:100", service_s=0.0004)
    ear.chunk_sent("0:item_b:200", service_s=0.0009)  # later chunks do not move the target
    assert ear.mark_played("0:item_b:200", now=11.0) is None
    assert ear.mark_played("0:item_b:100", now=10.8) == (0.8000000000000007, 0.0004)
    assert ear.mark_played("0:item_b:100", now=11.0) is None  # measured once


def test_chunks_before_the_caller_stops_are_not_timed() -> None:
    ear = EarLatency()
    ear.chunk_sent("0:greeting:100", service_s=0.001)
    assert ear.mark_played("0:greeting:100", now=1.0) is None
