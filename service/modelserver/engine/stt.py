"""Speech-to-text of committed turns with faster-whisper (Whisper tiny.en, int8, CPU).

Two ways of hearing a turn, chosen by what the agent just asked (:mod:`.slots`):

* **conversation** (no number expected): greedy decoding, the prompt "numbers are read one
  digit at a time, like 3 8 5 0", temperature 0. Greedy because beam 5 buys nothing on
  yes/no/"which carrier" turns; temperature 0 because the fallback to sampling never changed
  a transcript we act on in the study but made the slowest turn 3.7 s instead of 0.4 s.
* **digits** (an order number or ZIP was asked for): the study's best setting — a prompt in
  which digits are spelled as comma-separated *words* (Whisper then writes "nine, four, one,
  oh, seven" rather than "9 for 107"), beam 5, temperature 0 — and the beam's five
  hypotheses, not only the best: :func:`.slots.choose` takes the first that reads as a
  number of the slot's length. One beam search yields all five, so this costs no more than
  beam 5 alone.

Both: ``without_timestamps``, no conditioning on previous text (a turn is a few seconds;
conditioning only spreads one turn's mistakes), no Whisper VAD (Silero already cut the turn),
and a segment Whisper is sure holds no speech (``no_speech_prob >= 0.9``) is dropped.

Memory: the turn's samples (float32, at most ``max_seconds``) and one 30 s mel window while
it is transcribed; the model is shared (:mod:`.models`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import soxr
import structlog

from service.modelserver.engine.models import whisper_model
from service.modelserver.engine.slots import Heard, Slot, choose

__all__ = ["DIGITS_PROMPT", "DIGIT_PROMPT", "WhisperTranscriber"]

log = structlog.get_logger(__name__)

RATE = 16_000
DIGIT_PROMPT = "Order status call. Numbers are read one digit at a time, like 3 8 5 0."
DIGITS_PROMPT = (
    "Order number: five, three, eight, two. Zip code: nine, four, one, oh, seven. Thank you."
)
NO_SPEECH = 0.9


class WhisperTranscriber:
    """:class:`~service.modelserver.engine.base.SlotTranscriber` with faster-whisper.

    ``model_path``: a CTranslate2 Whisper directory (None: the installed tiny.en).
    ``alternatives``: beam hypotheses considered for a slot (1: the best only)."""

    def __init__(
        self,
        prompt: str = DIGIT_PROMPT,
        *,
        digits_prompt: str = DIGITS_PROMPT,
        beam_size: int = 5,
        alternatives: int = 5,
        model_path: str | None = None,
        max_seconds: float = 30.0,
    ) -> None:
        self.prompt = prompt
        self.digits_prompt = digits_prompt
        self.beam_size = beam_size
        self.alternatives = max(1, min(alternatives, beam_size))
        self.model_path = model_path
        self.max_seconds = max_seconds  # Whisper's window; anything longer is cut

    def warm(self) -> None:
        """Load the model and run it once (the first run allocates its buffers)."""
        self.transcribe(bytes(RATE // 2 * 2), RATE)

    def _samples(self, pcm: bytes, rate: int) -> np.ndarray | None:
        samples = np.frombuffer(pcm[: len(pcm) & ~1], dtype="<i2").astype(np.float32) / 32768.0
        samples = samples[: int(self.max_seconds * rate)]
        if samples.size < rate // 10:  # under 100 ms: nothing a person said
            return None
        if rate != RATE:
            samples = soxr.resample(samples, rate, RATE).astype(np.float32)
        return samples

    def transcribe(self, pcm: bytes, rate: int) -> str:
        return self.hear(pcm, rate, None).text

    def hear(self, pcm: bytes, rate: int, slot: Slot | None) -> Heard:
        samples = self._samples(pcm, rate)
        if samples is None:
            return Heard("", slot=slot)
        if slot is None:
            return Heard(self._conversation(samples))
        return choose(self.hypotheses(samples), slot)

    def _conversation(self, samples: np.ndarray) -> str:
        segments, _info = whisper_model(self.model_path).transcribe(
            samples,
            language="en",
            beam_size=1,
            temperature=0.0,
            without_timestamps=True,
            condition_on_previous_text=False,
            initial_prompt=self.prompt or None,
            vad_filter=False,
        )
        # Whisper's "no speech" guess is unreliable on short phone turns; a segment it is
        # sure holds no speech is dropped, the rest kept.
        text = " ".join(s.text.strip() for s in segments if s.no_speech_prob < NO_SPEECH)
        return text.strip()

    def hypotheses(self, samples: np.ndarray, prompt: str | None = None) -> list[str]:
        """The beam's hypotheses (best first) for one ≤ 30 s turn at 16 kHz, decoded with
        the digits prompt. A turn with no speech gives ``[]``."""
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        model = whisper_model(self.model_path)
        features = pad_or_trim(model.feature_extractor(samples)[..., :-1])
        encoded = model.encode(features)
        tokenizer = Tokenizer(
            model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en"
        )
        words = " " + (prompt if prompt is not None else self.digits_prompt).strip()
        request = model.get_prompt(tokenizer, tokenizer.encode(words), without_timestamps=True)
        result: Any = model.model.generate(
            encoded,
            [request],
            beam_size=self.beam_size,
            num_hypotheses=self.alternatives,
            max_length=model.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, (-1,)),
        )[0]
        if result.no_speech_prob >= NO_SPEECH:
            return []
        texts = [tokenizer.decode(ids).strip() for ids in result.sequences_ids]
        return [t for t in texts if t] or [""]
