"""The middle: one call worker per call, holding all turn-taking policy.

Rules: ``factory.py`` builds a call for any carrier edge; ``worker.py`` decides; the sans-I/O
cores beside it (``responses.py`` the response slot, ``playback.py`` the mark ledger,
``dtmf.py``, ``ear.py``) hold its state machines; ``tools.py`` runs tool calls. The middle
may import ``telephony.events``, ``realtime`` (events, session, backends), ``agent``, ``store``
and ``audio``; it never imports a carrier folder (``telephony.twilio``…) or a vendor's wire.
"""
