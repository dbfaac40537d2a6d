"""Bearer tokens for the operator API (``API_TOKENS``).

Compared in constant time: both sides are hashed to SHA-256 first (so the comparison does
not leak the configured token's length either) and every configured token is compared
(no early exit). Tokens are never logged: a refusal logs the route and why, not the header.
With no token configured every operator route answers 401: the API is closed by default.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Awaitable, Callable

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = ["require_token", "token_ok"]

log = structlog.get_logger(__name__)
Endpoint = Callable[[Request], Awaitable[Response]]


def token_ok(presented: str, configured: tuple[str, ...]) -> bool:
    digest = hashlib.sha256(presented.encode()).digest()
    matched = False
    for token in configured:
        matched |= hmac.compare_digest(digest, hashlib.sha256(token.encode()).digest())
    return matched and bool(presented)


def require_token(endpoint: Endpoint) -> Endpoint:
    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        settings = request.app.state.services.settings
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token_ok(presented.strip(), settings.operator_tokens):
            why = "no token configured" if not settings.operator_tokens else "bad or missing token"
            log.warning("operator request refused", path=request.url.path, why=why)
            return JSONResponse(
                {"error": "unauthorized"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="operator"'},
            )
        return await endpoint(request)

    return guarded
