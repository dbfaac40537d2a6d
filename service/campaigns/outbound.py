"""One outbound call: validate, remember what it was placed with, ask the carrier to dial.

``POST /v1/calls`` and the campaign dispatcher both come through :meth:`OutboundCalls.place`.
Validation happens before anything is dialed: ``to``/``from`` must be E.164 (``phonenumbers``),
the profile must exist and every ``{variable}`` it uses must be given.

How variables reach the call: the dial record (``store.dials``, keyed by a fresh dial id) holds
profile name and variables; the carrier puts the dial id in its answer URL; the voice webhook
reads the record and passes profile and variables as stream ``<Parameter>``s; the factory
fills the profile in at stream start. So the call's setup travels with the call itself, to
whichever replica takes the stream, and is stored before the carrier can ask for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from service.agent.profiles import AgentProfile, Profiles
from service.campaigns.contacts import validate_e164
from service.settings import Settings
from service.store.calls import CallStore
from service.store.dials import DialRecords
from service.telephony.events import DialRequest

__all__ = ["Dialer", "OutboundCalls", "OutboundError", "OutboundRequest", "PlacedCall"]

log = structlog.get_logger(__name__)


class Dialer(Protocol):
    """A carrier edge that places calls (``TwilioDialer``); raises ``CarrierError``."""

    async def dial(self, request: DialRequest) -> str: ...


class OutboundError(ValueError):
    """The request cannot be dialed as given (bad number, unknown profile, missing
    variables, no carrier configured)."""


@dataclass(frozen=True)
class OutboundRequest:
    to: str
    from_: str = ""
    profile: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    campaign_id: str = ""
    contact_id: str = ""


@dataclass(frozen=True)
class PlacedCall:
    call_sid: str
    dial_id: str
    to: str
    from_: str
    profile: str


class OutboundCalls:
    def __init__(
        self,
        settings: Settings,
        profiles: Callable[[], Profiles],
        dialer: Dialer | None,
        store: CallStore,
        dials: DialRecords,
    ) -> None:
        self.settings = settings
        self._profiles = profiles
        self.dialer = dialer
        self.store = store
        self.dials = dials

    def profile(self, name: str) -> AgentProfile:
        profiles = self._profiles()
        profile = profiles.by_name(name) if name else profiles.default
        if profile is None:
            raise OutboundError(f"unknown profile {name!r}")
        return profile

    def detect_machine(self, profile: AgentProfile) -> str:
        mode = self.settings.outbound_machine_detection
        if mode == "off":
            return ""
        if mode == "auto":
            return "message_end" if profile.voicemail_message else "answer"
        return "message_end" if mode == "DetectMessageEnd" else "answer"

    def check(self, request: OutboundRequest) -> tuple[str, str, AgentProfile]:
        """(to, from, profile) validated; ``OutboundError`` says what is wrong."""
        try:
            to = validate_e164(request.to)
            from_ = validate_e164(request.from_ or self.settings.outbound_from_number)
        except ValueError as exc:
            raise OutboundError(str(exc)) from None
        profile = self.profile(request.profile)
        try:
            profile.with_variables(request.variables)
        except ValueError as exc:
            raise OutboundError(str(exc)) from None
        return to, from_, profile

    async def place(self, request: OutboundRequest) -> PlacedCall:
        """Dial. ``OutboundError`` before anything is sent; ``CarrierError`` from the edge
        (``retryable`` when nothing was placed and a later try may work)."""
        to, from_, profile = self.check(request)
        if self.dialer is None:
            raise OutboundError("outbound calls need TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
        dial_id = uuid.uuid4().hex
        await self.dials.save(
            dial_id,
            profile=profile.name,
            variables=request.variables,
            campaign_id=request.campaign_id,
            contact_id=request.contact_id,
        )
        tags = {
            name: value
            for name, value in (("campaign", request.campaign_id), ("contact", request.contact_id))
            if value
        }
        call_sid = await self.dialer.dial(
            DialRequest(
                to=to,
                from_=from_,
                dial_id=dial_id,
                tags=tags,
                detect_machine=self.detect_machine(profile),
                ring_timeout_s=self.settings.outbound_ring_timeout_seconds,
                time_limit_s=self.settings.outbound_time_limit_seconds,
            )
        )
        self.store.update_call(
            call_sid,
            direction="outbound-api",
            to=to,
            profile=profile.name,
            dial_id=dial_id,
            campaign_id=request.campaign_id or None,
            contact_id=request.contact_id or None,
            **{"from": from_},
        )
        self.store.append_event(call_sid, "dialed", to=to, profile=profile.name)
        log.info("outbound call placed", call_sid=call_sid, profile=profile.name)
        return PlacedCall(call_sid, dial_id, to, from_, profile.name)
