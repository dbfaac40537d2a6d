"""Shared helpers for the local Realtime server's sans-I/O session tests (the ``d`` driver
fixture is in conftest.py)."""

from __future__ import annotations

from typing import Any

from service.audio.synthetic import SyntheticVoice

Event = dict[str, Any]
PCMU = {"type": "audio/pcmu"}


def speech(ms: int, rate: int) -> bytes:
    return b"".join(SyntheticVoice(seed=7).synthesize("caller speech here", ms, rate))


def silence(ms: int, rate: int) -> bytes:
    return bytes(rate * ms // 1000 * 2)
