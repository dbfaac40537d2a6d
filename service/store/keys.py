"""Every Redis key the service writes, built in one place.

Layout (``P`` is the ``REDIS_KEY_PREFIX`` setting, e.g. ``"va:"``)::

    P call:{CallSid}          hash    one per call: direction, from, to, status, …
    P call:{CallSid}:events   stream  one entry per call event

The braces are literal: ``{CallSid}`` is a Redis Cluster *hash tag*, so a call's hash and
its events stream always live in the same slot. The store updates both in one MULTI
(status callbacks, call end), which Redis Cluster only allows within one slot. On a single
Redis the braces are just characters. For the same reason the prefix must not contain
``{`` or ``}`` (the first brace pair in a key decides its slot).

Example: ``va:call:{CA0123…}`` and ``va:call:{CA0123…}:events``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CallKeys:
    """Builds the per-call keys under one prefix."""

    prefix: str = ""

    def __post_init__(self) -> None:
        if "{" in self.prefix or "}" in self.prefix:
            raise ValueError(f"key prefix must not contain braces: {self.prefix!r}")

    def call(self, call_sid: str) -> str:
        """The call's state hash."""
        return f"{self.prefix}call:{{{_checked(call_sid)}}}"

    def events(self, call_sid: str) -> str:
        """The call's events stream."""
        return f"{self.prefix}call:{{{_checked(call_sid)}}}:events"

    def both(self, call_sid: str) -> tuple[str, str]:
        """(hash key, events key) for one call."""
        return self.call(call_sid), self.events(call_sid)


def _checked(call_sid: str) -> str:
    # An empty sid or one with braces would silently land every such call in one key
    # (or break the hash tag); fail loudly instead. Twilio sids are "CA" + 32 hex digits.
    if not call_sid or "{" in call_sid or "}" in call_sid:
        raise ValueError(f"invalid call sid: {call_sid!r}")
    return call_sid
