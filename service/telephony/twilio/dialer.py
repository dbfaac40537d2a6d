"""Outbound calls on Twilio: a neutral ``DialRequest`` → ``calls.create`` (sip-and-outbound 3.1).

The call is answered by our own voice webhook (``url=…/twilio/voice?dial=…``) rather than
inline ``twiml``: the webhook mints the stream token for the CallSid (unknown before
``create`` returns), pre-warms the model session, and turns the dial record into
``<Parameter>``s. Status callbacks ask for all four events (initiated, ringing, answered,
completed); answering-machine detection is asynchronous (``async_amd="true"``, a string in the
SDK) so the stream starts at answer and the verdict arrives at ``/twilio/amd``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from service.settings import Settings
from service.telephony.events import DialRequest
from service.telephony.twilio.rest import TwilioCalls

__all__ = ["TwilioDialer"]

STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
AMD_MODES = {"answer": "Enable", "message_end": "DetectMessageEnd"}


class TwilioDialer:
    def __init__(self, settings: Settings, calls: TwilioCalls) -> None:
        self.settings = settings
        self.calls = calls

    async def dial(self, request: DialRequest) -> str:
        """The new call's CallSid; ``TelephonyError`` (``retryable`` or not) otherwise."""
        query = urlencode({"dial": request.dial_id, **request.tags})
        base = self.settings.public_url
        params: dict[str, object] = {
            "to": request.to,
            "from_": request.from_,
            "url": f"{base}/twilio/voice?{query}",
            "method": "POST",
            "status_callback": f"{base}/twilio/status?{query}",
            "status_callback_event": STATUS_EVENTS,
            "status_callback_method": "POST",
            "timeout": request.ring_timeout_s,
            "time_limit": request.time_limit_s,
        }
        mode = AMD_MODES.get(request.detect_machine)
        if mode:
            params.update(
                machine_detection=mode,
                async_amd="true",
                async_amd_status_callback=f"{base}/twilio/amd?{query}",
                async_amd_status_callback_method="POST",
            )
        created = await self.calls.create_call(**params)
        return str(created["call_sid"])
