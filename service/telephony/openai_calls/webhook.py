"""``POST /openai/webhook``: OpenAI's signed ``realtime.call.incoming`` (sip-and-outbound.md 1.2).

The raw body is verified with the ``openai`` SDK (Standard Webhooks: ``webhook-id``,
``webhook-timestamp``, ``webhook-signature``; 300 s either way; protocols.md C.2) before it is
parsed; anything unverifiable is a 400, counted by outcome. Deliveries are retried for up to
72 h and may repeat, so both the ``webhook-id`` and the ``call_id`` are claimed in Redis
(``SET NX`` with a TTL) before anything is done: a call is accepted at most once. We reply at
once and accept in the background (OpenAI wants a 2xx "within a few seconds").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from openai import InvalidWebhookSignatureError
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from service.telephony.openai_calls.incoming import read_incoming_call

if TYPE_CHECKING:
    from service.services import Services

__all__ = ["WEBHOOK_DEDUPE_SECONDS", "openai_webhook"]

log = structlog.get_logger(__name__)
# 1.2: retries go on "for up to 72 hours": a webhook-id must be remembered at least as long.
WEBHOOK_DEDUPE_SECONDS = 73 * 3600
TOLERANCE_SECONDS = 300


def _refuse(services: Services, outcome: str, detail: str, status: int = 400) -> Response:
    services.metrics.openai_webhooks.labels(outcome).inc()
    if outcome == "bad_signature":
        services.metrics.refusals.labels("bad_signature").inc()  # with every carrier's
    log.warning("openai webhook refused", outcome=outcome, detail=detail)
    return PlainTextResponse(detail, status_code=status)


async def openai_webhook(request: Request) -> Response:
    services: Services = request.app.state.services
    edge = services.openai_calls
    secret = services.settings.openai_webhook_secret.get_secret_value()
    if edge is None or not secret:
        return PlainTextResponse("OPENAI_WEBHOOK_SECRET is not set", status_code=404)
    body = await request.body()  # raw: the signature covers these exact bytes
    headers = dict(request.headers)
    webhooks = edge.control.client.webhooks
    try:
        webhooks.verify_signature(body, headers, secret=secret, tolerance=TOLERANCE_SECONDS)
        event = webhooks.unwrap(body, headers, secret=secret)
    except (InvalidWebhookSignatureError, ValueError) as exc:
        # ValueError: a missing header, or a body that is not JSON.
        return _refuse(services, "bad_signature", str(exc))
    if getattr(event, "type", None) != "realtime.call.incoming":
        services.metrics.openai_webhooks.labels("ignored").inc()
        return Response(status_code=204)
    # The SDK builds its models leniently: a signed but odd body must not raise here.
    data = getattr(event, "data", None)
    call_id = str(getattr(data, "call_id", "") or "")
    if not call_id:
        return _refuse(services, "malformed", "no call_id")
    sip_headers = [
        {"name": str(getattr(h, "name", "")), "value": str(getattr(h, "value", ""))}
        for h in getattr(data, "sip_headers", None) or []
    ]
    prefix = services.settings.redis_key_prefix
    webhook_id = headers.get("webhook-id", "")
    delivery_key = f"{prefix}openai:webhook:{webhook_id}"
    call_key = f"{prefix}openai:call:{call_id}"
    claimed: list[str] = []
    try:
        first_call = False
        if await services.redis.set(delivery_key, call_id, nx=True, ex=WEBHOOK_DEDUPE_SECONDS):
            claimed.append(delivery_key)
            ttl = services.settings.call_ttl_seconds
            first_call = bool(await services.redis.set(call_key, webhook_id, nx=True, ex=ttl))
    except RedisError as exc:
        # 503: OpenAI retries later; undo a half claim so the retry is not taken as a repeat.
        try:
            if claimed:
                await services.redis.delete(*claimed)
        except RedisError:
            log.warning("could not undo a half dedupe claim", keys=claimed)
        return _refuse(services, "store_unavailable", f"cannot dedupe: {exc}", status=503)
    if not first_call:
        services.metrics.openai_webhooks.labels("duplicate").inc()
        log.info("openai webhook duplicate", call_id=call_id, webhook_id=webhook_id)
        return JSONResponse({"duplicate": True})
    services.metrics.openai_webhooks.labels("incoming_call").inc()
    edge.answer(read_incoming_call(call_id, sip_headers))
    return JSONResponse({"call_id": call_id})
