"""Sans-I/O echo gate: is this caller frame just the agent's own voice coming back?

On a speakerphone or a poor line the agent's audio returns in the caller's audio some tens of
ms after it was played, quieter. Where the worker decides barge-in itself (its own VAD over a
reply that was fully sent but still plays: the Gemini path), that echo would make the agent
interrupt itself. The gate keeps the level of every 20 ms frame of agent audio in playback
order; a caller frame whose level is ``margin_db`` or more below the loudest agent frame played
``min_delay_ms``…``max_delay_ms`` earlier is taken for echo, and the VAD hears silence in its
place. A caller really talking over the agent is at least as loud as the echo path lets the
agent be (a −15 dB echo leaves a real voice 15 dB clear), so it passes.

Energy ratio, not correlation: a max over ~9 frame levels per caller frame, no FFT. Its
trade-off: a caller speaking much more quietly than the echo of the agent (a whisper under a
loud speakerphone) is gated too, until the agent's audio stops.

Time: positions are ms of agent audio in playback order. The worker gives ``played_ms`` (sent
so far minus what the carrier still has queued, from the playback ledger); audio discarded
by a clear is taken back with ``discard_unplayed``.

Memory per call: one float per 20 ms of agent audio sent and not yet played (plus the last
``max_delay_ms``), at most ``history_ms / 20`` (3 000, a minute queued at the carrier), and
under one frame of carry.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from service.audio.g711 import ulaw_to_pcm16

__all__ = ["EchoGate"]

FRAME_MS = 20
FRAME_BYTES = 160  # 20 ms of 8 kHz μ-law


def _level_db(ulaw: bytes) -> float:
    samples = np.frombuffer(ulaw_to_pcm16(ulaw), dtype=np.int16).astype(np.float64)
    if samples.size == 0:
        return -math.inf
    power = float(np.mean(np.square(samples)))
    return 10.0 * math.log10(power / 32768.0**2) if power > 0 else -math.inf


class EchoGate:
    def __init__(
        self,
        *,
        min_delay_ms: int = 40,
        max_delay_ms: int = 200,
        margin_db: float = 8.0,
        history_ms: int = 60_000,
    ) -> None:
        self.min_delay_ms = min_delay_ms
        self.max_delay_ms = max_delay_ms
        self.margin_db = margin_db
        # Invariant: _levels[i] is the agent frame covering
        # [sent_ms - FRAME_MS * (len - i), sent_ms - FRAME_MS * (len - i - 1)).
        self._levels: deque[float] = deque(maxlen=max(1, history_ms // FRAME_MS))
        self._carry = b""
        self.sent_ms = 0
        self.echo_frames = 0

    def agent_audio(self, ulaw: bytes) -> None:
        """μ-law agent audio sent to the carrier, in order."""
        data = self._carry + ulaw
        whole = len(data) - len(data) % FRAME_BYTES
        for start in range(0, whole, FRAME_BYTES):
            self._levels.append(_level_db(data[start : start + FRAME_BYTES]))
            self.sent_ms += FRAME_MS
        self._carry = data[whole:]

    def discard_unplayed(self, queued_ms: float) -> None:
        """The carrier dropped ``queued_ms`` of queued agent audio (a clear): never played."""
        frames = min(len(self._levels), round(queued_ms / FRAME_MS))
        for _ in range(frames):
            self._levels.pop()
        self.sent_ms -= frames * FRAME_MS
        self._carry = b""

    def _forget_before(self, position_ms: float) -> None:
        """Frames that ended before ``position_ms`` can no longer be echoing."""
        base = self.sent_ms - FRAME_MS * len(self._levels)
        while self._levels and base + FRAME_MS <= position_ms:
            self._levels.popleft()
            base += FRAME_MS

    def reference_db(self, played_ms: float) -> float:
        """The loudest agent frame that could be echoing now (-inf if none)."""
        base = self.sent_ms - FRAME_MS * len(self._levels)
        first = math.floor((played_ms - self.max_delay_ms - FRAME_MS - base) / FRAME_MS)
        last = math.ceil((played_ms - self.min_delay_ms - base) / FRAME_MS)
        first, last = max(0, first), min(len(self._levels), last)
        if first >= last:
            return -math.inf
        return max(self._levels[i] for i in range(first, last))

    def is_echo(self, ulaw: bytes, played_ms: float) -> bool:
        """True when this caller frame is quiet enough, next to what was just played, to be
        the agent's echo (the VAD should not hear it as the caller)."""
        self._forget_before(played_ms - self.max_delay_ms - FRAME_MS)
        reference = self.reference_db(played_ms)
        if reference == -math.inf:
            return False
        echo = _level_db(ulaw) < reference - self.margin_db
        self.echo_frames += echo
        return echo
