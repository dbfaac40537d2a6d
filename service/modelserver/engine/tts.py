"""Streaming text-to-speech: Piper (neural, the default), espeak-ng (formant, light), and the
synthetic voice adapted to the streaming shape (deterministic, for tests).

All three yield one :class:`SpeechChunk` per sentence, synthesized only when the previous one
has been taken: the response streamer sends sentence 1 while sentence 2 is synthesized, and a
barge-in that closes the generator leaves the rest unsynthesized. The sentence being
synthesized at that moment is aborted too, through the :class:`StopSignal`: Piper's ONNX run
is terminated (``RunOptions.terminate``), espeak-ng's process killed — without that, a long
sentence kept a core busy for up to a second after the caller had started talking.

Memory: one sentence of audio at a time (a few hundred KB at most; sentences longer than
``MAX_SENTENCE_CHARS`` are split at commas first).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import threading
import wave
from collections.abc import Iterator
from typing import Any

import numpy as np
import soxr

from service.audio.synthetic import SyntheticVoice, Voice
from service.modelserver.engine.base import SpeechChunk, StopSignal
from service.modelserver.engine.models import piper_voice
from service.modelserver.script import MS_PER_WORD

__all__ = [
    "EspeakVoice",
    "PiperStreamingVoice",
    "SyntheticStreamingVoice",
    "speak",
    "split_sentences",
]

MAX_SENTENCE_CHARS = 160
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")
# espeak-ng (inside piper's phonemizer too) keeps global state and is not thread-safe.
_ESPEAK_LOCK = threading.Lock()


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``; an over-long one is split at clause punctuation, so the first
    audio never waits for a paragraph."""
    out: list[str] = []
    for sentence in _SENTENCE_END.split(text.strip()):
        if len(sentence) <= MAX_SENTENCE_CHARS:
            out.append(sentence)
            continue
        piece = ""
        for clause in _CLAUSE_END.split(sentence):
            if piece and len(piece) + 1 + len(clause) > MAX_SENTENCE_CHARS:
                out.append(piece)
                piece = ""
            piece = f"{piece} {clause}".strip()
        out.append(piece)
    return [s for s in out if s.strip()]


