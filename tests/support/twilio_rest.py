"""A local stand-in for the Twilio REST API's call-update endpoint (protocols.md A.5).

``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` with form ``Status=completed``
(hang up) or ``Twiml=…`` (redirect), HTTP Basic auth ``AccountSid:AuthToken``. It answers
with a call resource JSON shaped like Twilio's, or with Twilio's error JSON
(``{"code", "message", "more_info", "status"}``, the shape the SDK parses into
``TwilioRestException``):

* wrong or missing credentials → 401, code 20003 ("Authenticate");
* an AccountSid in the path other than the authenticated one → 404, code 20404;
* a sid in ``unknown`` → 404, code 20404;
* a sid in ``completed``: a redirect → 400, code 21220 ("Call is not in-progress. Cannot
  redirect."); a hang-up → ``completed_reply``: ``"404"`` (default: 404, code 20404 —
  what protocols.md A.5 records for hanging up an ended call) or ``"400"`` (400, code 21220).
  Which one real Twilio sends for ``Status=completed`` on a completed call is not pinned down
  by its docs, so the client treats both as "already ended" and the tests cover both;
* ``fail_with`` set (e.g. 500) → that status with code 20500 for every request;
* otherwise 200: hang-up moves the sid into ``completed``.

Every request that passes auth is appended to ``requests`` as ``(path, form)``; every
request's Basic-auth username (or "") to ``auth_users``. Memory grows with the requests a
test makes (a few hundred bytes each).

Runs under uvicorn on 127.0.0.1 on a port the OS picks (the socket is bound first and handed
to uvicorn, so there is no free-port race).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import socket
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

API_VERSION = "2010-04-01"


class TwilioRestStandIn:
    """Twilio's ``Calls/{CallSid}.json`` update endpoint on loopback. Use ``async with``."""

    def __init__(self, account_sid: str = "AC" + "a" * 32, auth_token: str = "token") -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.auth_users: list[str] = []
        self.completed: set[str] = set()
        self.unknown: set[str] = set()
        self.completed_reply: Literal["404", "400"] = "404"
        self.fail_with: int | None = None
        self.delay: float = 0.0  # seconds before answering (timeouts)
        self.base_url = ""
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[
                Route(
                    f"/{API_VERSION}/Accounts/{{account}}/Calls/{{call_sid}}.json",
                    self._update_call,
                    methods=["POST"],
                )
            ]
        )

    async def __aenter__(self) -> TwilioRestStandIn:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_config=None, lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start
                raise RuntimeError("Twilio stand-in stopped during start-up")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._server = self._task = None

    # -- the endpoint ---------------------------------------------------------------------

    async def _update_call(self, request: Request) -> JSONResponse:
        user, password = _basic_auth(request.headers.get("authorization", ""))
        self.auth_users.append(user)
        path = request.url.path
        if self.delay:
            await asyncio.sleep(self.delay)
        if (user, password) != (self.account_sid, self.auth_token):
            return _error(401, 20003, "Authenticate")
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.requests.append((path, form))
        account = request.path_params["account"]
        sid = request.path_params["call_sid"]
        if self.fail_with is not None:
            return _error(self.fail_with, 20500, "An internal server error has occurred")
        if account != self.account_sid or sid in self.unknown:
            return _error(404, 20404, f"The requested resource {path} was not found")
        status = form.get("Status")
        if sid in self.completed:
            if status == "completed" and self.completed_reply == "404":
                return _error(404, 20404, f"The requested resource {path} was not found")
            if status == "completed":
                return _error(400, 21220, "Call is not in-progress. Cannot update status.")
            return _error(400, 21220, "Call is not in-progress. Cannot redirect.")
        if status not in (None, "completed", "canceled"):
            return _error(400, 21218, f"Invalid value '{status}' for Status")
        if status is None and not (form.get("Twiml") or form.get("Url")):
            return _error(400, 21205, "Either Url or Twiml must be specified")
        if status is not None:
            self.completed.add(sid)
        return JSONResponse(self._call_json(sid, "completed" if status else "in-progress"))

    def _call_json(self, sid: str, status: str) -> dict[str, object]:
        now = format_datetime(datetime.now(UTC), usegmt=True)  # RFC 2822, as Twilio sends
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{sid}.json"
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "parent_call_sid": None,
            "date_created": now,
            "date_updated": now,
            "start_time": now,
            "end_time": now if status == "completed" else None,
            "duration": None,
            "to": "+15557650000",
            "to_formatted": "(555) 765-0000",
            "from": "+15551230000",
            "from_formatted": "(555) 123-0000",
            "phone_number_sid": "PN" + "b" * 32,
            "status": status,
            "direction": "inbound",
            "answered_by": None,
            "api_version": API_VERSION,
            "forwarded_from": None,
            "caller_name": None,
            "group_sid": None,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "trunk_sid": None,
            "uri": uri,
            "subresource_uris": {
                "notifications": uri.replace(".json", "/Notifications.json"),
                "recordings": uri.replace(".json", "/Recordings.json"),
            },
        }


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


def _basic_auth(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return user, password
