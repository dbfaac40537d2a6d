"""The load generator end to end on loopback: a real service, model pool and redis-server."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from service.loadtest.report import call_failure, render
from service.loadtest.run import LoadSpec, run_load

pytestmark = pytest.mark.network


def test_two_calls_measure_the_service(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outcome = run_load(LoadSpec(calls=2, seconds=6, mode="transcode"), tmp_path)
    assert outcome.error is None, outcome.error
    assert [call_failure(r) for r in outcome.results] == [None, None]
    assert outcome.svc_cpu_s is not None and outcome.svc_cpu_s > 0
    assert outcome.calls_per_core is not None
    assert outcome.stats["latency"]["caller_to_model_ms"]["count"] > 0
    assert sum(r.summary.frames_received for r in outcome.results if r.summary) > 0
    render([outcome], Console(width=200))
    assert "calls/core" in capsys.readouterr().out
