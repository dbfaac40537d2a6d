"""The load generator's model voice: cheap, and exactly as long as asked."""

from __future__ import annotations

import pytest

from service.loadtest.model import DELTA_MS, LoopedVoice, worst_case_script


@pytest.mark.parametrize("duration_ms", [0, 20, 1500, 7001])
@pytest.mark.parametrize("rate", [8000, 24000])
def test_looped_voice_gives_exactly_the_duration_in_delta_sized_pieces(
    duration_ms: int, rate: int
) -> None:
    pieces = list(LoopedVoice().synthesize("hello there", duration_ms, rate))
    assert sum(map(len, pieces)) == rate * duration_ms // 1000 * 2
    assert all(0 < len(p) <= rate * DELTA_MS // 1000 * 2 for p in pieces)
    assert all(len(p) % 2 == 0 for p in pieces)


def test_the_worst_case_script_streams_20_ms_deltas_in_real_time() -> None:
    script = worst_case_script(reply_ms=60_000)
    assert (script.chunk_ms, script.pace) == (20, 1.0)
    assert script.default_reply.audio_ms == 60_000
