"""Who may talk to us: Twilio request signatures and per-call stream tokens (protocols.md A.4).

Webhooks are signed over the public URL Twilio requested plus the form parameters. The media
stream upgrade is signed over the ``wss://`` URL written in our TwiML with empty parameters.
As defence in depth each call also gets a stream token in a ``<Parameter>``; it is an HMAC over
the CallSid, so any worker sharing the key can check it without a store round trip, and a
token minted for one call cannot open another call's stream.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from typing import Any

from twilio.request_validator import RequestValidator

__all__ = ["SignatureChecker", "StreamTokens"]

SIGNATURE_HEADER = "X-Twilio-Signature"


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
        if len(parts) != 3 or not parts[1].isdigit():
            return "malformed token"
        nonce, expiry, mac = parts
        if not hmac.compare_digest(mac, self._mac(call_sid, nonce, expiry)):
            return "token does not match this call"
        # The token only has to live until Twilio opens the stream, seconds after the webhook.
        if int(expiry) < (now if now is not None else time.time()):
            return "token expired"
        return None
