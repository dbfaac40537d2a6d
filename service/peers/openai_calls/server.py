"""The stand-in's asyncio side: REST call control, the sideband, and ringing a service.

Starlette under uvicorn on loopback. Per call: one upstream connection to the realtime
server (opened at the first sideband attach, configured with the ``accept`` body, and kept
while the call lives, so a sideband may detach and reattach by ``call_id``), and at most one
attached sideband socket. What the sideband client sends is recorded per call, and checked
against the ``openai`` SDK's types (``violations``), as is every REST body.

Memory per call: the recorded client events (tests only), one ``OutputBuffer``.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import structlog
import uvicorn
from pydantic import TypeAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from service.peers.openai_calls.playback import OutputBuffer
from service.peers.openai_calls.signing import webhook_headers

__all__ = ["OpenAICallsStandIn", "StandInCall"]

log = structlog.get_logger(__name__)
NORMAL_CLOSURE = 1000


@dataclass
class StandInCall:
    call_id: str
    sip_headers: list[dict[str, str]]
    state: str = "ringing"  # ringing → accepted | rejected; accepted → referred | ended
    accept: dict[str, Any] | None = None
    reject_status: int | None = None
    refer_target: str | None = None
    hung_up_by: str = ""  # "client" (REST hangup) or "caller"
    client_events: list[dict[str, Any]] = field(default_factory=list)
    attaches: int = 0
    refuse_attach: bool = False  # a sideband (re)attach is refused (the call is unreachable)
    upstream: ClientConnection | None = None
    sideband: WebSocket | None = None
    output: OutputBuffer = field(default_factory=OutputBuffer)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    ended: asyncio.Event = field(default_factory=asyncio.Event)


def _error(status: int, message: str, code: str = "") -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code or None}}
    return JSONResponse(body, status_code=status)


class OpenAICallsStandIn:
    """``model_url``: the GA realtime server behind the calls; ``webhook_url``: where calls
    ring; ``playback_rate``: how much faster than real time the caller "hears" audio."""

    def __init__(
        self,
        model_url: str,
        *,
        webhook_url: str = "",
        webhook_secret: str = "",
        api_key: str | None = None,
        playback_rate: float = 1.0,
        end_on_refer: bool = True,
    ) -> None:
        self.model_url = model_url
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.api_key = api_key
        self.playback_rate = playback_rate
        self.end_on_refer = end_on_refer
        self.calls: dict[str, StandInCall] = {}
        self.violations: list[str] = []
        self.requests: list[tuple[str, str]] = []  # (operation, call_id), in order
        # Per call, in order: REST operations and the server events the sideband was sent.
        self.timeline: dict[str, list[str]] = {}
        # Per call: when (time.monotonic()) each kind of step was first seen (benchmarks).
        self.first_seen: dict[str, dict[str, float]] = {}
        self._ids = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._http: httpx.AsyncClient | None = None  # one pooled client for every delivery
        self.last_reply = ""  # the body of the latest webhook reply (for error messages)
        self._serving: asyncio.Task[None] | None = None
        self.port = 0
        self.app = Starlette(
            routes=[
                Route("/v1/realtime/calls", self._create, methods=["POST"]),
                Route("/v1/realtime/calls/{call_id}/{operation}", self._control, methods=["POST"]),
                WebSocketRoute("/v1/realtime", self._sideband),
            ]
        )

    # --- life cycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The REST base (``OPENAI_BASE_URL``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def realtime_url(self) -> str:
        """The sideband endpoint (``OPENAI_REALTIME_URL``)."""
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    async def start(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_config=None, lifespan="off", ws_per_message_deflate=False
        )
        self._server = uvicorn.Server(config)
        self._serving = asyncio.create_task(self._server.serve(sockets=[sock]))
        async with asyncio.timeout(5):
            while not self._server.started:  # noqa: ASYNC110 (uvicorn offers only a flag)
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        for call in self.calls.values():
            await self._end(call, "stand-in stopping")
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await self._serving
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # --- ringing a service -----------------------------------------------------------------

    def incoming_event(self, call_id: str, sip_headers: list[dict[str, str]]) -> dict[str, Any]:
        return {
            "object": "event",
            "id": f"evt_{uuid.uuid4().hex[:24]}",
            "type": "realtime.call.incoming",
            "created_at": int(time.time()),
            "data": {"call_id": call_id, "sip_headers": sip_headers},
        }

    async def ring(
        self,
        *,
        from_number: str = "+15550100999",
        to_number: str = "+15550100001",
        extra_headers: Mapping[str, str] | None = None,
    ) -> tuple[str, int]:
        """A new SIP call: ``(call_id, the webhook's HTTP status)``."""
        call_id = f"rtc_{uuid.uuid4().hex[:24]}"
        headers = [
            {"name": "From", "value": f'"Caller" <sip:{from_number}@sip.example.net>;tag=1'},
            {"name": "To", "value": f"<sip:{to_number}@sip.api.openai.com>"},
            {"name": "Call-ID", "value": f"{uuid.uuid4().hex}@sip.example.net"},
            *({"name": k, "value": v} for k, v in (extra_headers or {}).items()),
        ]
        self.calls[call_id] = StandInCall(call_id, headers)
        body = orjson.dumps(self.incoming_event(call_id, headers))
        status = await self.deliver(body, self.signed_headers(body))
        return call_id, status

    def signed_headers(
        self, body: bytes, *, webhook_id: str | None = None, timestamp: int | None = None
    ) -> dict[str, str]:
        webhook_id = webhook_id or f"wh_{uuid.uuid4().hex[:24]}"
        stamp = int(time.time()) if timestamp is None else timestamp
        return webhook_headers(self.webhook_secret, webhook_id, stamp, body)

    async def deliver(self, body: bytes, headers: Mapping[str, str]) -> int:
        """POST one webhook delivery as given (a replay is the same body and headers again)."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=5.0)
        reply = await self._http.post(self.webhook_url, content=body, headers=dict(headers))
        self.last_reply = reply.text[:200]
        return reply.status_code

    # --- the caller's side -----------------------------------------------------------------

    async def press(self, call_id: str, digit: str) -> None:
        """The caller pressed a key (SIP INFO / RFC 4733 on OpenAI's leg)."""
        event = {
            "type": "input_audio_buffer.dtmf_event_received",
            "event_id": f"evt_sb_{next(self._ids)}",
            "event": digit,
            "received_at": int(time.time()),
        }
        await self._to_sideband(self.calls[call_id], event)

    async def caller_says(self, call_id: str, pcm16_24k: bytes, chunk_ms: int = 100) -> None:
        """The caller's voice on OpenAI's media leg, into the call's realtime session."""
        call = self.calls[call_id]
        assert call.upstream is not None, "no session yet: attach a sideband first"
        step = 48 * chunk_ms
        for offset in range(0, len(pcm16_24k), step):
            audio = base64.b64encode(pcm16_24k[offset : offset + step]).decode()
            event = {"type": "input_audio_buffer.append", "audio": audio}
            await call.upstream.send(orjson.dumps(event).decode())

    async def caller_hangs_up(self, call_id: str) -> None:
        call = self.calls[call_id]
        call.hung_up_by = call.hung_up_by or "caller"
        await self._end(call, "caller hung up")

    async def drop_sideband(self, call_id: str, code: int = 1011) -> None:
        """Break the sideband socket while the call goes on (a network fault)."""
        call = self.calls[call_id]
        if call.sideband is not None:
            sideband, call.sideband = call.sideband, None
            await sideband.close(code)

    # --- REST: /v1/realtime/calls/{call_id}/{accept|reject|refer|hangup} (1.3) --------------

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        return self.api_key is None or headers.get("authorization") == f"Bearer {self.api_key}"

    async def _control(self, request: Request) -> Response:
        call_id = request.path_params["call_id"]
        operation = request.path_params["operation"]
        if not self._authorized(request.headers):
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            return _error(400, "body is not JSON")
        self.requests.append((operation, call_id))
        self._note(call_id, operation)
        self._check_params(operation, body)
        call = self.calls.get(call_id)
        if call is None or call.state in ("ended", "rejected"):
            return _error(404, f"call {call_id} not found", "call_not_found")
        if operation == "accept" and call.state == "ringing":
            call.state, call.accept = "accepted", body
        elif operation == "reject" and call.state == "ringing":
            call.state, call.reject_status = "rejected", int(body.get("status_code", 603))
        elif operation == "refer" and call.state == "accepted":
            call.state, call.refer_target = "referred", str(body.get("target_uri", ""))
            if self.end_on_refer:  # the SIP peer takes the call away; OpenAI's session ends
                self._spawn(call, self._end(call, "referred"))
        elif operation == "hangup" and call.state in ("accepted", "referred"):
            call.hung_up_by = "client"
            await self._end(call, "hung up by the client")
        else:
            return _error(400, f"cannot {operation} a call that is {call.state}", "invalid_state")
        return Response(status_code=200)

    async def _create(self, request: Request) -> Response:
        """``calls.create``: a WebRTC call from an SDP offer (multipart ``sdp`` + ``session``)."""
        if not self._authorized(request.headers):
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        form = await request.form()
        offer, raw_session = form.get("sdp"), form.get("session")
        if not isinstance(offer, str) or not offer.startswith("v=0"):
            return _error(400, "sdp must be an SDP offer")
        try:
            session = orjson.loads(raw_session) if isinstance(raw_session, str) else {}
        except orjson.JSONDecodeError:
            return _error(400, "session is not JSON")
        self._check_params("create", {"sdp": offer, "session": session})
        call_id = f"rtc_{uuid.uuid4().hex[:24]}"
        self.calls[call_id] = StandInCall(call_id, [], state="accepted", accept=session)
        self.requests.append(("create", call_id))
        self._note(call_id, "create")
        answer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=stand-in\r\nt=0 0\r\n"
        location = f"/v1/realtime/calls/{call_id}"
        return Response(answer, 201, media_type="application/sdp", headers={"Location": location})

    def _check_params(self, operation: str, body: dict[str, Any]) -> None:
        """REST bodies against the SDK's own request types (keys and values)."""
        from openai.types.realtime import (
            call_accept_params,
            call_create_params,
            call_refer_params,
            call_reject_params,
        )

        params: Any = {
            "create": call_create_params.CallCreateParams,
            "accept": call_accept_params.CallAcceptParams,
            "reject": call_reject_params.CallRejectParams,
            "refer": call_refer_params.CallReferParams,
        }.get(operation)
        if params is None:
            if body:
                self.violations.append(f"{operation}: takes no body, got {sorted(body)}")
            return
        unknown = set(body) - set(params.__annotations__)
        if unknown:
            self.violations.append(
                f"{operation}: fields the SDK does not define: {sorted(unknown)}"
            )
        try:
            TypeAdapter(params).validate_python(body)
        except Exception as exc:
            self.violations.append(f"{operation}: {exc}")
        if operation == "create":
            from openai.types.realtime import realtime_session_create_request_param as request

            known = set(request.RealtimeSessionCreateRequestParam.__annotations__)
            unknown = set(body.get("session") or {}) - known
            if unknown:
                self.violations.append(f"create: session fields unknown: {sorted(unknown)}")

    # --- the sideband: /v1/realtime?call_id=… (1.4) ----------------------------------------

    async def _sideband(self, websocket: WebSocket) -> None:
        call = self.calls.get(websocket.query_params.get("call_id", ""))
        if not self._authorized(websocket.headers):
            await websocket.close(1008)
            return
        if (
            call is None
            or call.state != "accepted"
            or call.sideband is not None
            or call.refuse_attach
        ):
            await websocket.close(1008)  # before accept: a refused handshake (HTTP 403)
            return
        await websocket.accept()
        call.attaches += 1
        if call.upstream is None:
            try:
                await self._open_upstream(call)
            except Exception:
                log.exception("stand-in could not open the call's session", call_id=call.call_id)
                raise
        call.sideband = websocket
        try:
            while True:
                frame = await websocket.receive_text()
                await self._from_client(call, frame)
        except (WebSocketDisconnect, RuntimeError):
            pass
        except Exception:
            log.exception("stand-in sideband failed", call_id=call.call_id)
            raise
        finally:
            if call.sideband is websocket:
                call.sideband = None

    async def _open_upstream(self, call: StandInCall) -> None:
        session = dict(call.accept or {})
        model = str(session.pop("model", "gpt-realtime"))
        call.upstream = await connect(
            f"{self.model_url}?{urlencode({'model': model})}",
            additional_headers={"Authorization": f"Bearer {self.api_key or 'local'}"},
            compression=None,
        )
        # The accepted session is the call's session; its session.updated is ours, not theirs.
        await call.upstream.send(
            orjson.dumps({"type": "session.update", "session": session}).decode()
        )
        call.output = OutputBuffer(self.playback_rate)
        self._spawn(call, self._pump(call))

    async def _from_client(self, call: StandInCall, frame: str) -> None:
        event = orjson.loads(frame)
        call.client_events.append(event)
        self._check_client_event(event)
        kind = event.get("type")
        if kind in ("input_audio_buffer.append", "conversation.item.truncate"):
            # 1.4: on a SIP call the media is OpenAI's; a client sending audio or truncating
            # has misunderstood the call (and the real service would reject it).
            self.violations.append(f"client sent {kind} on a SIP call")
            return
        if kind == "output_audio_buffer.clear":
            for out in call.output.clear():
                await self._to_sideband(call, out)
            return
        if call.upstream is not None:
            await call.upstream.send(frame)

    def _check_client_event(self, event: dict[str, Any]) -> None:
        from openai.types.realtime import RealtimeClientEvent

        try:
            TypeAdapter(RealtimeClientEvent).validate_python(event)
        except Exception as exc:
            self.violations.append(f"client event {event.get('type')}: {exc}")

    async def _pump(self, call: StandInCall) -> None:
        """Upstream → the attached sideband, with OpenAI's handling of output audio."""
        assert call.upstream is not None
        own_update_answered = False
        try:
            async for frame in call.upstream:
                event = orjson.loads(frame)
                kind = event.get("type")
                if kind == "session.updated" and not own_update_answered:
                    own_update_answered = True
                    continue
                if kind == "response.output_audio.delta":
                    rid = str(event.get("response_id", ""))
                    for out in call.output.audio(rid, event.get("delta", ""), time.monotonic()):
                        await self._to_sideband(call, out)
                    continue  # the audio goes to the caller's leg, not to us
                if kind == "input_audio_buffer.speech_started":
                    for out in call.output.clear():
                        await self._to_sideband(call, out)
                await self._to_sideband(call, event)
                if kind == "response.done":
                    rid = str((event.get("response") or {}).get("id", ""))
                    end = call.output.response_done(rid)
                    if end is not None:
                        self._spawn(call, self._play_out(call, rid, end))
        except ConnectionClosed:
            pass

    async def _play_out(self, call: StandInCall, response_id: str, end: float) -> None:
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        for out in call.output.played_out(response_id):
            await self._to_sideband(call, out)

    async def _to_sideband(self, call: StandInCall, event: dict[str, Any]) -> None:
        if call.sideband is None:
            return  # nobody attached: events in the gap are lost, as on a broken socket
        self._note(call.call_id, str(event.get("type")))
        try:
            await call.sideband.send_text(orjson.dumps(event).decode())
        except (RuntimeError, OSError, WebSocketDisconnect):
            pass

    def _note(self, call_id: str, step: str) -> None:
        self.timeline.setdefault(call_id, []).append(step)
        self.first_seen.setdefault(call_id, {}).setdefault(step, time.monotonic())

    def _spawn(self, call: StandInCall, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        call.tasks.add(task)
        task.add_done_callback(call.tasks.discard)

    async def _end(self, call: StandInCall, why: str) -> None:
        """The call is over at OpenAI: the session ends and the sideband is closed cleanly."""
        if call.state in ("ringing", "accepted", "referred"):
            call.state = "ended"
        call.ended.set()
        sideband, call.sideband = call.sideband, None
        if sideband is not None:
            try:
                await sideband.close(NORMAL_CLOSURE, why)
            except (RuntimeError, OSError):
                pass
        if call.upstream is not None:
            await call.upstream.close()
        current = asyncio.current_task()
        for task in list(call.tasks):
            if task is not current:
                task.cancel()
