"""Sans-I/O energy VAD: the local server's ``turn_detection`` (B.1, B.4), and the worker's
own ear for barge-in over audio a model has finished sending (Gemini).

Time is the *input audio* clock: milliseconds of audio written since the session started,
computed from sample counts, never from the wall clock (B.4: "ms measured on the input stream
since session start"). Per the SDK docstrings, ``audio_start_ms`` includes ``prefix_padding_ms``
and ``audio_end_ms`` includes ``silence_duration_ms`` (it is where the silence was confirmed).

Memory: less than one frame of carried PCM plus a few counters, whatever the stream length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["EnergyVad", "VadParams", "VoiceStarted", "VoiceStopped", "threshold_dbfs"]


@dataclass(frozen=True)
class VadParams:
    """The ``server_vad`` knobs (B.1 defaults)."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500


@dataclass(frozen=True)
class VoiceStarted:
    audio_start_ms: int  # where speech began minus prefix padding, clamped at 0
    detected_ms: int  # input clock when the VAD decided


@dataclass(frozen=True)
class VoiceStopped:
    audio_end_ms: int  # end of the confirming silence (= last voiced frame + silence duration)
    speech_end_ms: int  # end of the last voiced frame


VadEvent = VoiceStarted | VoiceStopped


def threshold_dbfs(threshold: float) -> float:
    """Map OpenAI's 0–1 ``threshold`` to a frame RMS level: 0 → -60, 0.5 → -40, 1 → -20 dBFS.

    Phone speech sits around -30…-15 dBFS RMS and line noise below -55, so the default 0.5
    separates them, and "higher = needs louder audio" holds as documented.
    """
    return -60.0 + 40.0 * min(1.0, max(0.0, threshold))


def frame_dbfs(samples: np.ndarray) -> float:
    """RMS level of int16 samples in dBFS (-inf for digital silence)."""
    if samples.size == 0:
        return -math.inf
    rms = math.sqrt(float(np.mean(np.square(samples.astype(np.float64)))))
    return 20.0 * math.log10(rms / 32768.0) if rms > 0 else -math.inf


class EnergyVad:
    """Frame-based energy detector with hysteresis.

    Invariants: speech starts after ``min_speech_ms`` of consecutive frames at or above the
    threshold; while in speech, frames down to ``hangover_db`` below the threshold still count
    as voiced (syllable dips do not end a turn); speech stops after ``silence_duration_ms`` of
    unvoiced frames. Events alternate start/stop, starting with start.
    """

    def __init__(
        self,
        rate: int,
        params: VadParams | None = None,
        *,
        start_ms: float = 0.0,
        frame_ms: int = 20,
        min_speech_ms: int = 60,
        hangover_db: float = 6.0,
    ) -> None:
        self.rate = rate
        self.params = params or VadParams()
        self.frame_samples = rate * frame_ms // 1000
        self.frame_ms = frame_ms
        self.min_speech_ms = min_speech_ms
        self.hangover_db = hangover_db
        self._start_ms = start_ms
        self._samples = 0  # samples consumed (whole frames only)
        self._carry = b""
        self.in_speech = False
        self._run_ms = 0  # voiced run (before start) or silence run (during speech)
        self._run_start_ms = 0.0
        self._last_voiced_end_ms = 0.0

    @property
    def position_ms(self) -> float:
        return self._start_ms + self._samples * 1000.0 / self.rate

    def configure(self, params: VadParams) -> None:
        """New thresholds take effect from the next frame; the speech state is kept."""
        self.params = params

    def reset(self) -> None:
        """Forget an ongoing utterance (``input_audio_buffer.clear``/manual commit)."""
        self.in_speech = False
        self._run_ms = 0

    def process(self, pcm: bytes) -> list[VadEvent]:
        """Feed PCM16 LE mono at :attr:`rate`; returns the events these samples completed."""
        data = self._carry + pcm
        frame_bytes = self.frame_samples * 2
        whole = len(data) - len(data) % frame_bytes
        self._carry = data[whole:]
        if not whole:
            return []
        frames = np.frombuffer(data[:whole], dtype="<i2").reshape(-1, self.frame_samples)
        power = np.mean(np.square(frames.astype(np.float64)), axis=1) / 32768.0**2
        with np.errstate(divide="ignore"):  # digital silence is -inf dBFS
            levels = 10.0 * np.log10(power)
        events: list[VadEvent] = []
        on = threshold_dbfs(self.params.threshold)
        for level in levels.tolist():
            event = self._frame(level >= on, level >= on - self.hangover_db)
            if event is not None:
                events.append(event)
        return events

    def _frame(self, voiced: bool, held: bool) -> VadEvent | None:
        """Advance the clock by one frame and the turn state by its verdict: ``voiced`` starts
        (or continues) speech, ``held`` (a looser test) keeps speech going. Shared with the
        Silero VAD (engine/silero.py), so both detectors end turns by the same rules."""
        begin = self.position_ms
        self._samples += self.frame_samples
        end = self.position_ms
        if not self.in_speech:
            if voiced:
                if self._run_ms == 0:
                    self._run_start_ms = begin
                self._run_ms += self.frame_ms
                if self._run_ms >= self.min_speech_ms:
                    self.in_speech = True
                    self._run_ms = 0
                    self._last_voiced_end_ms = end
                    start = max(0.0, self._run_start_ms - self.params.prefix_padding_ms)
                    return VoiceStarted(int(start), int(end))
            else:
                self._run_ms = 0
        elif held:
            self._run_ms = 0
            self._last_voiced_end_ms = end
        else:
            self._run_ms += self.frame_ms
            if self._run_ms >= self.params.silence_duration_ms:
                self.in_speech = False
                self._run_ms = 0
                return VoiceStopped(int(end), int(self._last_voiced_end_ms))
        return None

    @property
    def silence_ms(self) -> int:
        """How long the current pause in speech has lasted (0 outside speech): the session
        starts transcribing early once a pause looks like the end of the turn."""
        return self._run_ms if self.in_speech else 0
