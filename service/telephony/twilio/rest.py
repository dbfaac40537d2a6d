"""Twilio's REST API for live calls: hang up, and redirect to transfer TwiML (protocols.md A.5).

:class:`TwilioCalls` wraps the official ``twilio`` SDK: hanging up is
``calls(sid).update(status="completed")``, a transfer is ``calls(sid).update(twiml=…)`` with a
``<Dial>`` (replacing the running ``<Connect><Stream>``, which ends our media stream without
hanging up). Requests use the SDK's asyncio support (``AsyncTwilioHttpClient`` + the
``*_async`` methods, on aiohttp, which the SDK depends on), so a slow Twilio API never blocks
the event loop or the audio of any call. Only the Twilio edge uses it: the worker sends
neutral ``HangUp``/``Transfer`` commands and the media-stream runner turns them into these.

Pointing at a stand-in: every Twilio product is a ``twilio.base.domain.Domain`` whose
``base_url`` (``"https://api.twilio.com"`` for ``client.api``) is read on every request to
build the absolute URL. ``TwilioCalls(base_url=…)`` sets ``client.api.base_url``, so the SDK
builds ``{base_url}/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` itself; request
building, auth and error parsing stay the SDK's. Edge/region host rewriting is turned off for
such a client (it would rewrite the stand-in's host name).

Memory: one ``twilio.rest.Client`` and one aiohttp session (a pooled connector, at most
aiohttp's default 100 connections) per :class:`TwilioCalls`, shared by all calls of the
process; a request holds only its small form and the call JSON in the reply (~2 KB).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import structlog
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from service.telephony.events import CarrierError

__all__ = [
    "ALREADY_ENDED_CODES",
    "CallNotActiveError",
    "TelephonyError",
    "TwilioCalls",
    "transfer_twiml",
]

log = structlog.get_logger(__name__)

# Twilio error codes meaning "this call is no longer there to update":
# 20404 "The requested resource … was not found" (HTTP 404) — what hanging up an ended call
#   returns (protocols.md A.5);
# 21220 "Invalid call state" (HTTP 400, "Call is not in-progress. Cannot redirect.") — what an
#   update of an ended call returns for redirects, and what some update paths return for a
#   status change of an ended call. Both count as "already ended" for a hang-up.
ALREADY_ENDED_CODES: frozenset[int] = frozenset({20404, 21220})

TWIML_MAX_CHARS = 4000
"""protocols.md A.5: ``twiml`` on create/update is at most 4000 characters."""

TRANSFER_SAY = "Transferring you now."


class TelephonyError(CarrierError):
    """A Twilio REST call failed (network, timeout, auth, 4xx/5xx).

    ``status`` is the HTTP status (None for network errors and timeouts), ``code`` Twilio's
    error code when it sent one (https://www.twilio.com/docs/errors/{code}); ``retryable``
    is True for network errors, timeouts, 429 and 5xx.
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str = "",
        call_sid: str = "",
        status: int | None = None,
        code: int | None = None,
    ) -> None:
        self.message = message
        self.operation = operation
        self.call_sid = call_sid
        self.status = status
        self.code = code
        self.retryable = status is None or status == 429 or status >= 500
        where = f"{operation} {call_sid}".strip()
        http = f"HTTP {status}" if status is not None else "no response"
        twilio = f", Twilio error {code}" if code is not None else ""
        super().__init__(f"{where}: {http}{twilio}: {message}")


class CallNotActiveError(TelephonyError):
    """The call has ended (or never existed), so it cannot be redirected."""


