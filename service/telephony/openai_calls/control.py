"""Call control over OpenAI's REST API, through the official ``openai`` SDK (1.3).

``client.realtime.calls.accept / reject / refer / hangup``; the SDK builds the requests,
authenticates and parses errors, and honours ``OPENAI_BASE_URL`` (a stand-in in tests).
Every failure becomes a ``CarrierError`` the worker can act on; a 404 on hang-up means the
call had already ended, which is what a hang-up wants.

Memory: one ``AsyncOpenAI`` client (one pooled HTTP client) per process.
"""

from __future__ import annotations

from typing import Any

import openai
import structlog

from service.telephony.events import CarrierError

__all__ = ["OpenAICallControl", "refer_target"]

log = structlog.get_logger(__name__)


def refer_target(target: str) -> str:
    """A validated transfer target (E.164 or ``sip:``) as the REFER's ``target_uri``."""
    return target if target.lower().startswith(("sip:", "sips:", "tel:")) else f"tel:{target}"


class OpenAICallControl:
    def __init__(self, api_key: str, *, base_url: str = "", timeout: float = 10.0) -> None:
        self.client = openai.AsyncOpenAI(
            api_key=api_key or "unset", base_url=base_url or None, timeout=timeout, max_retries=2
        )
        # The SDK imports its resources and types on first use (hundreds of ms); pay that at
        # start, not inside the first call's webhook and accept.
        _ = self.client.realtime.calls, self.client.webhooks
        from openai.types.webhooks import UnwrapWebhookEvent  # noqa: F401

    async def accept(self, call_id: str, session: dict[str, Any]) -> None:
        await self._call("accept", call_id, self.client.realtime.calls.accept(call_id, **session))

    async def create_webrtc(self, offer_sdp: str, session: dict[str, Any]) -> tuple[str, str]:
        """A WebRTC call from a browser's SDP offer: ``(call_id, the SDP answer)``. The call's
        id is the last segment of the reply's ``Location`` (``/v1/realtime/calls/rtc_…``)."""
        try:
            reply = await self.client.realtime.calls.create(sdp=offer_sdp, session=session)  # type: ignore[arg-type]
        except openai.APIError as exc:
            raise CarrierError(f"create: {exc}") from exc
        location = reply.response.headers.get("location", "")
        call_id = location.rstrip("/").rsplit("/", 1)[-1]
        if not call_id.startswith("rtc_"):
            raise CarrierError(f"create: no call id in Location {location!r}")
        return call_id, reply.text

    async def reject(self, call_id: str, status_code: int) -> None:
        await self._call(
            "reject", call_id, self.client.realtime.calls.reject(call_id, status_code=status_code)
        )

    async def refer(self, call_id: str, target: str) -> None:
        uri = refer_target(target)
        await self._call(
            "refer", call_id, self.client.realtime.calls.refer(call_id, target_uri=uri)
        )

    async def hang_up(self, call_id: str) -> bool:
        """False when the call had already ended (404: nothing to hang up)."""
        try:
            await self._call("hangup", call_id, self.client.realtime.calls.hangup(call_id))
        except _AlreadyEnded:
            return False
        return True

    async def _call(self, operation: str, call_id: str, request: Any) -> None:
        try:
            await request
        except openai.NotFoundError as exc:
            raise _AlreadyEnded(
                f"{operation} {call_id}: the call is gone ({exc.status_code})"
            ) from exc
        except openai.APIError as exc:
            raise CarrierError(f"{operation} {call_id}: {exc}") from exc

    async def aclose(self) -> None:
        await self.client.close()


class _AlreadyEnded(CarrierError):
    """404: the call no longer exists at OpenAI (the caller hung up, or it was never there)."""
