"""Speech-to-text of committed turns with faster-whisper (Whisper tiny.en, int8, CPU).

Settings, and why:

* greedy decoding (``beam_size=1``): beam 5 costs ~2x the time on 2 cores and changes
  nothing we act on in phone-length turns;
* ``without_timestamps`` and no conditioning on previous text: a turn is a few seconds, so
  timestamps are noise and conditioning only spreads one turn's mistakes to the next;
* an ``initial_prompt`` in which numbers are read digit by digit: without it tiny.en writes
  "four two one seven" as "for 217" about as often as "4217"; with it, it mostly writes
  separate digits, which :func:`service.agent.hotline.orders.spoken_digits` reads back;
* no Whisper VAD filter: the session already cut the turn with Silero.

Memory: the turn's samples (as float32, at most ``max_seconds``) while it is transcribed; the
model is shared (:mod:`.models`).
"""

from __future__ import annotations

import numpy as np
import soxr
import structlog

from service.modelserver.engine.models import whisper_model

__all__ = ["DIGIT_PROMPT", "WhisperTranscriber"]

log = structlog.get_logger(__name__)

RATE = 16_000
DIGIT_PROMPT = "Order status call. Numbers are read one digit at a time, like 3 8 5 0."


class WhisperTranscriber:
    """:class:`~service.modelserver.engine.base.Transcriber` with faster-whisper."""

    def __init__(self, prompt: str = DIGIT_PROMPT, max_seconds: float = 30.0) -> None:
        self.prompt = prompt
        self.max_seconds = max_seconds  # Whisper's window; anything longer is cut

    def warm(self) -> None:
        """Load the model and run it once (the first run allocates its buffers)."""
        self.transcribe(bytes(RATE // 2 * 2), RATE)

    def transcribe(self, pcm: bytes, rate: int) -> str:
        samples = np.frombuffer(pcm[: len(pcm) & ~1], dtype="<i2").astype(np.float32) / 32768.0
        samples = samples[: int(self.max_seconds * rate)]
        if samples.size < rate // 10:  # under 100 ms: nothing a person said
            return ""
        if rate != RATE:
            samples = soxr.resample(samples, rate, RATE).astype(np.float32)
        segments, _info = whisper_model().transcribe(
            samples,
            language="en",
            beam_size=1,
            without_timestamps=True,
            condition_on_previous_text=False,
            initial_prompt=self.prompt or None,
            vad_filter=False,
        )
        # Whisper's "no speech" guess is unreliable on short phone turns; a segment it is
        # sure holds no speech is dropped, the rest kept.
        text = " ".join(s.text.strip() for s in segments if s.no_speech_prob < 0.9)
        return text.strip()
