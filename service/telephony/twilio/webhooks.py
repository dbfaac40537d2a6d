"""Twilio's HTTP webhooks: the voice webhook (answers TwiML) and call status callbacks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from service.calls.factory import PROFILE_PARAMETER, VARIABLE_PREFIX
from service.store.calls import TERMINAL_STATUSES
from service.store.dials import DialRecords
from service.telephony.events import AnswerDetected, CallProgress
from service.telephony.twilio.stream import MEDIA_PATH
from service.telephony.twilio.twiml import busy_twiml, reject_twiml, stream_twiml

if TYPE_CHECKING:
    from service.services import Services

__all__ = ["amd_callback", "status_callback", "voice_webhook"]

log = structlog.get_logger(__name__)
UNORDERED_TERMINAL = 1 << 30
# Status-callback parameters worth keeping (A.5), under the store's snake_case names.
STATUS_FIELDS = {
    "CallDuration": "call_duration_s",
    "SipResponseCode": "sip_response_code",
    "AnsweredBy": "answered_by",
    "Timestamp": "carrier_timestamp",
}
# Twilio's final call statuses → CallProgress.outcome (neutral).
OUTCOMES = {
    "completed": "completed",
    "busy": "busy",
    "no-answer": "no_answer",
    "failed": "failed",
    "canceled": "canceled",
}
TAG_NAMES = ("campaign", "contact")
DRAINING_MESSAGE = "Sorry, we can't take your call right now. Please call again shortly."


def _services(request: Request) -> Services:
    return request.app.state.services


def _public_url(services: Services, request: Request) -> str:
    """The URL Twilio requested, rebuilt from PUBLIC_URL (behind proxies the local one differs)."""
    query = request.url.query
    return services.settings.public_url + request.url.path + (f"?{query}" if query else "")


async def _signed_form(request: Request) -> tuple[FormData | None, Response | None]:
    services = _services(request)
    try:
        form = await request.form()
    except Exception as exc:  # a body the form parser cannot read
        return None, PlainTextResponse(f"unreadable form body: {exc}", status_code=400)
    if not services.settings.signatures_enforced:
        if services.settings.twilio_auth_token.get_secret_value():
            log.warning("twilio signature check is OFF (TWILIO_VALIDATE_SIGNATURES=false)")
        return form, None
    signature = request.headers.get("x-twilio-signature", "")
    if not services.signatures.webhook_ok(_public_url(services, request), form, signature):
        log.warning("webhook refused", reason="bad signature", path=request.url.path)
        services.metrics.refusals.labels("bad_signature").inc()
        return None, PlainTextResponse("invalid Twilio signature", status_code=403)
    return form, None


def _xml(body: str) -> Response:
    return Response(body, media_type="text/xml")


async def voice_webhook(request: Request) -> Response:
    """POST /twilio/voice: answer an incoming (or outbound-api) call with a media stream."""
    services = _services(request)
    form, refusal = await _signed_form(request)
    if refusal is not None:
        return refusal
    assert form is not None
    call_sid = str(form.get("CallSid", ""))
    if not call_sid:
        log.warning("voice webhook refused", reason="missing CallSid")
        return PlainTextResponse("missing CallSid", status_code=400)
    if services.draining:
        log.info("call declined while draining", call_sid=call_sid)
        return _xml(
            busy_twiml(DRAINING_MESSAGE, redirect_number=services.settings.drain_fallback_number)
        )
    if services.full:
        # Refused, never absorbed: past MAX_CALLS every call would get worse (A.1 <Reject>).
        log.warning("call refused: process full", call_sid=call_sid, max_calls=len(services.calls))
        services.metrics.refusals.labels("full").inc()
        return _xml(reject_twiml(redirect_number=services.settings.overflow_number))
    caller, callee = str(form.get("From", "")), str(form.get("To", ""))
    direction = str(form.get("Direction", "inbound"))
    services.store.update_call(
        call_sid,
        direction=direction,
        **{"from": caller, "to": callee},
        status=str(form.get("CallStatus", "ringing")),
        account_sid=str(form.get("AccountSid", "")),
    )
    services.store.append_event(call_sid, "webhook", status=str(form.get("CallStatus", "")))
    stream_url = (
        f"{services.settings.public_ws_scheme}://{services.settings.public_host}{MEDIA_PATH}"
    )
    parameters = {
        "from": caller,
        "to": callee,
        "direction": direction,
        "token": services.tokens.mint(call_sid),
    }
    dial_id = request.query_params.get("dial", "")
    if dial_id:
        parameters.update(await _outbound_parameters(services, dial_id, call_sid))
    services.factory.prewarm(call_sid, callee, parameters)
    log.info("incoming call", call_sid=call_sid, direction=direction)
    return _xml(stream_twiml(stream_url, parameters))


async def _outbound_parameters(services: Services, dial_id: str, call_sid: str) -> dict[str, str]:
    """An outbound call's profile and variables as stream ``<Parameter>``s (each pair is at
    most 500 characters, protocols.md A.1; uploads keep variables under 400)."""
    dials = DialRecords(services.redis, services.settings.redis_key_prefix)
    record = await dials.load(dial_id)
    if record is None:
        log.warning("outbound call with an unknown dial id", call_sid=call_sid, dial_id=dial_id)
        return {}
    variables = record.get("variables")
    parameters = {PROFILE_PARAMETER: str(record.get("profile", ""))}
    if isinstance(variables, dict):
        parameters.update({f"{VARIABLE_PREFIX}{k}": str(v) for k, v in variables.items()})
    return parameters


async def status_callback(request: Request) -> Response:
    """POST /twilio/status: call progress; ``SequenceNumber`` orders callbacks (A.5)."""
    services = _services(request)
    form, refusal = await _signed_form(request)
    if refusal is not None:
        return refusal
    assert form is not None
    call_sid = str(form.get("CallSid", ""))
    status = str(form.get("CallStatus", ""))
    if not call_sid or not status:
        log.warning("status callback refused", reason="missing CallSid or CallStatus")
        return PlainTextResponse("missing CallSid or CallStatus", status_code=400)
    raw_sequence = str(form.get("SequenceNumber", ""))
    if raw_sequence.isdigit():
        sequence = int(raw_sequence)
    else:
        # Callbacks without progress events carry no SequenceNumber. A terminal status then
        # outranks anything (the store never moves a terminal status backwards); any other
        # only fills in a status that no ordered callback has set.
        sequence = UNORDERED_TERMINAL if status in TERMINAL_STATUSES else 0
    fields = {name: str(form[key]) for key, name in STATUS_FIELDS.items() if key in form}
    await services.store.record_status(
        call_sid, status=status, sequence_number=sequence, fields=fields
    )
    if services.call_progress is not None:
        duration = str(form.get("CallDuration", ""))
        await services.call_progress(
            CallProgress(
                call_sid=call_sid,
                status=status,
                final=status in TERMINAL_STATUSES,
                outcome=OUTCOMES.get(status, ""),
                duration_s=int(duration) if duration.isdigit() else None,
                answered_by=str(form.get("AnsweredBy", "")),
                tags=_tags(request),
            )
        )
    return Response(status_code=204)


def _tags(request: Request) -> dict[str, str]:
    return {name: request.query_params[name] for name in TAG_NAMES if name in request.query_params}


def answer_detected(answered_by: str) -> AnswerDetected:
    """Twilio's ``AnsweredBy`` (sip-and-outbound.md 3.2) → the neutral event."""
    if answered_by.startswith("machine"):
        return AnswerDetected("machine", answered_by.startswith("machine_end"), answered_by)
    if answered_by in ("human", "fax"):
        return AnswerDetected(answered_by, False, answered_by)
    return AnswerDetected("unknown", False, answered_by)


async def amd_callback(request: Request) -> Response:
    """POST /twilio/amd: the async answering-machine verdict (``AnsweredBy``, sip-and-outbound
    3.2), stored on the call and handed to the call's worker on whichever process holds it."""
    services = _services(request)
    form, refusal = await _signed_form(request)
    if refusal is not None:
        return refusal
    assert form is not None
    call_sid = str(form.get("CallSid", ""))
    answered_by = str(form.get("AnsweredBy", ""))
    if not call_sid or not answered_by:
        return PlainTextResponse("missing CallSid or AnsweredBy", status_code=400)
    duration = str(form.get("MachineDetectionDuration", ""))
    services.store.update_call(call_sid, answered_by=answered_by,
                               machine_detection_ms=duration or None)  # fmt: skip
    services.store.append_event(call_sid, "amd", answered_by=answered_by, duration_ms=duration)
    if services.signals is not None:
        await services.signals.publish(call_sid, answer_detected(answered_by))
    return Response(status_code=204)
