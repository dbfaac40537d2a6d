"""Protocol-faithful stand-ins for the parties we cannot reach from here, for tests and demos.

Rules: a peer speaks a public wire protocol (Twilio Media Streams, Gemini Live) and checks
what it receives against the vendor's own SDK types where one exists. It may import
``service.audio`` and other peers; never the product (``telephony``, ``realtime``, ``calls``,
``agent``, ``store``) — a peer that borrowed our client's constants could not catch our
mistakes. ``loopback.py`` is the websockets server base both servers share.
"""
