"""Operator login for the browser pages: the ``API_TOKENS`` behind a form and a cookie.

* ``POST /ui/login`` takes a token (the same ones the operator API takes as bearer tokens,
  compared by ``service.api.auth.token_ok`` in constant time). A right one sets the session
  cookie (HttpOnly, SameSite=Strict, Path=/, Secure when PUBLIC_URL is https); a wrong one is
  answered after ``UI_LOGIN_DELAY_SECONDS`` with 401 and the form again. Wrong guesses are
  serialised per process (one at a time), so the delay bounds the guessing rate.
* Every other page, feed and the softphone socket needs a valid session; pages redirect to
  the login form, feeds and sockets are refused (401 / close 1008).
* State-changing forms carry the session's CSRF token (``session.SessionSigner``).
* Every response from these routes carries a strict Content-Security-Policy (scripts and
  styles only from this origin, no inline script), ``nosniff``, same-origin referrers only,
  and no caching.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import structlog
from starlette.requests import HTTPConnection, Request
from starlette.responses import RedirectResponse, Response

from service.api.auth import token_ok
from service.settings import Settings
from service.ui.session import Session, SessionSigner

__all__ = ["COOKIE", "CSP", "OperatorGate", "security_headers"]

log = structlog.get_logger(__name__)

COOKIE = "va_session"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self' blob:; worker-src 'self'; font-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
Endpoint = Callable[[Request], Awaitable[Response]]


def security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on form
    # posts, and the origin check would refuse our own forms.
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


class OperatorGate:
    """One per app: the session signer, the login delay, and the route guards."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.ui_session_secret.get_secret_value().encode()
        if not secret:
            secret = secrets.token_bytes(32)
            log.warning("UI_SESSION_SECRET is not set: dashboard sessions end at restart")
        self.settings = settings
        self.signer = SessionSigner(secret, settings.ui_session_ttl_seconds)
        self.secure = urlsplit(settings.public_url).scheme == "https"
        self._wrong_guesses = asyncio.Lock()

    def session(self, connection: HTTPConnection) -> Session | None:
        cookie = connection.cookies.get(COOKIE, "")
        if not cookie:
            return None
        return self.signer.verify(cookie, time.time(), self.settings.operator_tokens)

    def same_origin(self, connection: HTTPConnection) -> bool:
        """A WebSocket upgrade or form post from our own pages (RFC 6454 origin check)."""
        origin = connection.headers.get("origin", "")
        host = connection.headers.get("host", "")
        return bool(origin) and urlsplit(origin).netloc in (host, self.settings.public_host)

    async def login(self, token: str) -> str | None:
        """The new session cookie for a right token; None (after the delay) for a wrong one."""
        if token and token_ok(token, self.settings.operator_tokens):
            cookie, _session = self.signer.issue(token, time.time())
            log.info("operator logged in")
            return cookie
        async with self._wrong_guesses:
            log.warning("operator login refused")
            await asyncio.sleep(self.settings.ui_login_delay_seconds)
        return None

    def set_cookie(self, response: Response, cookie: str) -> None:
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=self.signer.ttl_seconds,
            path="/",
            httponly=True,
            samesite="strict",
            secure=self.secure,
        )

    def page(self, endpoint: Callable[[Request, Session], Awaitable[Response]]) -> Endpoint:
        """A page: without a session, a redirect to the login form."""

        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            session = self.session(request)
            if session is None:
                return security_headers(RedirectResponse("/ui/login", status_code=303))
            return security_headers(await endpoint(request, session))

        return guarded

    def feed(self, endpoint: Callable[[Request, Session], Awaitable[Response]]) -> Endpoint:
        """A feed or form target: without a session, 401; a POST also needs the CSRF token
        (form field ``csrf`` or header ``X-CSRF-Token``) and a same-origin Origin header."""

        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            session = self.session(request)
            if session is None:
                return security_headers(Response("login required", status_code=401))
            if request.method == "POST":
                presented = request.headers.get("x-csrf-token", "")
                if not presented:
                    form = await request.form()
                    presented = str(form.get("csrf", ""))
                if not self.signer.csrf_ok(session, presented) or not self.same_origin(request):
                    log.warning("operator form refused", path=request.url.path, why="csrf")
                    return security_headers(Response("bad CSRF token", status_code=403))
            return security_headers(await endpoint(request, session))

        return guarded
