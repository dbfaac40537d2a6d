"""Twilio Programmable Voice edge: Media Streams codec (``media``), its runner (``stream``),
TwiML (``twiml``), webhooks, signatures and tokens (``security``), and the REST client
(``rest``) that carries out hang-ups and transfers. See ``service.telephony`` for the rules."""
