"""Softphone: a Twilio-protocol client that calls our server the way Twilio would.

Used by tests, the CLI (``python -m service call``) and the load generator. ``playback`` and
``media`` are sans-I/O; ``client`` does the asyncio HTTP + WebSocket part (protocols.md A).
Like every peer it speaks only the wire: it imports ``audio`` and nothing of the product.
"""

from service.audio.wav import load_wav_as_ulaw
from service.peers.twilio.client import Softphone, parse_dtmf_schedule, place_call
from service.peers.twilio.playback import MarkRecord, PlaybackBuffer
from service.peers.twilio.summary import CallSummary
from service.peers.twilio.twiml import SoftphoneError, TwimlPlan, TwimlVerb, parse_twiml

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
