"""The local server's offline speech engine: Silero VAD → Whisper STT → a brain (an
OpenAI-compatible LLM, or the built-in hotline dialogue) → Piper TTS, streamed.

Selection (read from ``settings`` attributes if given, else the environment):

* ``LOCAL_ENGINE`` = ``speech`` | ``synthetic``; unset: ``speech`` if the ``[local]`` extra
  is installed, else ``synthetic`` (the scripted server with synthetic audio);
* ``LOCAL_TTS`` = ``piper`` (default) | ``espeak`` (Debian ``espeak-ng``; lighter, robotic);
* ``LLM_BASE_URL`` (+ ``LLM_API_KEY``, ``LLM_MODEL``): the brain is that endpoint; unset: the
  built-in hotline dialogue engine (:mod:`.hotline_brain`);
* ``LOCAL_EARLY_STT_MS`` (default 200; ``off``): start transcribing once the caller has
  paused this long, before the VAD's silence duration confirms the end of the turn.

A server is given its engine (``LocalRealtimeServer(script, engine=…)``) and every session
attaches to it (:meth:`SpeechEngine.attach`); the script stays a script.

Importing this package loads no model; :meth:`SpeechEngine.warm` (or the first call) does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from service.modelserver.engine.base import (
    Brain,
    BrainRequest,
    Decision,
    SpeechChunk,
    StreamingVoice,
    Transcriber,
)
from service.modelserver.engine.engine import EngineSession, SpeechEngine
from service.modelserver.engine.models import missing_modules, speech_available

__all__ = [
    "Brain",
    "BrainRequest",
    "Decision",
    "EngineSession",
    "SpeechChunk",
    "SpeechEngine",
    "StreamingVoice",
    "Transcriber",
    "default_engine",
    "engine_kind",
    "speech_engine",
]

ENGINES = ("speech", "synthetic")


def _setting(settings: Any, env: Mapping[str, str], name: str) -> str:
    value = getattr(settings, name.lower(), None) if settings is not None else None
    return str(value or env.get(name, "") or "").strip()


def engine_kind(settings: Any = None, env: Mapping[str, str] | None = None) -> str:
    """``speech`` or ``synthetic`` (see the module docstring); ``ValueError`` for others."""
    env = os.environ if env is None else env
    kind = _setting(settings, env, "LOCAL_ENGINE").lower()
    if not kind:
        return "speech" if speech_available() else "synthetic"
    if kind not in ENGINES:
        raise ValueError(f"LOCAL_ENGINE must be one of {', '.join(ENGINES)}, not {kind!r}")
    if kind == "speech" and not speech_available():
        missing = ", ".join(missing_modules())
        raise RuntimeError(
            f"LOCAL_ENGINE=speech needs the [local] extra (missing: {missing}); "
            "install it with: pip install '.[local]'"
        )
    return kind


def speech_engine(
    settings: Any = None,
    env: Mapping[str, str] | None = None,
    *,
    brain_factory: Callable[[], Brain] | None = None,
    voice: StreamingVoice | None = None,
    transcriber: Transcriber | None = None,
) -> SpeechEngine:
    """A :class:`SpeechEngine` configured from settings/environment; each part can be
    replaced (tests pass a canned transcriber or a synthetic voice)."""
    env = os.environ if env is None else env
    if brain_factory is None:
        from service.modelserver.engine.llm_brain import LlmBrain, llm_config

        config = llm_config(settings, env)
        if config is not None:
            brain_factory = lambda: LlmBrain(config)  # noqa: E731
        else:
            from service.modelserver.engine.hotline_brain import HotlineBrain

            brain_factory = HotlineBrain
    if voice is None:
        from service.modelserver.engine.tts import EspeakVoice, PiperStreamingVoice

        tts = _setting(settings, env, "LOCAL_TTS").lower() or "piper"
        if tts not in ("piper", "espeak"):
            raise ValueError(f"LOCAL_TTS must be piper or espeak, not {tts!r}")
        voice = EspeakVoice() if tts == "espeak" else PiperStreamingVoice()
    if transcriber is None:
        from service.modelserver.engine.stt import WhisperTranscriber

        transcriber = WhisperTranscriber()
    early = _setting(settings, env, "LOCAL_EARLY_STT_MS").lower()
    return SpeechEngine(
        transcriber=transcriber,
        voice=voice,
        brain_factory=brain_factory,
        early_stt_ms=None if early in ("off", "0") else int(early or 200),
    )


def default_engine(
    settings: Any = None, env: Mapping[str, str] | None = None
) -> SpeechEngine | None:
    """The engine a local server runs when none is given explicitly: the speech engine, or
    None for the scripted server with synthetic audio (see :func:`engine_kind`)."""
    if engine_kind(settings, env) == "speech":
        return speech_engine(settings, env)
    return None
