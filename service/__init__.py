"""Telephony voice agent service: phone calls bridged to realtime speech models."""

__version__ = "0.1.0"
