"""The operator's routes: pages, live feeds, and the browser softphone's socket.

| Route | What |
|---|---|
| ``GET /`` | Redirect to ``/ui`` |
| ``GET/POST /ui/login``, ``POST /ui/logout`` | The login form (an ``API_TOKENS`` token) |
| ``GET /ui`` | Live calls (fed by ``/ui/live``), latency panel |
| ``GET /ui/live`` | SSE: the live-calls table |
| ``GET /ui/calls`` | Recent calls: search (``q``) and pages (``cursor``) |
| ``GET /ui/calls/{sid}`` | One call: hash, transcript, timeline, tool audit (fed live) |
| ``GET /ui/calls/{sid}/feed`` | SSE: the call's events and tool audit |
| ``GET /ui/latency`` | JSON: this process's added latency (p50/p99), for the panel |
| ``GET /ui/campaigns?id=``, ``POST /ui/campaigns/{id}/{pause,resume}`` | Campaign progress |
| ``GET /phone``, ``WS /phone/ws`` | The browser softphone (``service/telephony/browser``) |

Each handler reads from Redis or ``services`` and renders; nothing here decides call policy.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from service.settings import Settings
from service.telephony.browser.stream import run_browser_call
from service.ui.auth import COOKIE, OperatorGate, security_headers
from service.ui.live import StreamSlots, call_feed, live_calls
from service.ui.search import recent_calls
from service.ui.session import Session
from service.ui.views import public_call, public_event, public_tool_entry

__all__ = ["ui_routes"]

HERE = Path(__file__).parent
POLICY_VIOLATION = 1008  # RFC 6455 7.4.1
_templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(("html",)),
    enable_async=False,
)


def ui_routes(settings: Settings) -> list[BaseRoute]:
    gate = OperatorGate(settings)
    slots = StreamSlots(settings.ui_max_streams)

    def render(
        name: str, request: Request, session: Session | None, status: int = 200, **context: object
    ) -> HTMLResponse:
        csrf = gate.signer.csrf_token(session) if session is not None else ""
        html = _templates.get_template(name).render(
            csrf=csrf, path=request.url.path, logged_in=session is not None, **context
        )
        return HTMLResponse(html, status_code=status)

    async def root(request: Request) -> Response:
        return RedirectResponse("/ui", status_code=303)

    async def login_form(request: Request) -> Response:
        return security_headers(render("login.html", request, None))

    async def login(request: Request) -> Response:
        # Login CSRF (a forged login into the attacker's session) is refused by origin.
        if not gate.same_origin(request):
            return security_headers(Response("cross-origin login refused", status_code=403))
        form = await request.form()
        cookie = await gate.login(str(form.get("token", "")))
        if cookie is None:
            page = render("login.html", request, None, status=401, error="Wrong token.")
            return security_headers(page)
        response = RedirectResponse("/ui", status_code=303)
        gate.set_cookie(response, cookie)
        return security_headers(response)

    async def logout(request: Request, session: Session) -> Response:
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    async def dashboard(request: Request, session: Session) -> Response:
        return render("dashboard.html", request, session)

    def stream(request: Request, frames_of) -> Response:  # type: ignore[no-untyped-def]
        if not slots.take():
            return Response("too many live feeds", status_code=503, headers={"Retry-After": "5"})

        async def frames():  # type: ignore[no-untyped-def]
            try:
                async for frame in frames_of:
                    yield frame
            finally:
                slots.give()

        return StreamingResponse(
            frames(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def live(request: Request, session: Session) -> Response:
        services = request.app.state.services
        return stream(request, live_calls(services, settings.ui_stream_max_age_seconds))

    async def calls(request: Request, session: Session) -> Response:
        services = request.app.state.services
        query = request.query_params.get("q", "")[:100]
        try:
            cursor = max(0, int(request.query_params.get("cursor", "0")))
        except ValueError:
            cursor = 0
        page = await recent_calls(services, query, cursor)
        return render("calls.html", request, session, query=query, page=page, cursor=cursor)

    async def call_page(request: Request, session: Session) -> Response:
        services = request.app.state.services
        sid = request.path_params["call_sid"]
        try:
            fields = await services.store.get_call(sid)
        except ValueError:
            fields = {}
        if not fields:
            return render("missing.html", request, session, status=404, call_sid=sid)
        mask = settings.ui_mask_numbers
        events = [public_event(e, mask=mask) for e in await services.store.get_events(sid)]
        tools = []
        if services.audit is not None:
            entries = await services.audit.call_entries(services.redis, sid)
            tools = [public_tool_entry(e, mask=mask) for e in entries]
        return render(
            "call.html",
            request,
            session,
            call=public_call(sid, fields, mask=mask),
            events=events,
            tools=tools,
        )

    async def call_events(request: Request, session: Session) -> Response:
        services = request.app.state.services
        sid = request.path_params["call_sid"]
        if "{" in sid or "}" in sid or not sid:
            return Response("bad call sid", status_code=400)
        return stream(request, call_feed(services, sid, settings.ui_stream_max_age_seconds))

    async def latency(request: Request, session: Session) -> Response:
        services = request.app.state.services
        return JSONResponse(
            {"latency": services.timings.summary(), "active_calls": len(services.calls)}
        )

    async def campaign(request: Request, session: Session) -> Response:
        """GET /ui/campaigns?id=…: one campaign's progress (the campaigns API lists none)."""
        services = request.app.state.services
        campaign_id = request.query_params.get("id", "").strip()[:100]
        status, error = None, ""
        if campaign_id and services.campaigns is not None:
            try:
                status = await services.campaigns.status(campaign_id)
            except (KeyError, ValueError):
                error = f"No campaign {campaign_id!r}."
        counters = (status or {}).get("counters", {})
        total, done = int(counters.get("total", 0)), int(counters.get("done", 0))
        percent = round(100 * done / total) if total else 0
        return render(
            "campaign.html", request, session, campaign_id=campaign_id, campaign=status,
            error=error, total=total, done=done, percent=percent,
        )  # fmt: skip

    async def campaign_action(request: Request, session: Session) -> Response:
        """POST /ui/campaigns/{id}/{pause|resume} (CSRF-checked by the gate)."""
        services = request.app.state.services
        campaign_id, action = request.path_params["campaign_id"], request.path_params["action"]
        if action not in ("pause", "resume") or services.campaigns is None:
            return Response("unknown action", status_code=404)
        try:
            await services.campaigns.change(campaign_id, action)
        except KeyError:
            return Response("no such campaign", status_code=404)
        except ValueError as exc:
            return Response(str(exc), status_code=409)
        return RedirectResponse(f"/ui/campaigns?id={quote(campaign_id)}", status_code=303)

    async def phone(request: Request, session: Session) -> Response:
        services = request.app.state.services
        names = [profile.name for profile in services.factory.profiles.all()]
        return render("phone.html", request, session, profiles=names)

    async def phone_socket(websocket: WebSocket) -> None:
        # The page's session cookie rides on the upgrade; a cross-site page cannot use it
        # (SameSite=Strict) and the Origin check refuses it anyway (RFC 6455 10.2).
        if gate.session(websocket) is None or not gate.same_origin(websocket):
            await websocket.close(code=POLICY_VIOLATION)
            return
        await run_browser_call(websocket, websocket.app.state.services)

    async def favicon(request: Request) -> Response:
        return Response(
            (HERE / "static" / "favicon.svg").read_bytes(),
            media_type="image/svg+xml",
            headers={"Cache-Control": "max-age=86400"},
        )

    return [
        Route("/", root, methods=["GET"]),
        Route("/favicon.ico", favicon, methods=["GET"]),
        Route("/ui/login", login_form, methods=["GET"]),
        Route("/ui/login", login, methods=["POST"]),
        Route("/ui/logout", gate.feed(logout), methods=["POST"]),
        Route("/ui", gate.page(dashboard), methods=["GET"]),
        Route("/ui/live", gate.feed(live), methods=["GET"]),
        Route("/ui/latency", gate.feed(latency), methods=["GET"]),
        Route("/ui/calls", gate.page(calls), methods=["GET"]),
        Route("/ui/calls/{call_sid}", gate.page(call_page), methods=["GET"]),
        Route("/ui/calls/{call_sid}/feed", gate.feed(call_events), methods=["GET"]),
        Route("/ui/campaigns", gate.page(campaign), methods=["GET"]),
        Route("/ui/campaigns/{campaign_id}/{action}", gate.feed(campaign_action), methods=["POST"]),
        Route("/phone", gate.page(phone), methods=["GET"]),
        WebSocketRoute("/phone/ws", phone_socket),
        Mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static"),
    ]
