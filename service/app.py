"""The Starlette application: routes, and a lifespan that builds and releases ``Services``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import structlog
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from service.agent.hotline.orders import seed_orders
from service.api.routes import operator_routes
from service.services import Services, build_services
from service.settings import Settings
from service.telephony.openai_calls.webhook import openai_webhook
from service.telephony.openai_calls.webrtc import webrtc_session
from service.telephony.sip.server import SipServer
from service.telephony.twilio.stream import MEDIA_PATH, run_media_stream
from service.telephony.twilio.webhooks import amd_callback, status_callback, voice_webhook
from service.ui.routes import ui_routes

__all__ = ["Services", "create_app"]  # Services: re-exported for older imports

log = structlog.get_logger(__name__)


async def healthz(request: Request) -> Response:
    services: Services = request.app.state.services
    redis_up = await services.store.ping()
    return JSONResponse(
        {
            "status": "ok",
            "redis": "up" if redis_up else "down",
            "embedded_redis": services.embedded_redis,
            "active_calls": len(services.calls),
            "store_pending": services.writer.pending,
            "draining": services.draining,
        }
    )


async def readyz(request: Request) -> Response:
    """Ready for new calls: Redis reachable, not draining, not full (load balancers route on
    this)."""
    services: Services = request.app.state.services
    redis_up = await services.store.ping()
    full = services.full
    ready = redis_up and not services.draining and not full
    body = {
        "ready": ready,
        "redis": "up" if redis_up else "down",
        "draining": services.draining,
        "full": full,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    services.metrics.active_calls.set(len(services.calls))
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)


async def stats(request: Request) -> Response:
    """GET /stats: latency added inside this process (p50/p99) and the store writer's state."""
    services: Services = request.app.state.services
    return JSONResponse(
        {
            "active_calls": len(services.calls),
            "latency": services.timings.summary(),
            "store": services.writer.stats(),
            **({"sip": services.sip.stats()} if services.sip is not None else {}),
        }
    )


async def media_stream(websocket: WebSocket) -> None:
    await run_media_stream(websocket, websocket.app.state.services)


class ServiceApp(Starlette):
    """Starlette, with the media WebSocket routed straight to its handler.

    Every message of a media stream otherwise passes Starlette's middleware stack and router
    (ServerErrorMiddleware, ExceptionMiddleware, which wraps ``send`` per outgoing frame) —
    several % of the service's CPU at ~150 messages per call-second, measured by
    ``python -m service loadtest``. The media handler needs none of it: it catches
    everything itself (stream.py), and before ``accept`` uvicorn answers a raised exception
    with HTTP 500 as Starlette would. Everything else takes the normal path.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == MEDIA_PATH:
            scope["app"] = self  # what Starlette.__call__ sets: websocket.app.state
            await media_stream(WebSocket(scope, receive, send))
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = build_services(settings)
        app.state.services = services
        if services.embedded_redis:
            log.warning(
                "REDIS_URL is not set: using an EMBEDDED IN-PROCESS Redis (fakeredis). "
                "Call records live only as long as this process. Set REDIS_URL in production."
            )
        if not settings.signatures_enforced:
            log.warning(
                "Twilio signature checks are OFF",
                why="no TWILIO_AUTH_TOKEN"
                if not settings.twilio_auth_token.get_secret_value()
                else "TWILIO_VALIDATE_SIGNATURES=false",
            )
        if not await services.store.ping():
            log.error("Redis is not reachable at start; calls will flow and writes will wait")
        elif services.embedded_redis:
            # The embedded store starts empty and lives in this process only: seed it here.
            count = await seed_orders(services.redis, settings.redis_key_prefix)
            log.info("hotline orders seeded into the embedded store", orders=count)
        if services.twilio_calls is None:
            log.warning(
                "TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN not set: end_call and "
                "transfer_call cannot reach Twilio's REST API"
            )
        services.writer.start()
        # The SIP trunk edge (README "SIP trunk"): its own UDP socket next to the HTTP server.
        if settings.sip_listen:
            sip = SipServer(services)
            await sip.start()
            services.sip = sip
        services.start_background()
        if not settings.operator_tokens:
            log.warning("API_TOKENS is not set: the operator API (/v1/*, /calls/*) answers 401")
        log.info("service ready", public_url=settings.public_url)
        try:
            yield
        finally:
            if services.sip is not None:
                await services.sip.stop()
            await services.aclose()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/twilio/voice", voice_webhook, methods=["POST"]),
        Route("/twilio/status", status_callback, methods=["POST"]),
        # Outbound calls and campaigns: AMD verdicts (Twilio-signed); the operator API
        # (bearer tokens, service/api/), which also serves GET /calls/{sid}.
        Route("/twilio/amd", amd_callback, methods=["POST"]),
        *operator_routes(),
        WebSocketRoute(MEDIA_PATH, media_stream),  # reached only via ServiceApp's shortcut
        # OpenAI SIP and WebRTC calls (404 unless OPENAI_WEBHOOK_SECRET / WEBRTC_SESSION_TOKEN)
        Route("/openai/webhook", openai_webhook, methods=["POST"]),
        Route("/v1/webrtc/session", webrtc_session, methods=["POST"]),
        # The operator's window: dashboard /ui, browser softphone /phone (service/ui/).
        *ui_routes(settings),
    ]
    return ServiceApp(routes=routes, lifespan=lifespan)
