"""G.711 μ-law ↔ PCM16 little-endian (protocols.md F.2, F.3).

audioop is in the standard library up to 3.12 and comes from ``audioop-lts`` on 3.13+.
"""

from __future__ import annotations

import sys
import warnings

with warnings.catch_warnings():
    # Deprecated since 3.11 (PEP 594); the 3.13+ wheel ``audioop-lts`` keeps the same API.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = ["ULAW_SILENCE", "pcm16_to_ulaw", "ulaw_to_pcm16"]

ULAW_SILENCE = 0xFF
_BIG_ENDIAN = sys.byteorder == "big"


def ulaw_to_pcm16(ulaw: bytes) -> bytes:
    """Decode μ-law bytes to PCM16 LE (two output bytes per input byte)."""
    pcm = audioop.ulaw2lin(ulaw, 2)
    return audioop.byteswap(pcm, 2) if _BIG_ENDIAN else pcm


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    """Encode PCM16 LE to μ-law. ``pcm`` must hold whole samples (even length)."""
    if _BIG_ENDIAN:
        pcm = audioop.byteswap(pcm, 2)
    return audioop.lin2ulaw(pcm, 2)
