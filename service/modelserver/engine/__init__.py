"""The local server's offline speech engine: Silero VAD → Whisper STT → a brain (an
OpenAI-compatible LLM, or the built-in hotline dialogue) → Piper TTS, streamed.

Configured from a typed :class:`service.settings.Settings` (the environment variables in
brackets are the public names; the engine itself reads no environment):

* ``local_engine`` [``LOCAL_ENGINE``] = ``speech`` | ``synthetic``; empty: ``speech`` if the
  ``[local]`` extra is installed, else ``synthetic`` (the scripted server, synthetic audio);
* ``local_tts`` [``LOCAL_TTS``] = ``piper`` | ``espeak``; ``local_tts_voice``
  [``LOCAL_TTS_VOICE``] and ``local_stt_model`` [``LOCAL_STT_MODEL``] name other models;
* ``llm_base_url`` [``LLM_BASE_URL``] (+ ``LLM_API_KEY``, ``LLM_MODEL``): the brain is that
  endpoint, streamed; unset: the built-in hotline dialogue engine (:mod:`.hotline_brain`);
* ``local_early_stt_ms`` [``LOCAL_EARLY_STT_MS``] (200; ``off``): start transcribing once the
  caller has paused this long, before the VAD's silence duration confirms the end of turn;
* ``local_stt_beam_size`` / ``local_stt_alternatives``: digits turns' beam and how many of
  its hypotheses may be chosen by the slot's length (:mod:`.stt`).

A server is given its engine (``LocalRealtimeServer(script, engine=…)``) and every session
attaches to it (:meth:`SpeechEngine.attach`); the script stays a script.

Importing this package loads no model; :meth:`SpeechEngine.warm` (or the first call) does.
"""

from __future__ import annotations

from collections.abc import Callable

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
from service.settings import Settings

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


def engine_kind(settings: Settings) -> str:
    """``speech`` or ``synthetic`` (see the module docstring)."""
    kind = settings.local_engine
    if not kind:
        return "speech" if speech_available() else "synthetic"
    if kind == "speech" and not speech_available():
        missing = ", ".join(missing_modules())
        raise RuntimeError(
            f"LOCAL_ENGINE=speech needs the [local] extra (missing: {missing}); "
            "install it with: pip install '.[local]'"
        )
    return kind


def speech_engine(
    settings: Settings,
    *,
    brain_factory: Callable[[], Brain] | None = None,
    voice: StreamingVoice | None = None,
    transcriber: Transcriber | None = None,
) -> SpeechEngine:
    """A :class:`SpeechEngine` configured from ``settings``; each part can be replaced
    (tests pass a canned transcriber or a synthetic voice)."""
    if brain_factory is None:
        from service.modelserver.engine.llm_brain import LlmBrain, llm_config

        config = llm_config(settings)
        if config is not None:
            brain_factory = lambda: LlmBrain(config)  # noqa: E731
        else:
            from service.modelserver.engine.hotline_brain import HotlineBrain

            brain_factory = HotlineBrain
    if voice is None:
        from service.modelserver.engine.tts import EspeakVoice, PiperStreamingVoice

        model = settings.local_tts_voice or None
        voice = (
            EspeakVoice()
            if settings.local_tts == "espeak"
            else PiperStreamingVoice(model_path=model)
        )
    if transcriber is None:
        from service.modelserver.engine.stt import WhisperTranscriber

        transcriber = WhisperTranscriber(
            beam_size=settings.local_stt_beam_size,
            alternatives=settings.local_stt_alternatives,
            model_path=settings.local_stt_model or None,
        )
    return SpeechEngine(
        transcriber=transcriber,
        voice=voice,
        brain_factory=brain_factory,
        early_stt_ms=settings.local_early_stt_ms,
    )


def default_engine(settings: Settings) -> SpeechEngine | None:
    """The engine a local server runs when none is given explicitly: the speech engine, or
    None for the scripted server with synthetic audio (see :func:`engine_kind`)."""
    if engine_kind(settings) == "speech":
        return speech_engine(settings)
    return None
