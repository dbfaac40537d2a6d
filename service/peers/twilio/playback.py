"""Twilio's outbound playback queue as the softphone models it (protocols.md A.3): audio played
in order at real time, marks echoed when reached (or at once with nothing queued ahead), a
``clear`` dropping the queue and echoing every pending mark. One implementation serves the
softphone and the SIP edge: ``service.audio.playout``."""

from service.audio.playout import BYTES_PER_MS, MarkRecord
from service.audio.playout import PlayoutBuffer as PlaybackBuffer

__all__ = ["BYTES_PER_MS", "MarkRecord", "PlaybackBuffer"]
