"""A SIP phone for tests and demos: places a call over UDP, speaks μ-law RTP, records what it
hears, sends RFC 4733 digits, hangs up or cancels. It speaks only the wire (RFC 3261/3550/4733)
and imports nothing of the product."""

from service.peers.sip.phone import HeardPacket, SipPhone

__all__ = ["HeardPacket", "SipPhone"]
