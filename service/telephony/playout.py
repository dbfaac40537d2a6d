"""The playout queue an edge keeps when it plays audio itself (SIP): ``service.audio.playout``."""

from service.audio.playout import BYTES_PER_MS, MarkRecord, PlayoutBuffer

__all__ = ["BYTES_PER_MS", "MarkRecord", "PlayoutBuffer"]
