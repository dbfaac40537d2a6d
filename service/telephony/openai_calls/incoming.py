"""Reading a ``realtime.call.incoming`` webhook: who called whom, and which profile to use.

Sans-I/O: takes the event's ``data`` (already verified and parsed by the ``openai`` SDK)
and returns an ``IncomingCall``. ``sip_headers`` are the INVITE's headers and untrusted
(sip-and-outbound.md 1.2): they only pick a profile and fill the call record; nothing is
dialled or executed from them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["IncomingCall", "read_incoming_call", "sip_user"]

# RFC 3261 20.20/20.39 name-addr or addr-spec: the user part of a sip:/sips:/tel: URI.
_URI_USER = re.compile(r"(?:sips?|tel):([^@;>?\s]+)", re.IGNORECASE)
_MAX_VALUE = 256  # longer header values are cut: they land in Redis and logs


@dataclass(frozen=True, slots=True)
class IncomingCall:
    call_id: str
    from_number: str
    to_number: str
    profile_name: str = ""  # from an ``x-profile`` header (Twilio passes x- headers, 1.2)
    twilio_call_sid: str = ""  # ``X-Twilio-CallSid`` when Twilio <Dial><Sip>'d the call
    sip_call_id: str = ""

    def carrier_fields(self) -> dict[str, str]:
        return {"twilio_call_sid": self.twilio_call_sid, "sip_call_id": self.sip_call_id}


def sip_user(value: str) -> str:
    """``"Ann" <sip:+15550100@host>;tag=1`` → ``+15550100``; the value itself if no URI."""
    match = _URI_USER.search(value)
    return match.group(1) if match else value.strip()


def _headers(pairs: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """Lower-cased name → the first value (repeated headers keep their first entry)."""
    found: dict[str, str] = {}
    for pair in pairs:
        name = str(pair.get("name", "")).strip().lower()
        if name and name not in found:
            found[name] = str(pair.get("value", ""))[:_MAX_VALUE]
    return found


def read_incoming_call(call_id: str, sip_headers: Iterable[Mapping[str, str]]) -> IncomingCall:
    headers = _headers(sip_headers)
    return IncomingCall(
        call_id=call_id,
        from_number=sip_user(headers.get("from", "")),
        to_number=sip_user(headers.get("to", "")),
        profile_name=headers.get("x-profile", "").strip(),
        twilio_call_sid=headers.get("x-twilio-callsid", "").strip(),
        sip_call_id=headers.get("call-id", "").strip(),
    )
