"""The ``none`` backend: a model session that hears the caller and never speaks.

It lets a call run with no model configured (the line stays open until the caller hangs up)
while the worker keeps one code path: there is always a model, sometimes a silent one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from service.realtime.events import ULAW_8K, ModelAudioFormat, ModelClosed, ModelEvent, Purpose

__all__ = ["SilentModel"]


class SilentModel:
    """Keeps the ``ModelSession`` contract with no model behind it. Memory: none per frame."""

    detects_speech_during_playback = True
    can_reopen = False

    def __init__(self) -> None:
        self._closed = asyncio.Event()

    @property
    def audio_format(self) -> ModelAudioFormat:
        return ULAW_8K  # passthrough: caller frames are neither decoded nor resampled

    @property
    def input_format(self) -> ModelAudioFormat:
        return ULAW_8K

    @property
    def active_response_id(self) -> str | None:
        return None

    async def open(self, greeting: str | None = None) -> None:
        return None

    async def events(self) -> AsyncIterator[ModelEvent]:
        await self._closed.wait()
        yield ModelClosed("closed")

    async def send_audio(self, audio: bytes) -> bool:
        return True

    async def create_response(
        self,
        instructions: str | None = None,
        *,
        purpose: Purpose | None = None,
        out_of_band: bool = False,
    ) -> bool:
        return False

    async def send_user_text(self, text: str) -> bool:
        return False

    async def truncate(self, item_id: str, audio_end_ms: int) -> bool:
        return False

    async def cancel_response(self) -> bool:
        return False

    async def function_output(self, call_id: str, output: str) -> bool:
        return False

    async def close(self) -> None:
        self._closed.set()
