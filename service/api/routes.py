"""``/v1/calls`` and ``/v1/campaigns…``: place calls, run campaigns, read results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from service.api.auth import require_token
from service.campaigns.contacts import validate_e164
from service.campaigns.outbound import OutboundError, OutboundRequest
from service.campaigns.rules import CampaignRules
from service.telephony.events import CarrierError

if TYPE_CHECKING:
    from service.services import Services

__all__ = ["operator_routes"]

log = structlog.get_logger(__name__)
MAX_BODY_BYTES = 20 * 1024 * 1024  # ~100 000 contacts of CSV


def _services(request: Request) -> Services:
    return request.app.state.services


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def _body(request: Request) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise ValueError(f"body larger than {MAX_BODY_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ValueError(f"body larger than {MAX_BODY_BYTES} bytes")
    return body


async def _json(request: Request) -> dict[str, Any]:
    try:
        value = orjson.loads(await _body(request) or b"{}")
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("body must be a JSON object")
    return value


async def get_call(request: Request) -> Response:
    """GET /calls/{call_sid} and /v1/calls/{call_sid}: the call record and its events."""
    services = _services(request)
    call_sid = request.path_params["call_sid"]
    record = await services.store.get_call(call_sid)
    if not record:
        return _error(404, "no such call")
    return JSONResponse({"call": record, "events": await services.store.get_events(call_sid)})


async def create_call(request: Request) -> Response:
    """POST /v1/calls {to, from?, profile?, variables?} → 201 {call_sid, …}."""
    services = _services(request)
    assert services.outbound is not None
    try:
        body = await _json(request)
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            raise ValueError("variables must be an object")
        placed = await services.outbound.place(
            OutboundRequest(
                to=str(body.get("to") or ""),
                from_=str(body.get("from") or ""),
                profile=str(body.get("profile") or ""),
                variables={str(k): str(v) for k, v in variables.items()},
            )
        )
    except (OutboundError, ValueError) as exc:
        return _error(400, str(exc))
    except CarrierError as exc:
        if exc.retryable:
            return _error(503, f"carrier busy or unreachable: {exc}", retryable=True)
        return _error(502, f"carrier refused the call: {exc}")
    return JSONResponse(
        {"call_sid": placed.call_sid, "to": placed.to, "from": placed.from_,
         "profile": placed.profile, "dial_id": placed.dial_id},
        status_code=201,
    )  # fmt: skip


async def create_campaign(request: Request) -> Response:
    """POST /v1/campaigns {profile, from?, concurrency?, cps?, windows?, timezone?, retry?,
    name?, contacts?: [...]} → 201 {id, upload?}."""
    services = _services(request)
    assert services.campaigns is not None
    try:
        body = await _json(request)
        rules = CampaignRules.from_request(body, services.settings.campaign_default_timezone)
        campaign_id = await services.campaigns.create(rules, str(body.get("id") or ""))
    except (ValueError, TypeError) as exc:
        return _error(400, str(exc))
    reply: dict[str, Any] = {"id": campaign_id}
    if body.get("contacts") is not None:
        data = orjson.dumps(body["contacts"])
        reply["upload"] = await services.campaigns.upload(campaign_id, data, "json")
    return JSONResponse(reply, status_code=201)


async def upload_contacts(request: Request) -> Response:
    """POST /v1/campaigns/{id}/contacts, CSV (text/csv) or JSON → {added, duplicates,
    errors}; bad rows are listed, the rest are added."""
    services = _services(request)
    assert services.campaigns is not None
    kind = request.headers.get("content-type", "")
    fmt = "csv" if "csv" in kind or "text/plain" in kind else "json"
    try:
        result = await services.campaigns.upload(
            request.path_params["campaign_id"], await _body(request), fmt
        )
    except KeyError:
        return _error(404, "no such campaign")
    except ValueError as exc:
        return _error(400, str(exc))
    return JSONResponse(result)


async def campaign_status(request: Request) -> Response:
    services = _services(request)
    assert services.campaigns is not None
    try:
        return JSONResponse(await services.campaigns.status(request.path_params["campaign_id"]))
    except KeyError:
        return _error(404, "no such campaign")


async def campaign_action(request: Request) -> Response:
    """POST /v1/campaigns/{id}/{pause|resume|cancel} → {state}; 409 if not allowed now."""
    services = _services(request)
    assert services.campaigns is not None
    action = request.path_params["action"]
    if action not in ("pause", "resume", "cancel"):
        return _error(404, f"unknown action {action!r}")
    try:
        state = await services.campaigns.change(request.path_params["campaign_id"], action)
    except KeyError:
        return _error(404, "no such campaign")
    except ValueError as exc:
        return _error(409, str(exc))
    return JSONResponse({"state": state})


async def campaign_results(request: Request) -> Response:
    """GET /v1/campaigns/{id}/results (JSON) or …/results.csv."""
    services = _services(request)
    assert services.campaigns is not None
    campaign_id = request.path_params["campaign_id"]
    try:
        if request.url.path.endswith(".csv"):
            return PlainTextResponse(
                await services.campaigns.export_csv(campaign_id), media_type="text/csv"
            )
        return JSONResponse({"results": await services.campaigns.results(campaign_id)})
    except KeyError:
        return _error(404, "no such campaign")


async def add_dnc(request: Request) -> Response:
    """POST /v1/dnc {numbers: [...]} → {added, errors}."""
    services = _services(request)
    assert services.campaigns is not None
    try:
        body = await _json(request)
    except ValueError as exc:
        return _error(400, str(exc))
    numbers, errors = [], []
    for raw in body.get("numbers") or []:
        try:
            numbers.append(validate_e164(str(raw)))
        except ValueError as exc:
            errors.append(str(exc))
    added = await services.campaigns.store.add_dnc(numbers)
    return JSONResponse({"added": added, "errors": errors})


def operator_routes() -> list[Route]:
    guarded = require_token
    return [
        Route("/calls/{call_sid}", guarded(get_call), methods=["GET"]),
        Route("/v1/calls", guarded(create_call), methods=["POST"]),
        Route("/v1/calls/{call_sid}", guarded(get_call), methods=["GET"]),
        Route("/v1/campaigns", guarded(create_campaign), methods=["POST"]),
        Route("/v1/campaigns/{campaign_id}", guarded(campaign_status), methods=["GET"]),
        Route("/v1/campaigns/{campaign_id}/contacts", guarded(upload_contacts), methods=["POST"]),
        Route("/v1/campaigns/{campaign_id}/results", guarded(campaign_results), methods=["GET"]),
        Route(
            "/v1/campaigns/{campaign_id}/results.csv", guarded(campaign_results), methods=["GET"]
        ),
        Route("/v1/campaigns/{campaign_id}/{action}", guarded(campaign_action), methods=["POST"]),
        Route("/v1/dnc", guarded(add_dnc), methods=["POST"]),
    ]
