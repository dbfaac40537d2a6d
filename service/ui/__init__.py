"""The operator's window: dashboard pages, live feeds, and the browser softphone's page.

Rules: reads calls from Redis (``store``) and ``services``; never imports ``realtime``,
``agent`` or ``calls.worker`` and decides nothing about calls. Everything shown passes through
``views`` (secrets dropped, numbers masked). Pages are server-rendered (Jinja2, autoescaped)
with small script files from ``static/`` (no inline script: the CSP forbids it).
"""
