"""A-law ↔ μ-law as byte tables (ITU-T G.711 §3 defines both as 8-bit codes of the same
13/14-bit samples), so a PCMA call costs one ``bytes.translate`` per packet each way.

audioop builds the tables once (3.13+: ``audioop-lts``, same API).
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = ["ALAW_TO_ULAW", "ULAW_TO_ALAW"]

_ALL_CODES = bytes(range(256))
ALAW_TO_ULAW = audioop.lin2ulaw(audioop.alaw2lin(_ALL_CODES, 2), 2)
ULAW_TO_ALAW = audioop.lin2alaw(audioop.ulaw2lin(_ALL_CODES, 2), 2)
