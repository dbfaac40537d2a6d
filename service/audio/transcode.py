"""Per-call, per-direction transcoders between Twilio μ-law 8 kHz and model PCM16.

Each instance owns one ``StreamResampler`` (see its docstring for memory and delay), so
create one per direction per call and never share it (protocols.md F.3).  At 8 kHz the
resampler is an identity and adds no delay.
"""

from __future__ import annotations

from service.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from service.audio.resample import StreamResampler

__all__ = ["PcmToUlaw", "UlawToPcm"]


class UlawToPcm:
    """Caller → model: μ-law 8 kHz bytes → PCM16 LE at ``out_rate`` (8000/16000/24000)."""

    def __init__(self, out_rate: int) -> None:
        self._resampler = StreamResampler(8000, out_rate)
        self.out_rate = out_rate

    @property
    def delay_ms(self) -> float:
        return self._resampler.delay_ms

    def convert(self, ulaw: bytes) -> bytes:
        # μ-law is one byte per sample, so there is never a partial sample to carry here.
        return self._resampler.process(ulaw_to_pcm16(ulaw))

    def flush(self) -> bytes:
        """PCM16 still held by the resampler at the end of the stream."""
        return self._resampler.flush()


class PcmToUlaw:
    """Model → caller: PCM16 LE at ``in_rate`` → μ-law 8 kHz bytes; odd bytes are carried."""

    def __init__(self, in_rate: int) -> None:
        self._resampler = StreamResampler(in_rate, 8000)
        self.in_rate = in_rate

    @property
    def delay_ms(self) -> float:
        return self._resampler.delay_ms

    def convert(self, pcm: bytes) -> bytes:
        return pcm16_to_ulaw(self._resampler.process(pcm))

    def flush(self) -> bytes:
        """μ-law for the audio still held by the resampler at the end of the stream."""
        return pcm16_to_ulaw(self._resampler.flush())
