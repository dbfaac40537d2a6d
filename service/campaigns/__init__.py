"""Outbound calls and campaigns: dial lists safely, at a pace, in the callee's hours.

Rules: this is the middle for outbound calls. ``outbound.py`` places one call (profile,
variables, Twilio's REST client through ``telephony.twilio.rest``); ``windows.py``,
``contacts.py`` and ``policy.py`` are pure (no I/O, a ``now`` passed in); ``store.py`` holds
every Redis key and Lua script of a campaign; ``dispatcher.py`` is the thin asyncio loop that
claims, checks and dials; ``progress.py`` turns neutral ``CallProgress`` reports into
contact results. Carrier edges reach it only through neutral events.
"""
