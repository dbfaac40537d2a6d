"""WAV files on the phone line: any 16-bit PCM WAV → 8 kHz mono μ-law."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from service.audio.g711 import pcm16_to_ulaw
from service.audio.resample import StreamResampler

__all__ = ["clip_to_8k", "load_wav_as_ulaw"]


def load_wav_as_ulaw(path: str | Path) -> bytes:
    """Read a 16-bit PCM WAV (any rate, mono or stereo) → 8 kHz mono μ-law bytes.

    Memory: the whole file is decoded at once (input size + 8 KB per second of output).
    """
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
        channels, rate = w.getnchannels(), w.getframerate()
        raw = w.readframes(w.getnframes())
    samples = np.frombuffer(raw, dtype="<i2")
    if channels > 1:
        # Average the channels (int32 to avoid overflow) — a phone line is mono.
        samples = samples[: len(samples) - len(samples) % channels].reshape(-1, channels)
        samples = (samples.astype(np.int32).sum(axis=1) // channels).astype("<i2")
    return pcm16_to_ulaw(clip_to_8k(samples.tobytes(), rate))


def clip_to_8k(pcm: bytes, rate: int) -> bytes:
    """A whole PCM16 clip at ``rate`` → 8 kHz, starting on time and exactly as long."""
    if rate == 8000:
        return pcm
    rs = StreamResampler(rate, 8000)
    out = rs.process(pcm) + rs.flush()
    # A whole file is converted at once, so the filter's fixed delay can be taken back out:
    # the caller's speech starts on time and lasts exactly as long as the file.
    skip = round(rs.delay_ms * 8) * 2
    length = (len(pcm) // 2 * 8000 // rate) * 2
    return out[skip : skip + length]
