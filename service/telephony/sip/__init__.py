"""SIP trunk edge (RFC 3261 over UDP, G.711 RTP): the sans-I/O protocol — messages
(``message``), SDP (``sdp``), digest (``digest``), dialogs and actions (``dialog``), the user
agent (``endpoint`` for calls we answer, ``outbound`` for calls we place, ``registration``),
RTP (``rtp``, ``g711``) — and the asyncio side: ``server`` (the UDP socket and call set-up),
``call`` (one call's media and its bridge to the worker), ``clock`` (the 20 ms media clock).
See ``service.telephony`` for the rules."""
