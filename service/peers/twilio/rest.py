"""A stand-in for Twilio's REST API that places calls (protocols.md A.5; sip-and-outbound 3).

``POST /2010-04-01/Accounts/{AC}/Calls.json`` (``calls.create``) answers 201 with a call
resource and then plays the call out in the background, as Twilio would:

* status callbacks (signed, ``SequenceNumber`` from 0) for the events asked for:
  ``initiated``, ``ringing``, then ``answered`` (``CallStatus=in-progress``) and the final
  ``completed`` — or a final ``busy`` / ``no-answer`` / ``failed``;
* on answer, the callee: a :class:`~service.peers.twilio.client.Softphone` fetches the call's
  ``Url`` (signed, ``Direction=outbound-api``) and streams. A *person* speaks (a WAV, or
  silence); an *answering machine* plays its greeting then a beep, then listens;
* the async AMD verdict (``AnsweredBy``) to ``AsyncAmdStatusCallback``: ``human`` soon after
  answer; a machine gives ``machine_start`` (``Enable``) or, after its greeting and beep,
  ``machine_end_beep`` (``DetectMessageEnd``);
* ``POST …/Calls/{sid}.json`` with ``Status=completed`` hangs the callee up.

Who the callee is comes from ``behaviours[to]`` (default ``person``). ``rate_limit`` answers
the next N creates with 429 / code 20429 (never processed, as Twilio documents). Every create
is timestamped (``created``) and live calls counted (``live``, ``max_live``) so tests can
check pace and concurrency as Twilio would see them. A call is live from create until its
final status callback has been sent.

Memory: one task and one softphone per live call; the request log grows with the test.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import math
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from service.peers.twilio.client import Softphone

__all__ = ["Behaviour", "TwilioRestPeer"]

log = structlog.get_logger(__name__)
API = "2010-04-01"
FINAL = ("completed", "busy", "no-answer", "failed", "canceled")


@dataclass(frozen=True)
class Behaviour:
    """How the callee answers. ``kind``: person | machine | busy | no-answer | failed."""

    kind: str = "person"
    talk_s: float = 2.0  # how long a person stays on the line (if nobody hangs up)
    ring_s: float = 0.2
    greeting_s: float = 1.5  # a machine's greeting before its beep
    audio: Path | None = None  # what a person (or the machine's greeting) says


@dataclass
class PlacedCall:
    sid: str
    form: dict[str, str]
    events: list[str]
    created_at: float
    status: str = "queued"
    answered_by: str = ""
    phone: Softphone | None = None
    sequence: itertools.count = field(default_factory=itertools.count)


class TwilioRestPeer:
    """Use ``async with TwilioRestPeer(...) as twilio``; point ``TWILIO_API_BASE_URL`` at
    ``twilio.base_url``."""

    def __init__(self, account_sid: str, auth_token: str, *, speed: float = 1.0) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.validator = RequestValidator(auth_token)
        self.behaviours: dict[str, Behaviour] = {}
        self.rate_limit = 0
        self.calls: dict[str, PlacedCall] = {}
        self.created: list[float] = []  # monotonic time of every accepted create
        self.refused: list[float] = []  # 429s
        self.live = 0
        self.max_live = 0
        self.speed = speed
        self.base_url = ""
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None
        self._server: uvicorn.Server | None = None
        self._serve: asyncio.Task[None] | None = None
        base = f"/{API}/Accounts/{{account}}/Calls"
        self.app = Starlette(
            routes=[
                Route(f"{base}.json", self._create, methods=["POST"]),
                Route(f"{base}/{{sid}}.json", self._update, methods=["POST"]),
            ]
        )

    async def __aenter__(self) -> TwilioRestPeer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_config=None, lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._serve = asyncio.create_task(self._server.serve(sockets=[sock]))
        self._http = httpx.AsyncClient(timeout=10.0)
        while not self._server.started:
            if self._serve.done():
                self._serve.result()
                raise RuntimeError("REST peer stopped during start-up")
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.should_exit = True
        if self._serve is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._serve
        if self._http is not None:
            await self._http.aclose()

    async def wait_idle(self, timeout: float) -> bool:  # noqa: ASYNC109
        """True once no placed call is still playing out."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        return not self._tasks

    # -- REST -----------------------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return scheme.lower() == "basic" and (user, password) == (
            self.account_sid, self.auth_token,
        )  # fmt: skip

    async def _create(self, request: Request) -> JSONResponse:
        if not self._authorised(request):
            return _error(401, 20003, "Authenticate")
        form = await request.form()
        fields = {k: str(v) for k, v in form.items()}
        if self.rate_limit > 0:
            self.rate_limit -= 1
            self.refused.append(time.monotonic())
            return _error(429, 20429, "Too Many Requests")
        for required in ("To", "From", "Url"):
            if not fields.get(required):
                return _error(400, 21205 if required == "Url" else 21201, f"{required} is required")
        call = PlacedCall(
            sid="CA" + secrets.token_hex(16),
            form=fields,
            events=[str(v) for v in form.getlist("StatusCallbackEvent")],
            created_at=time.monotonic(),
        )
        self.calls[call.sid] = call
        self.created.append(call.created_at)
        self.live += 1
        self.max_live = max(self.max_live, self.live)
        task = asyncio.create_task(self._play(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return JSONResponse(self._resource(call), status_code=201)

    async def _update(self, request: Request) -> JSONResponse:
        if not self._authorised(request):
            return _error(401, 20003, "Authenticate")
        form = {k: str(v) for k, v in (await request.form()).items()}
        call = self.calls.get(request.path_params["sid"])
        if call is None:
            return _error(404, 20404, "The requested resource was not found")
        if call.status in FINAL:
            return _error(400, 21220, "Call is not in-progress. Cannot redirect.")
        if form.get("Status") in ("completed", "canceled") and call.phone is not None:
            call.phone.hangup()
        return JSONResponse(self._resource(call))

    def _resource(self, call: PlacedCall) -> dict[str, object]:
        return {
            "sid": call.sid, "account_sid": self.account_sid, "status": call.status,
            "to": call.form.get("To"), "from": call.form.get("From"),
            "direction": "outbound-api", "answered_by": call.answered_by or None,
            "api_version": API, "queue_time": "0",
            "uri": f"/{API}/Accounts/{self.account_sid}/Calls/{call.sid}.json",
        }  # fmt: skip

    # -- the call -------------------------------------------------------------------------

    async def _play(self, call: PlacedCall) -> None:
        behaviour = self.behaviours.get(call.form["To"], Behaviour())
        started = time.monotonic()
        try:
            await self._status(call, "initiated", event="initiated")
            await asyncio.sleep(behaviour.ring_s / self.speed)
            await self._status(call, "ringing", event="ringing")
            if behaviour.kind in ("busy", "no-answer", "failed"):
                await self._status(call, behaviour.kind, final=True)
                return
            await self._status(call, "in-progress", event="answered")
            await self._answer(call, behaviour)
            duration = math.ceil(time.monotonic() - started)
            await self._status(call, "completed", final=True, duration=duration)
        except Exception:
            log.exception("REST peer call failed", call_sid=call.sid)
            if call.status not in FINAL:
                await self._status(call, "failed", final=True)
        finally:
            self.live -= 1

    async def _answer(self, call: PlacedCall, behaviour: Behaviour) -> None:
        url = urlsplit(call.form["Url"])
        base = f"{url.scheme}://{url.netloc}"
        path = url.path + (f"?{url.query}" if url.query else "")
        machine = behaviour.kind == "machine"
        seconds = behaviour.talk_s if not machine else behaviour.greeting_s + 8.0
        phone = Softphone(
            base,
            auth_token=self.auth_token,
            account_sid=self.account_sid,
            call_sid=call.sid,
            from_number=call.form["From"],
            to_number=call.form["To"],
            direction="outbound-api",
            voice_path=path,
            seconds=seconds / self.speed,
            audio=behaviour.audio,
            http_client=self._http,
        )
        call.phone = phone
        await phone.dial()
        await phone.connect()
        amd = call.form.get("MachineDetection", "")
        if amd:
            verdict_task = asyncio.create_task(self._amd(call, behaviour, amd))
        await phone.finished()
        if amd and not verdict_task.done():
            verdict_task.cancel()

    async def _amd(self, call: PlacedCall, behaviour: Behaviour, mode: str) -> None:
        if behaviour.kind != "machine":
            await asyncio.sleep(0.3 / self.speed)
            verdict = "human"
        elif mode == "DetectMessageEnd":
            await asyncio.sleep(behaviour.greeting_s / self.speed)
            verdict = "machine_end_beep"
        else:
            await asyncio.sleep(0.8 / self.speed)
            verdict = "machine_start"
        call.answered_by = verdict
        target = call.form.get("AsyncAmdStatusCallback", "")
        if target and call.form.get("AsyncAmd", "").lower() == "true":
            duration_ms = int((time.monotonic() - call.created_at) * 1000)
            await self._post(target, {"CallSid": call.sid, "AccountSid": self.account_sid,
                                      "AnsweredBy": verdict,
                                      "MachineDetectionDuration": str(duration_ms)})  # fmt: skip

    async def _status(
        self, call: PlacedCall, status: str, *, event: str = "", final: bool = False,
        duration: int | None = None,
    ) -> None:  # fmt: skip
        call.status = status
        target = call.form.get("StatusCallback", "")
        # A.5: only the subscribed events are sent; "completed" covers every final status.
        if not target or (not final and event not in call.events):
            return
        params = {
            "CallSid": call.sid, "AccountSid": self.account_sid, "CallStatus": status,
            "From": call.form["From"], "To": call.form["To"], "Direction": "outbound-api",
            "ApiVersion": API, "SequenceNumber": str(next(call.sequence)),
            "CallbackSource": "call-progress-events",
        }  # fmt: skip
        if duration is not None:
            params["CallDuration"] = str(duration)
        if call.answered_by:
            params["AnsweredBy"] = call.answered_by
        await self._post(target, params)

    async def _post(self, url: str, params: dict[str, str]) -> None:
        assert self._http is not None
        signature = self.validator.compute_signature(url, params)
        try:
            await self._http.post(url, data=params, headers={"X-Twilio-Signature": signature})
        except httpx.HTTPError as exc:
            log.warning("REST peer callback failed", url=url, error=repr(exc))


def _error(status: int, code: int, message: str) -> JSONResponse:
    body = {"code": code, "message": message, "status": status,
            "more_info": f"https://www.twilio.com/docs/errors/{code}"}  # fmt: skip
    return JSONResponse(body, status_code=status)
