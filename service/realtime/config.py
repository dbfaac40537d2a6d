"""What a realtime session is asked to be: backend-neutral settings for one call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

AudioMode = Literal["transcode", "passthrough"]


@dataclass(frozen=True, slots=True)
class VadSettings:
    """Server VAD (protocols.md B.1 ``audio.input.turn_detection``)."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    idle_timeout_ms: int | None = None


@dataclass(frozen=True, slots=True)
class SessionConfig:
    model: str = "gpt-realtime"
    instructions: str = "You are a helpful phone assistant. Keep answers short."
    voice: str = "marin"
    greeting: str = "Greet the caller briefly and ask how you can help."
    audio_mode: AudioMode = "transcode"
    vad: VadSettings = field(default_factory=VadSettings)
    transcription_model: str | None = None
    tools: tuple[dict[str, Any], ...] = ()
