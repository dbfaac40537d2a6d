"""The load generator: ``python -m service loadtest`` (see :mod:`.run`).

Rules: like a peer, the load generator speaks only the wire. It starts the service and a pool
of synthetic model servers as separate processes (``python -m service serve``,
``python -m service.loadtest.model``), places calls with the Twilio softphone
(:mod:`service.peers.twilio`) and reads the service's ``GET /stats`` and /proc. It never imports
the product (``telephony``, ``realtime``, ``calls``, ``agent``, ``store``, ``app``,
``serving``): a load generator that shared the service's code could not catch its mistakes,
and must not share its process either (its CPU would be counted as the service's).
"""
