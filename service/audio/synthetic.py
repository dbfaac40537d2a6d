"""What the local server "says": a small synthesis interface and a speech-like generator.

:class:`Voice` is the seam where a real TTS plugs in later. :class:`SyntheticVoice` makes audio
that *behaves* like speech for a phone pipeline — voiced syllables (a harmonic series at a
120–180 Hz pitch shaped by two formant bumps) at ~4 syllables/s, short consonant gaps and word
pauses well under the default 500 ms VAD silence — at about -18 dBFS RMS while voiced, far above
the VAD threshold (-40 dBFS at threshold 0.5, see vad.py), so a loopback test detects it as one
utterance. Deterministic: the same (seed, text, duration, rate) gives the same bytes.

Memory: a syllable plan of ~5 entries per second of audio; samples are generated per chunk.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["SyntheticVoice", "Voice"]


@runtime_checkable
class Voice(Protocol):
    """Speech synthesis as the response streamer needs it."""

    def synthesize(self, text: str, duration_ms: int, rate: int) -> Iterator[bytes]:
        """PCM16 LE mono chunks at ``rate`` totalling exactly ``duration_ms`` of audio
        (``rate * duration_ms // 1000`` samples). Chunk sizes are up to the voice."""
        ...


class SyntheticVoice:
    """Deterministic speech-like audio (see module docstring)."""

    def __init__(self, seed: int = 0, level_dbfs: float = -18.0, chunk_ms: int = 20) -> None:
        self.seed = seed
        self.level_dbfs = level_dbfs
        self.chunk_ms = chunk_ms

    def _plan(self, rng: np.random.Generator, total: int, rate: int) -> np.ndarray:
        """Rows of (start, end, voiced, f0_begin, f0_end, F1, F2) in samples/Hz."""
        rows: list[tuple[float, ...]] = []
        pos = 0
        base_f0 = rng.uniform(135.0, 165.0)
        while pos < total:
            syllable = int(rng.uniform(0.14, 0.26) * rate)
            declination = 1.0 - 0.15 * pos / max(total, 1)  # pitch drifts down over a sentence
            f0a = base_f0 * declination * rng.uniform(0.92, 1.1)
            f0b = f0a * rng.uniform(0.9, 1.08)
            rows.append(
                (pos, pos + syllable, 1.0, f0a, f0b, rng.uniform(350, 800), rng.uniform(900, 2200))
            )
            pos += syllable
            # Word boundaries pause longer than the consonant gaps inside words.
            gap_s = rng.uniform(0.09, 0.18) if rng.random() < 0.3 else rng.uniform(0.025, 0.06)
            rows.append((pos, pos + int(gap_s * rate), 0.0, 0.0, 0.0, 0.0, 0.0))
            pos += int(gap_s * rate)
        return np.array(rows, dtype=np.float64)

    def synthesize(self, text: str, duration_ms: int, rate: int) -> Iterator[bytes]:
        total = rate * max(0, duration_ms) // 1000
        rng = np.random.default_rng([self.seed, zlib.crc32(text.encode()), duration_ms, rate])
        plan = self._plan(rng, total, rate)
        starts = plan[:, 0]
        target_rms = 32768.0 * 10 ** (self.level_dbfs / 20.0)
        noise_rms = 32768.0 * 10 ** ((self.level_dbfs - 22.0) / 20.0)
        top = min(3800.0, 0.45 * rate)  # keep harmonics inside the band (8 kHz phone audio)
        harmonics = np.arange(1, int(top / 100.0) + 1, dtype=np.float64)[:, None]
        fade = max(1, rate // 50)  # 20 ms fade-out so the end does not click
        step = max(1, rate * self.chunk_ms // 1000)
        phase = 0.0
        for a in range(0, total, step):
            idx = np.arange(a, min(a + step, total), dtype=np.float64)
            seg = np.searchsorted(starts, idx, side="right") - 1
            row = plan[seg]
            length = np.maximum(row[:, 1] - row[:, 0], 1.0)
            frac = (idx - row[:, 0]) / length
            voiced = row[:, 2] > 0
            f0 = np.where(voiced, row[:, 3] + (row[:, 4] - row[:, 3]) * frac, 120.0)
            phases = phase + 2 * math.pi * np.cumsum(f0) / rate
            phase = float(phases[-1] % (2 * math.pi))
            freqs = harmonics * f0[None, :]
            gains = (
                np.exp(-(((freqs - row[:, 5]) / 160.0) ** 2))
                + 0.6 * np.exp(-(((freqs - row[:, 6]) / 260.0) ** 2))
                + 0.15 / (1.0 + freqs / 400.0)  # glottal spectral tilt
            ) * (freqs < top)
            norm = np.sqrt(np.sum(gains**2, axis=0) / 2.0) + 1e-9
            tone = np.sum(gains * np.sin(harmonics * phases[None, :]), axis=0) / norm
            envelope = np.where(voiced, np.sin(math.pi * frac) ** 0.5, 0.0)
            consonant = np.where(voiced, 0.0, np.sin(math.pi * frac)) * rng.standard_normal(
                idx.size
            )
            signal = tone * envelope * target_rms * 1.25 + consonant * noise_rms
            tail = total - idx
            signal *= np.clip(tail / fade, 0.0, 1.0)
            yield np.clip(signal, -32768, 32767).astype("<i2").tobytes()