def _to_pcm16(samples: np.ndarray, source_rate: int, rate: int, volume: float) -> bytes:
    """Peak-normalise to ``volume`` (Piper's output level varies by sentence), resample."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > 1e-6:
        samples = samples * (volume / peak)
    if source_rate != rate:
        samples = soxr.resample(samples.astype(np.float32), source_rate, rate)
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


class PiperStreamingVoice:
    """Piper (VITS, ONNX) with the installed voice (:func:`.models.piper_voice`).

    ``noise_scale``/``noise_w_scale`` None keep the voice's own (natural, slightly random)
    settings; 0 makes synthesis deterministic (test callers). ``length_scale`` > 1 is slower.
    ``volume`` is the peak level (0.5 ≈ -6 dBFS peak, about -20 dBFS RMS: phone speech).
    """

    def __init__(
        self,
        *,
        volume: float = 0.5,
        length_scale: float | None = None,
        noise_scale: float | None = None,
        noise_w_scale: float | None = None,
        model_path: str | None = None,
    ) -> None:
        self.model_path = model_path  # None: the installed voice
        self.volume = volume
        self.length_scale = length_scale
        self.noise_scale = noise_scale
        self.noise_w_scale = noise_w_scale
        self.sentences = 0  # sentences synthesized by this object (tests, bench)

    def warm(self) -> None:
        for _ in self.stream("Hello.", 8000):
            pass

    def stream(self, text: str, rate: int, stop: StopSignal | None = None) -> Iterator[SpeechChunk]:
        voice = piper_voice(self.model_path)
        stop = stop or StopSignal()
        source_rate = voice.config.sample_rate
        for sentence in split_sentences(text):
            with _ESPEAK_LOCK:
                phonemes = voice.phonemize(sentence)
            parts = []
            for sentence_phonemes in phonemes:
                if not sentence_phonemes:
                    continue
                audio = self._synthesize(voice, voice.phonemes_to_ids(sentence_phonemes), stop)
                if audio is None:
                    return  # stopped mid-sentence
                parts.append(audio)
            if not parts:
                continue
            self.sentences += 1
            samples = np.concatenate(parts).astype(np.float32).reshape(-1)
            yield SpeechChunk(_to_pcm16(samples, source_rate, rate, self.volume), sentence)

    def _synthesize(self, voice: Any, ids: list[int], stop: StopSignal) -> np.ndarray | None:
        """One ONNX run of Piper's VITS model (the inputs ``PiperVoice.phoneme_ids_to_audio``
        builds), with run options ``stop`` can terminate; None if it was."""
        import onnxruntime

        config = voice.config
        scales = [
            config.noise_scale if self.noise_scale is None else self.noise_scale,
            config.length_scale if self.length_scale is None else self.length_scale,
            config.noise_w_scale if self.noise_w_scale is None else self.noise_w_scale,
        ]
        inputs = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array(scales, dtype=np.float32),
        }
        if config.num_speakers > 1:
            inputs["sid"] = np.array([config.default_speaker_id or 0], dtype=np.int64)
        options = onnxruntime.RunOptions()
        remove = stop.on_stop(lambda: setattr(options, "terminate", True))
        try:
            if stop.stopped:
                return None
            audio = voice.session.run(None, inputs, options)[0]
        except Exception:
            if stop.stopped:  # onnxruntime raises when a run is terminated
                return None
            raise
        finally:
            remove()
        return np.asarray(audio).reshape(-1)


class EspeakVoice:
    """espeak-ng (Debian package ``espeak-ng``) run per sentence: robotic but ~10 MB of RAM
    and instant. A separate process, so its GPL code is not linked into ours."""

    def __init__(self, voice: str = "en-us", words_per_minute: int = 165, volume: float = 0.5):
        self.binary = shutil.which("espeak-ng")
        self.voice = voice
        self.words_per_minute = words_per_minute
        self.volume = volume
        self.sentences = 0

    @staticmethod
    def available() -> bool:
        return shutil.which("espeak-ng") is not None

    def stream(self, text: str, rate: int, stop: StopSignal | None = None) -> Iterator[SpeechChunk]:
        if self.binary is None:
            raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
        stop = stop or StopSignal()
        for sentence in split_sentences(text):
            command = [self.binary, "-v", self.voice, "-s", str(self.words_per_minute), "--stdout"]
            process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            remove = stop.on_stop(process.kill)
            try:
                wav, _ = process.communicate(sentence.encode(), timeout=30)
            finally:
                remove()
            if stop.stopped:
                return
            if process.returncode:
                raise RuntimeError(f"espeak-ng failed with exit code {process.returncode}")
            with wave.open(io.BytesIO(wav)) as reader:
                source_rate = reader.getframerate()
                raw = reader.readframes(reader.getnframes())
            samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
            self.sentences += 1
            yield SpeechChunk(_to_pcm16(samples, source_rate, rate, self.volume), sentence)


class SyntheticStreamingVoice:
    """A :class:`Voice` (e.g. :class:`SyntheticVoice`) in the streaming shape: each sentence
    lasts ``MS_PER_WORD`` per word. Deterministic and model-free: the engine's protocol
    tests use it."""

    def __init__(self, voice: Voice | None = None, ms_per_word: int = MS_PER_WORD) -> None:
        self.voice = voice or SyntheticVoice()
        self.ms_per_word = ms_per_word
        self.sentences = 0

    def stream(self, text: str, rate: int, stop: StopSignal | None = None) -> Iterator[SpeechChunk]:
        for sentence in split_sentences(text):
            if stop is not None and stop.stopped:
                return
            duration = max(300, self.ms_per_word * len(sentence.split()))
            self.sentences += 1
            pcm = b"".join(self.voice.synthesize(sentence, duration, rate))
            yield SpeechChunk(pcm, sentence)


def speak(text: str, rate: int, *, length_scale: float | None = None) -> bytes:
    """All of ``text`` as PCM16 at ``rate``, by Piper with its randomness off: a test or
    bench caller whose audio is the same on every run."""
    voice = PiperStreamingVoice(noise_scale=0.0, noise_w_scale=0.0, length_scale=length_scale)
    return b"".join(chunk.pcm for chunk in voice.stream(text, rate))
