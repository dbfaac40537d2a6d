"""The contract between the call worker and any realtime model edge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from service.realtime.events import ModelAudioFormat, ModelEvent

__all__ = ["ModelSession"]


class ModelSession(Protocol):
    """What the worker needs from a model edge (OpenAI, Azure, Gemini, the local engine).

    An edge may also set ``detects_speech_during_playback = False`` (Gemini): the worker then
    runs its own VAD on caller audio while a fully sent reply is still playing.
    """

    @property
    def audio_format(self) -> ModelAudioFormat:
        """What the model's audio arrives in."""
        ...

    @property
    def input_format(self) -> ModelAudioFormat:
        """What the model wants caller audio in."""
        ...

    @property
    def active_response_id(self) -> str | None: ...
    async def open(self, greeting: str | None = None) -> None: ...
    def events(self) -> AsyncIterator[ModelEvent]: ...
    async def send_audio(self, audio: bytes) -> bool: ...
    async def create_response(
        self, instructions: str | None = None, *, purpose: str = "", out_of_band: bool = False
    ) -> bool: ...
    async def send_user_text(self, text: str) -> bool: ...
    async def truncate(self, item_id: str, audio_end_ms: int) -> bool: ...
    async def cancel_response(self) -> bool: ...
    async def function_output(self, call_id: str, output: str) -> bool: ...
    async def close(self) -> None: ...
