"""Carrier edges: wire messages ↔ neutral caller events and commands.

Rules (checked by ``tests/test_architecture.py``):

* What lives here: one folder per carrier (``twilio/`` today; ``sip/``, ``browser/`` next),
  each only translating its wire to ``events`` and back and carrying out the worker's
  commands (play, mark, clear, hang up, transfer) its own way; ``events.py`` (the neutral
  vocabulary) and ``numbers.py`` (dialling rules that belong to no carrier).
* A carrier edge may import ``telephony.events``, ``telephony.numbers``, ``calls.factory``
  (to start a call), ``services``, ``store`` and ``settings``; never ``realtime`` or
  ``agent``, and never the worker itself.
* A new carrier: a folder here with a sans-I/O codec, an asyncio runner that calls
  ``services.factory.start(started, send)`` when its media is up, and a route in ``app.py``.
"""
