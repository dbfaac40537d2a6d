"""Silero VAD (v6, ONNX through onnxruntime) with the same turn rules as the energy VAD.

The caller's audio (8 kHz G.711 or 24 kHz PCM) is resampled to 16 kHz with a streaming
``soxr`` resampler and cut into 512-sample (32 ms) windows; each window, with the previous
64 samples as context and the model's recurrent state, gives a speech probability. A window
is *voiced* at ``probability >= threshold`` (OpenAI's ``threshold`` keeps its meaning: higher
needs clearer speech) and *held* — still speech once a turn has started — at
``threshold - 0.15``, Silero's own hysteresis. Turn start/stop, prefix padding and silence
duration are :class:`EnergyVad`'s rules (shared ``_frame``), on the session's input clock.

Why Silero rather than the energy VAD for real calls: energy cannot tell a voice from a
door slam or line hum at speech level; Silero rejects those (white noise scores < 0.1 where
speech scores > 0.9). The scripted engine keeps the energy VAD, whose frame-exact timings
the protocol tests assert.

Memory per connection: the resampler's few-ms delay line, < 1 window of carried samples,
and two 128-float state vectors.
"""

from __future__ import annotations

import numpy as np
import soxr

from service.audio.vad import EnergyVad, VadEvent, VadParams
from service.modelserver.engine.models import silero_session

__all__ = ["SileroVad"]

RATE = 16_000
WINDOW = 512  # samples at 16 kHz: 32 ms
CONTEXT = 64
HYSTERESIS = 0.15


class SileroVad(EnergyVad):
    """A drop-in for :class:`EnergyVad` (``process``/``configure``/``reset``/``in_speech``)."""

    def __init__(
        self,
        rate: int,
        params: VadParams | None = None,
        *,
        start_ms: float = 0.0,
        min_speech_ms: int = 96,
    ) -> None:
        # The state machine counts 16 kHz windows; the input rate only matters to resampling.
        super().__init__(RATE, params, start_ms=start_ms, frame_ms=32, min_speech_ms=min_speech_ms)
        self.frame_samples = WINDOW
        self.input_rate = rate
        self._session = silero_session()
        self._resampler = (
            soxr.ResampleStream(rate, RATE, 1, dtype="float32", quality="HQ")
            if rate != RATE
            else None
        )
        self._pending = np.zeros(0, dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self.last_probability = 0.0

    def process(self, pcm: bytes) -> list[VadEvent]:
        samples = np.frombuffer(pcm[: len(pcm) & ~1], dtype="<i2").astype(np.float32) / 32768.0
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        data = np.concatenate([self._pending, samples])
        whole = len(data) - len(data) % WINDOW
        self._pending = data[whole:]
        events: list[VadEvent] = []
        on = self.params.threshold
        for start in range(0, whole, WINDOW):
            window = data[start : start + WINDOW]
            probability = self._probability(window)
            event = self._frame(probability >= on, probability >= on - HYSTERESIS)
            if event is not None:
                events.append(event)
        return events

    def _probability(self, window: np.ndarray) -> float:
        x = np.concatenate([self._context, window])[None, :]
        out, self._h, self._c = self._session.run(None, {"input": x, "h": self._h, "c": self._c})
        self._context = window[-CONTEXT:]
        self.last_probability = float(np.asarray(out).reshape(-1)[0])
        return self.last_probability