class TwilioCalls:
    """Hang-up and redirect of live calls through the Twilio REST API (async).

    Create it anywhere; the aiohttp session is opened on first use inside the running loop
    and closed by :meth:`aclose` (or ``async with``).
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not account_sid or not auth_token:
            raise ValueError("TwilioCalls needs an account SID and an auth token")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.base_url = base_url.rstrip("/") if base_url else None
        self._timeout = timeout
        self._client: Client | None = None
        self._http: AsyncTwilioHttpClient | None = None

    def __repr__(self) -> str:  # never shows the token
        return f"TwilioCalls(account_sid={self.account_sid!r}, base_url={self.base_url!r})"

    async def __aenter__(self) -> TwilioCalls:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session (idempotent); a later call opens a new one."""
        http, self._http, self._client = self._http, None, None
        if http is not None:
            await http.close()

    # -- operations -----------------------------------------------------------------------

    async def hang_up(self, call_sid: str) -> dict[str, Any]:
        """End the call (``Status=completed``). A call that has already ended counts as
        success: ``{"call_sid": …, "already_ended": True, "twilio_code": …}``."""
        try:
            call = await self._update("hang_up", call_sid, status="completed")
        except TelephonyError as exc:
            if exc.code in ALREADY_ENDED_CODES or exc.status == 404:
                log.info("twilio_hang_up_already_ended", call_sid=call_sid, code=exc.code)
                return {"call_sid": call_sid, "already_ended": True, "twilio_code": exc.code}
            raise
        return {"call_sid": call_sid, "already_ended": False, "status": call.status}

    async def redirect(self, call_sid: str, twiml: str) -> dict[str, Any]:
        """Replace the call's running TwiML with ``twiml`` (ends the media stream, keeps the
        call). Raises :class:`CallNotActiveError` if the call has ended."""
        if len(twiml) > TWIML_MAX_CHARS:
            raise ValueError(f"TwiML is {len(twiml)} chars; Twilio takes at most {TWIML_MAX_CHARS}")
        try:
            call = await self._update("redirect", call_sid, twiml=twiml)
        except TelephonyError as exc:
            if exc.code in ALREADY_ENDED_CODES or exc.status == 404:
                raise CallNotActiveError(
                    exc.message,
                    operation="redirect",
                    call_sid=call_sid,
                    status=exc.status,
                    code=exc.code,
                ) from exc
            raise
        return {"call_sid": call_sid, "status": call.status}

    async def create_call(self, **params: Any) -> dict[str, Any]:
        """Place an outbound call (``calls.create``, protocols.md A.5; sip-and-outbound.md 3.1).

        ``params`` are the SDK's keyword arguments (``to``, ``from_``, ``url``,
        ``status_callback``, ``machine_detection``, ``async_amd`` …). Returns ``{"call_sid",
        "status"}``; raises :class:`TelephonyError` (``retryable`` for 429/20429, 5xx and
        network errors: a request Twilio never processed places no call)."""
        return await self._request("create", "", lambda: self._api().calls.create_async(**params))

    # -- internals ------------------------------------------------------------------------

    def _api(self) -> Client:
        # Built lazily: aiohttp's ClientSession must be created inside a running loop.
        # No await between the check and the assignment, so concurrent first uses share one.
        if self._client is None:
            self._http = AsyncTwilioHttpClient()
            client = Client(self.account_sid, self._auth_token, http_client=self._http)
            if self.base_url:
                client.api.base_url = self.base_url
                # TWILIO_EDGE/TWILIO_REGION from the environment would rewrite the host.
                client.edge = None
                client.region = None
            self._client = client
        return self._client

    async def _update(self, operation: str, call_sid: str, **params: str) -> Any:
        context = self._api().calls(call_sid)
        return await self._request(operation, call_sid, lambda: context.update_async(**params))

    async def _request(
        self, operation: str, call_sid: str, send: Callable[[], Awaitable[Any]]
    ) -> Any:
        try:
            # The SDK's async client ignores its own timeout setting (aiohttp gets
            # timeout=None), so the bound is applied here.
            async with asyncio.timeout(self._timeout):
                result = await send()
                if operation == "create":
                    return {"call_sid": result.sid, "status": result.status}
                return result
        except TwilioRestException as exc:
            raise TelephonyError(
                _rest_message(exc),
                operation=operation,
                call_sid=call_sid,
                status=exc.status,
                code=_int_or_none(exc.code),
            ) from exc
        except TwilioServiceException as exc:
            raise TelephonyError(
                exc.detail or exc.title,
                operation=operation,
                call_sid=call_sid,
                status=exc.status,
                code=exc.code,
            ) from exc
        except TimeoutError as exc:
            raise TelephonyError(
                f"no reply within {self._timeout:g} s", operation=operation, call_sid=call_sid
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TelephonyError(
                f"network error: {exc!r}", operation=operation, call_sid=call_sid
            ) from exc
        except (TwilioException, ValueError) as exc:  # e.g. a non-JSON 2xx body
            raise TelephonyError(
                f"bad reply: {exc!r}", operation=operation, call_sid=call_sid
            ) from exc


def _rest_message(exc: TwilioRestException) -> str:
    # The SDK prefixes Twilio's message with "Unable to update record: ".
    msg = str(exc.msg or "")
    return msg.split(": ", 1)[1] if msg.startswith("Unable to ") and ": " in msg else msg


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def transfer_twiml(target: str) -> str:
    """``<Say>Transferring you now.</Say><Dial>…</Dial>`` for a validated target. A SIP
    URI goes in a ``<Sip>`` noun: bare text in ``<Dial>`` is dialled as a phone number."""
    response = VoiceResponse()
    response.say(TRANSFER_SAY)
    if target.lower().startswith("sip:"):
        response.dial().sip(target)
    else:
        response.dial(target)
    return str(response)
