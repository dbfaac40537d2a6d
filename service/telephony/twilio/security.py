"""Who may talk to us: Twilio request signatures and per-call stream tokens (protocols.md A.4).

Webhooks are signed over the public URL Twilio requested plus the form parameters. The media
stream upgrade is signed over the ``wss://`` URL written in our TwiML with empty parameters.
As defence in depth each call also gets a stream token in a ``<Parameter>``; it is an HMAC over
the CallSid, so any worker sharing the key can check it without a store round trip, and a
token minted for one call cannot open another call's stream. ``TokenLedger`` makes each token
good for one stream only, across replicas.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from twilio.request_validator import RequestValidator

__all__ = ["SignatureChecker", "StreamTokens", "TokenLedger"]

SIGNATURE_HEADER = "X-Twilio-Signature"
# An expiry is a Unix time in ASCII digits (not ``str.isdigit``: "²" passes that, int() fails).
_EXPIRY = re.compile(r"[0-9]{1,12}")


class SignatureChecker:
    """Validates ``X-Twilio-Signature`` with the twilio SDK's ``RequestValidator``."""

    def __init__(self, auth_token: str, *, enforced: bool) -> None:
        self.enforced = enforced and bool(auth_token)
        self._validator = RequestValidator(auth_token) if auth_token else None

    def webhook_ok(self, public_url: str, params: Mapping[str, Any], signature: str) -> bool:
        """A.4 steps 1–3: the full public URL (with query), the form params, constant-time."""
        if not self.enforced:
            return True
        assert self._validator is not None
        return bool(signature) and self._validator.validate(public_url, params, signature)

    def upgrade_ok(self, wss_url: str, signature: str) -> bool:
        """A.4 "WebSocket upgrade": the ``wss://`` URL as written in the TwiML, empty params."""
        return self.webhook_ok(wss_url, {}, signature)


class StreamTokens:
    """Mints and checks per-call stream tokens: ``<nonce>.<expiry>.<hmac>``.

    Stateless: nothing is stored per call, so memory is O(1) whatever the call volume.
    """

    def __init__(self, secret: str, *, ttl_seconds: int = 300) -> None:
        # No configured key: a random one, fine for one process; several workers must share one.
        self._key = (secret or secrets.token_hex(32)).encode()
        self.ttl_seconds = ttl_seconds

    def _mac(self, call_sid: str, nonce: str, expiry: str) -> str:
        message = f"{call_sid}|{nonce}|{expiry}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def mint(self, call_sid: str, *, now: float | None = None) -> str:
        nonce = secrets.token_urlsafe(9)
        expiry = str(int((now if now is not None else time.time()) + self.ttl_seconds))
        return f"{nonce}.{expiry}.{self._mac(call_sid, nonce, expiry)}"

    def check(self, call_sid: str, token: str, *, now: float | None = None) -> str | None:
        """``None`` when the token is good for this call, else the reason it is not."""
        parts = token.split(".")
        if len(token) > 200 or len(parts) != 3 or not _EXPIRY.fullmatch(parts[1]):
            return "malformed token"
        nonce, expiry, mac = parts
        if not hmac.compare_digest(mac, self._mac(call_sid, nonce, expiry)):
            return "token does not match this call"
        # The token only has to live until Twilio opens the stream, seconds after the webhook.
        if int(expiry) < (now if now is not None else time.time()):
            return "token expired"
        return None


class TokenLedger:
    """Which stream tokens have opened a stream, shared by every replica through Redis, so a
    token is good for one stream only (a replay within its TTL is refused anywhere).

    One key per redeemed token, ``P stream_token:{sha256(token)[:32]}`` = CallSid, set with
    ``SET NX EX`` for the token's remaining life plus a margin for clock skew between
    replicas: Redis memory is bounded by the call rate times the token TTL.

    Fail-open: when Redis does not answer within ``timeout`` the stream is admitted (the token's
    HMAC and expiry were already checked, and the one-stream-per-call check still holds on
    this process); only the cross-replica replay check lapses for the outage. A Redis outage
    must not take calls down.
    """

    SKEW_MARGIN_SECONDS = 60

    def __init__(self, redis: Redis, *, prefix: str, timeout: float = 0.5) -> None:
        self._redis = redis
        self._prefix = prefix
        self.timeout = timeout

    def key(self, token: str) -> str:
        return f"{self._prefix}stream_token:{hashlib.sha256(token.encode()).hexdigest()[:32]}"

    async def redeem(self, token: str, call_sid: str, *, now: float | None = None) -> bool | None:
        """``True`` the first time ``token`` is redeemed, ``False`` ever after (within its life),
        ``None`` when Redis could not say (the caller admits: see the class docstring)."""
        parts = token.split(".")
        expiry = int(parts[1]) if len(parts) == 3 and _EXPIRY.fullmatch(parts[1]) else 0
        left = expiry - (now if now is not None else time.time())
        ttl = max(1, round(left) + self.SKEW_MARGIN_SECONDS)
        try:
            async with asyncio.timeout(self.timeout):
                return bool(await self._redis.set(self.key(token), call_sid, nx=True, ex=ttl))
        except (RedisError, OSError, TimeoutError):
            return None
