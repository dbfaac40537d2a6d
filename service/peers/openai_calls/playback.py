"""What OpenAI does with a SIP call's output audio, sans-I/O (sip-and-outbound.md 1.4).

The model's audio deltas go to the caller's media leg, not to the sideband; the sideband
hears ``output_audio_buffer.started`` at a response's first audio, ``.stopped`` once the
buffer has played out (after ``response.done``), and ``.cleared`` when the caller's speech
(server VAD) or a client ``output_audio_buffer.clear`` drops what was left.

Memory: one small record per response still playing.
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass
from typing import Any

__all__ = ["OutputBuffer"]

PCM16_24K_BYTES_PER_MS = 48


@dataclass
class _Playing:
    ends_at: float  # when the last of its audio received so far will have played
    done: bool = False


class OutputBuffer:
    """One queue per call: a response's audio plays after what was queued before it.
    ``rate``: playback speed (1.0 real time; tests play faster)."""

    def __init__(self, rate: float = 1.0, bytes_per_ms: float = PCM16_24K_BYTES_PER_MS) -> None:
        self.rate = rate
        self.bytes_per_ms = bytes_per_ms
        self.playing: dict[str, _Playing] = {}
        self.queue_ends_at = 0.0  # when everything queued so far will have played
        self._ids = itertools.count(1)

    def _event(self, kind: str, response_id: str) -> dict[str, Any]:
        return {"type": kind, "event_id": f"evt_ob_{next(self._ids)}", "response_id": response_id}

    def audio(self, response_id: str, delta_b64: str, now: float) -> list[dict[str, Any]]:
        """A delta went to the caller; ``started`` if it is the response's first."""
        ms = len(base64.b64decode(delta_b64)) / self.bytes_per_ms
        self.queue_ends_at = max(self.queue_ends_at, now) + ms / 1000 / self.rate
        playing = self.playing.get(response_id)
        if playing is None:
            self.playing[response_id] = _Playing(self.queue_ends_at)
            return [self._event("output_audio_buffer.started", response_id)]
        playing.ends_at = self.queue_ends_at
        return []

    def response_done(self, response_id: str) -> float | None:
        """When (same clock as ``now``) the response's audio will have played out."""
        playing = self.playing.get(response_id)
        if playing is None:
            return None
        playing.done = True
        return playing.ends_at

    def played_out(self, response_id: str) -> list[dict[str, Any]]:
        if self.playing.pop(response_id, None) is None:
            return []
        return [self._event("output_audio_buffer.stopped", response_id)]

    def clear(self) -> list[dict[str, Any]]:
        """The caller talked over the agent (or the client asked): drop everything queued."""
        events = [self._event("output_audio_buffer.cleared", rid) for rid in self.playing]
        self.playing.clear()
        self.queue_ends_at = 0.0
        return events
