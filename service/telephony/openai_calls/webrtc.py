"""``POST /v1/webrtc/session``: a browser's WebRTC call to OpenAI, driven from our server.

The browser sends its SDP offer here (``Content-Type: application/sdp``; bearer
``WEBRTC_SESSION_TOKEN`` or any operator token of ``API_TOKENS``); we create the call at OpenAI with
``client.realtime.calls.create(sdp=…, session=<the profile's session>)`` and return OpenAI's
SDP answer, then attach to the call by its id over the sideband like a SIP call.

Why relay the offer rather than mint an ephemeral client secret for the browser: the API key
and the session (instructions, tools) never leave the server, so a browser cannot change its
own instructions or tools; and we learn the ``call_id`` from the create reply's ``Location``,
which the sideband needs (a browser holding a client secret would create the call itself and
would have to tell us its id). The cost is one extra hop for the SDP exchange only; media
flows browser ↔ OpenAI.

Query: ``profile`` (a profile name) or ``to`` (a number whose profile to use); default profile
otherwise. Replies: 201 with the SDP answer (``X-Call-Id`` and ``Location: /calls/{call_id}``),
401 without the token, 400 for a body that is no SDP offer, 404 for an unknown profile, 503
while draining or at ``MAX_CALLS``, 502 when OpenAI refuses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from service.api.auth import token_ok
from service.telephony.events import CarrierError
from service.telephony.openai_calls.call import WEBRTC_CARRIER
from service.telephony.openai_calls.incoming import IncomingCall

if TYPE_CHECKING:
    from service.services import Services

__all__ = ["MAX_OFFER_BYTES", "webrtc_session"]

log = structlog.get_logger(__name__)
MAX_OFFER_BYTES = 64 * 1024  # browsers' offers are a few KB


def _authorized(request: Request, tokens: tuple[str, ...]) -> bool:
    """A bearer token: ``WEBRTC_SESSION_TOKEN`` or any operator token (``API_TOKENS``),
    compared in constant time (``service.api.auth.token_ok``)."""
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token_ok(presented.strip(), tokens)


async def webrtc_session(request: Request) -> Response:
    services: Services = request.app.state.services
    edge = services.openai_calls
    token = services.settings.webrtc_session_token.get_secret_value()
    if edge is None or not token:
        return PlainTextResponse("WEBRTC_SESSION_TOKEN is not set", status_code=404)
    if not _authorized(request, (token, *services.settings.operator_tokens)):
        return PlainTextResponse("missing or wrong bearer token", status_code=401)
    if services.draining or services.full:
        if services.full:
            services.metrics.refusals.labels("full").inc()
        return PlainTextResponse("not taking calls now", status_code=503)
    body = await request.body()
    offer = body[:MAX_OFFER_BYTES].decode("utf-8", "replace")
    if len(body) > MAX_OFFER_BYTES or not offer.startswith("v=0"):
        return PlainTextResponse("the body must be an SDP offer (v=0 …)", status_code=400)
    to_number = request.query_params.get("to", "")
    profile_name = request.query_params.get("profile", "")
    session = services.factory.model_call_session(to_number, profile_name)
    if session is None:
        return PlainTextResponse(f"no profile named {profile_name!r}", status_code=404)
    try:
        call_id, answer = await edge.control.create_webrtc(offer, session)
    except CarrierError as exc:
        log.warning("webrtc call not created", error=str(exc))
        return PlainTextResponse("OpenAI did not take the call", status_code=502)
    edge.attach(
        IncomingCall(call_id, from_number="webrtc", to_number=to_number, profile_name=profile_name),
        WEBRTC_CARRIER,
    )
    headers = {"X-Call-Id": call_id, "Location": f"/calls/{call_id}"}
    return Response(answer, status_code=201, media_type="application/sdp", headers=headers)
