"""Streaming resampler (placeholder: audioop.ratecv; replaced by the measured design)."""

from __future__ import annotations

from service.audio.g711 import audioop


class StreamResampler:
    """PCM16 LE mono, one instance per direction per call. Odd byte counts are carried."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._state = None
        self._carry = b""

    def process(self, pcm: bytes) -> bytes:
        data = self._carry + pcm
        whole = len(data) & ~1
        self._carry = data[whole:]
        if self.in_rate == self.out_rate:
            return data[:whole]
        out, self._state = audioop.ratecv(
            data[:whole], 2, 1, self.in_rate, self.out_rate, self._state
        )
        return out

    def flush(self) -> bytes:
        self._carry = b""
        return b""
