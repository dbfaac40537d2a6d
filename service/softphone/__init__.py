"""Softphone: a Twilio-protocol client that calls our server the way Twilio would.

Used by tests, the CLI and the load generator. ``playback`` and ``media`` are sans-I/O;
``client`` does the asyncio HTTP + WebSocket part (protocols.md section A).
"""

from service.softphone.client import (
    CallSummary,
    Softphone,
    SoftphoneError,
    TwimlPlan,
    TwimlVerb,
    load_wav_as_ulaw,
    parse_dtmf_schedule,
    parse_twiml,
    place_call,
)
from service.softphone.playback import MarkRecord, PlaybackBuffer

__all__ = [
    "CallSummary",
    "MarkRecord",
    "PlaybackBuffer",
    "Softphone",
    "SoftphoneError",
    "TwimlPlan",
    "TwimlVerb",
    "load_wav_as_ulaw",
    "parse_dtmf_schedule",
    "parse_twiml",
    "place_call",
]
