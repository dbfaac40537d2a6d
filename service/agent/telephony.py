"""Built-in telephony tools (hang up, transfer) and the Twilio REST calls behind them.

:class:`TwilioCalls` wraps the official ``twilio`` SDK (protocols.md A.5): hanging up is
``calls(sid).update(status="completed")``, a transfer is ``calls(sid).update(twiml=…)`` with a
``<Dial>`` (replacing the running ``<Connect><Stream>``, which ends our media stream without
hanging up). Requests use the SDK's asyncio support (``AsyncTwilioHttpClient`` + the
``*_async`` methods, on aiohttp, which the SDK depends on), so a slow Twilio API never blocks
the event loop or the audio of any call.

Pointing at a stand-in: every Twilio product is a ``twilio.base.domain.Domain`` whose
``base_url`` (``"https://api.twilio.com"`` for ``client.api``) is read on every request to
build the absolute URL. ``TwilioCalls(base_url=…)`` sets ``client.api.base_url``, so the SDK
builds ``{base_url}/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` itself; request
building, auth and error parsing stay the SDK's. Edge/region host rewriting is turned off for
such a client (it would rewrite the stand-in's host name).

Memory: one ``twilio.rest.Client`` and one aiohttp session (a pooled connector, at most
aiohttp's default 100 connections) per :class:`TwilioCalls`, shared by all calls of the
process; a request holds only its small form and the call JSON in the reply (~2 KB).

The tool functions (:func:`end_call`, :func:`transfer_call`) are plain async functions
taking a ``ctx`` (``.call_sid``, ``.services``); the agent's tool registry wraps them and
builds their JSON Schema from the type hints (skipping ``ctx``). Their docstrings are written
for the model.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any, Protocol

import aiohttp
import structlog
from pydantic import Field
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

__all__ = [
    "ALREADY_ENDED_CODES",
    "CallNotActiveError",
    "TelephonyError",
    "TwilioCalls",
    "end_call",
    "transfer_call",
    "transfer_twiml",
    "validate_transfer_target",
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
_HUMAN_ALIASES = frozenset({"", "human", "agent", "person", "operator", "representative"})
_E164 = re.compile(r"\+[1-9]\d{7,14}")  # "+" then 8–15 digits, no leading zero
_SIP_URI = re.compile(
    r"sip:[^\s@<>\"']+@[A-Za-z0-9.-]+(?::\d{1,5})?(?:;[^\s<>\"']*)?", re.IGNORECASE
)
_PHONE_PUNCTUATION = re.compile(r"[\s().-]")


class TelephonyError(Exception):
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
        try:
            # The SDK's async client ignores its own timeout setting (aiohttp gets
            # timeout=None), so the bound is applied here.
            async with asyncio.timeout(self._timeout):
                return await context.update_async(**params)
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


# -- transfer target ----------------------------------------------------------------------


def validate_transfer_target(target: str, settings: object = None) -> str:
    """The dialable target for ``target``: an E.164 number (spaces, dashes, dots and
    parentheses are dropped), a ``sip:user@host`` URI, or — for "human"/"agent"/empty — the
    configured ``transfer_default_number``. Raises ValueError with a sentence the agent
    can say.

    If ``settings.transfer_allowed_prefixes`` is set (e.g. ``("+1", "sip:")``), the target
    must start with one of them: the model picks the target, so without a list a caller can
    talk it into dialling any number (toll fraud).
    """
    raw = (target or "").strip()
    if raw.lower() in _HUMAN_ALIASES:
        raw = str(getattr(settings, "transfer_default_number", "") or "").strip()
        if not raw:
            raise ValueError("I'm sorry, I can't transfer you to a person right now.")
    if raw[:4].lower() == "sip:":
        if not _SIP_URI.fullmatch(raw):
            raise ValueError("I can't transfer the call to that address.")
        dialable = "sip:" + raw[4:]
    else:
        dialable = _PHONE_PUNCTUATION.sub("", raw)
        if not _E164.fullmatch(dialable):
            raise ValueError(
                "I can't transfer the call to that number. I need the full number with "
                "the country code."
            )
    allowed = tuple(getattr(settings, "transfer_allowed_prefixes", ()) or ())
    if allowed and not dialable.lower().startswith(tuple(p.lower() for p in allowed)):
        raise ValueError("I'm not able to transfer calls to that number.")
    return dialable


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


# -- tools (wrapped by the agent's tool registry) -----------------------------------------


class TelephonyServices(Protocol):
    @property
    def twilio_calls(self) -> TwilioCalls | None: ...

    @property
    def settings(self) -> object: ...


class TelephonyContext(Protocol):
    @property
    def call_sid(self) -> str: ...

    @property
    def services(self) -> TelephonyServices: ...


def _calls(ctx: TelephonyContext) -> TwilioCalls:
    calls = getattr(ctx.services, "twilio_calls", None)
    if calls is None:
        raise TelephonyError(
            "Twilio REST credentials are not configured", operation="tool", call_sid=ctx.call_sid
        )
    return calls


async def end_call(
    ctx: TelephonyContext,
    reason: Annotated[
        str, Field(description='Why the call ends, e.g. "caller_done" or "caller_request".')
    ] = "caller_done",
) -> dict[str, object]:
    """End the phone call. Say a short goodbye first; the line is hung up after your goodbye
    has played. Use it when the caller is done or asks to hang up.

    The worker delays this call until the goodbye audio has been heard (marks echoed), so all
    that is left here is the REST hang-up; ``reason`` reaches the audit with the arguments.
    A call that already ended counts as ended (``already_ended``).
    """
    result = await _calls(ctx).hang_up(ctx.call_sid)
    return {"ended": True, "already_ended": bool(result.get("already_ended"))}


async def transfer_call(
    ctx: TelephonyContext,
    target: Annotated[
        str,
        Field(
            description='A phone number with country code (like "+15551234567"), a SIP '
            'address ("sip:user@example.com"), or "human" for a person on our team.'
        ),
    ],
) -> dict[str, object]:
    """Transfer the caller to another phone number or to a person on our team. Tell the
    caller you are transferring them before you call this.

    Validates ``target`` (:func:`validate_transfer_target`; a ValueError carries a sentence
    the agent can say), then redirects the call to ``<Say>`` + ``<Dial>`` TwiML. The redirect
    ends our media stream; the worker sees the stream stop. Raises
    :class:`CallNotActiveError` if the caller already hung up.
    """
    dialable = validate_transfer_target(target, getattr(ctx.services, "settings", None))
    await _calls(ctx).redirect(ctx.call_sid, transfer_twiml(dialable))
    return {"transferred": True, "target": dialable}
