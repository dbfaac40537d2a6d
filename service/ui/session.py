"""The operator's browser session: a signed cookie and its CSRF token (sans-I/O).

A session is issued after the operator types one of the ``API_TOKENS`` into the login form.
The cookie holds no secret: ``base64url(json) "." base64url(HMAC-SHA256)`` over

    sid   random 128-bit id (the CSRF token is derived from it)
    exp   expiry, epoch seconds (``UI_SESSION_TTL_SECONDS`` after login)
    tok   the first 16 hex digits of SHA-256 of the token used (so removing a token from
          ``API_TOKENS`` ends the sessions opened with it at once)

signed with ``UI_SESSION_SECRET``. The CSRF token is ``HMAC(secret, "csrf:" + sid)``: a page
gets it in a ``<meta>``/hidden field, and every state-changing request must send it back
(synchronizer token; the SameSite=Strict cookie is the second fence).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import orjson

__all__ = ["Session", "SessionSigner", "token_fingerprint"]


def token_fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    expires_at: float
    token_fingerprint: str


class SessionSigner:
    """Issues and checks session cookies and CSRF tokens under one secret."""

    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret must be at least 16 bytes")
        if ttl_seconds < 60:
            raise ValueError("sessions must last at least a minute")
        self._secret = secret
        self.ttl_seconds = ttl_seconds

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()

    def issue(self, token: str, now: float) -> tuple[str, Session]:
        """A new session for a login with ``token`` (already checked): (cookie, session)."""
        session = Session(secrets.token_hex(16), now + self.ttl_seconds, token_fingerprint(token))
        payload = orjson.dumps(
            {"sid": session.sid, "exp": int(session.expires_at), "tok": session.token_fingerprint}
        )
        return f"{_b64(payload)}.{_b64(self._mac(payload))}", session

    def verify(self, cookie: str, now: float, tokens: tuple[str, ...]) -> Session | None:
        """The session the cookie carries, or None: bad signature, malformed, expired, or
        its token no longer configured."""
        body, _, mac = cookie.partition(".")
        try:
            payload, presented = _unb64(body), _unb64(mac)
        except ValueError:
            return None
        if not hmac.compare_digest(presented, self._mac(payload)):
            return None
        try:
            data = orjson.loads(payload)
            session = Session(str(data["sid"]), float(data["exp"]), str(data["tok"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        if session.expires_at <= now:
            return None
        if session.token_fingerprint not in {token_fingerprint(t) for t in tokens}:
            return None
        return session

    def csrf_token(self, session: Session) -> str:
        return _b64(self._mac(b"csrf:" + session.sid.encode()))

    def csrf_ok(self, session: Session, presented: str) -> bool:
        return bool(presented) and hmac.compare_digest(presented, self.csrf_token(session))
