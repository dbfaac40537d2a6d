"""The operator API (``/v1/*``, ``GET /calls/{sid}``): bearer-token routes for people and
their scripts, as opposed to the carrier webhooks (which carry the carrier's signature).

Rules: routes translate HTTP to calls on ``services.outbound`` / ``services.campaigns`` and
back; they decide nothing about calls. Every route is wrapped by ``auth.require_token``.
"""
