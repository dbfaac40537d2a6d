"""Building a call: what every carrier edge asks of the middle when a call starts.

A carrier edge knows how to talk to its carrier and nothing about agents or models. When its
call's media is up it hands the factory a neutral ``CallStarted`` and its command sink, and
gets back a running ``CallWorker``: the profile for the dialed number, that profile's tools,
a model session (pre-warmed at the webhook, or opened now), the tools' context, the worker,
its entry in the live-call registry, and the call-bound log context.

Pre-warm is call set-up policy too: an edge that hears of a call before its media is up
(Twilio's voice webhook) calls ``prewarm`` so the greeting is ready when the stream starts.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from redis.asyncio import Redis

from service.agent.catalog import greeting_instruction
from service.agent.profiles import AgentProfile, Profiles
from service.agent.tools import ToolContext, ToolRegistry
from service.calls.prewarm import PrewarmedSessions
from service.calls.registry import CallRegistry
from service.calls.survival import SurvivalPolicy
from service.calls.timing import ServiceTimings
from service.calls.voicemail import VoicemailPolicy
from service.calls.worker import CallWorker, CommandSink
from service.metrics import Metrics
from service.realtime.backends import (
    call_accept_session,
    open_model_session,
    open_sideband_session,
    session_config,
)
from service.realtime.config import SessionConfig
from service.realtime.session import ModelSession
from service.settings import Settings
from service.store.audit import ToolAudit
from service.store.calls import CallStore
from service.telephony.events import AnswerDetected, CallerEvent, CallStarted
from service.telephony.numbers import TransferPolicy

__all__ = ["PROFILE_PARAMETER", "VARIABLE_PREFIX", "CallFactory", "CarrierCall"]

# An outbound call's setup as stream parameters (Twilio <Parameter>s; see campaigns.outbound).
PROFILE_PARAMETER = "profile"
VARIABLE_PREFIX = "var_"

log = structlog.get_logger(__name__)


class CarrierCall(Protocol):
    """What a carrier edge may do with the call the factory started for it (``CallWorker``
    is the one implementation)."""

    @property
    def call_sid(self) -> str: ...
    @property
    def end_reason(self) -> str | None: ...
    @property
    def model_ready(self) -> bool: ...
    async def on_event(self, event: CallerEvent) -> None: ...
    def finish(self, end_reason: str | None = None) -> str: ...
    async def close(self) -> None: ...


@dataclass
class CallFactory:
    """One per process. ``profiles`` and ``tools`` may be replaced at run time (tests do);
    each call reads them when it starts."""

    settings: Settings
    store: CallStore
    redis: Redis | None
    calls: CallRegistry[CallWorker]
    metrics: Metrics
    timings: ServiceTimings
    profiles: Profiles
    tools: ToolRegistry
    audit: ToolAudit | None = None
    prewarmed: PrewarmedSessions = field(default_factory=PrewarmedSessions)
    # Outbound calls' answer policies, gone with their worker.
    answer_policies: weakref.WeakKeyDictionary[CallWorker, VoicemailPolicy] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    def call_tools(self, profile: AgentProfile) -> ToolRegistry:
        """The tools a call on ``profile`` may use (checked against the catalogue at start)."""
        return self.tools.subset(profile.tools)

    def backend(self, profile: AgentProfile) -> str:
        return profile.backend or self.settings.realtime_backend

    def session_for(self, profile: AgentProfile) -> SessionConfig:
        instructions = profile.instructions
        if profile.wait_for_callee and profile.greeting:
            instructions += (
                f'\n\nWhen the callee first speaks, start by saying: "{profile.greeting}"'
            )
        return session_config(
            self.settings,
            instructions=instructions,
            voice=profile.voice,
            greeting=self.greeting_for(profile) or "",
            tools=tuple(self.call_tools(profile).openai_tools()),
        )

    def model_for(self, profile: AgentProfile) -> ModelSession:
        """A new, not yet opened model session for a call on ``profile``."""
        return open_model_session(self.settings, self.backend(profile), self.session_for(profile))

    def profile_for(self, to_number: str, profile_name: str = "") -> AgentProfile | None:
        """The profile named ``profile_name`` (None if there is none), else the one for the
        dialed number (the default when no number matches)."""
        if not profile_name:
            return self.profiles.for_number(to_number)
        return next((p for p in self.profiles.all() if p.name == profile_name), None)

    def call_profile(
        self, to_number: str, parameters: Mapping[str, str], profile_name: str = ""
    ) -> AgentProfile:
        """The profile a starting call gets: an outbound call's named profile with its
        variables filled in (stream parameters ``profile``/``var_*``); else ``profile_for``.
        An outbound profile that cannot be used falls back to the number's (logged)."""
        name = parameters.get(PROFILE_PARAMETER, "")
        if not name:
            return self.profile_for(to_number, profile_name) or self.profiles.default
        variables = {
            key.removeprefix(VARIABLE_PREFIX): value
            for key, value in parameters.items()
            if key.startswith(VARIABLE_PREFIX)
        }
        profile = self.profiles.by_name(name)
        try:
            if profile is None:
                raise ValueError(f"unknown profile {name!r}")
            return profile.with_variables(variables)
        except ValueError as exc:
            log.error("outbound profile unusable; using the number's", error=str(exc))
            return self.profiles.for_number(to_number)

    @staticmethod
    def greeting_for(profile: AgentProfile) -> str | None:
        """None when the profile waits for the callee (the model answers their first words,
        its instructions carrying the greeting); else the profile's greeting instruction."""
        return None if profile.wait_for_callee else greeting_instruction(profile)

    async def deliver(self, call_sid: str, event: AnswerDetected) -> None:
        """Who answered this process's outbound call (ignored if it is not held here)."""
        worker = self.calls.get(call_sid)
        policy = self.answer_policies.get(worker) if worker is not None else None
        if worker is None or policy is None:
            return
        action = await policy.apply(worker, event)
        log.info("answer detected", call_sid=call_sid, party=event.party, action=action)

    # Calls whose audio the model vendor carries (OpenAI SIP/WebRTC): the edge accepts the
    # call with the profile's session, then ``start(..., model_call_id=...)`` attaches to it.

    def model_call_session(self, to_number: str, profile_name: str = "") -> dict[str, Any] | None:
        """The session to accept such a call with; None when ``profile_name`` names no profile."""
        profile = self.profile_for(to_number, profile_name)
        return None if profile is None else call_accept_session(self.session_for(profile))

    def prewarm(
        self, call_sid: str, to_number: str, parameters: Mapping[str, str] | None = None
    ) -> None:
        """Open the model session (and ask for the greeting) before the call's media is up.
        ``parameters``: what the stream will carry (an outbound call's profile/variables).

        Every backend is pre-warmed, the silent one too: a call between its webhook and its
        stream then counts toward MAX_CALLS like any other."""
        profile = self.call_profile(to_number, parameters or {})
        self.prewarmed.start(call_sid, self.model_for(profile), self.greeting_for(profile))

    async def ready(self, call_sid: str) -> bool:
        """After ``prewarm``: wait until the call's model session is open (``False``: it could
        not be). For carriers that answer only once the agent can talk (SIP's 200 OK)."""
        return await self.prewarmed.ready(call_sid)

    def start(
        self,
        started: CallStarted,
        send: CommandSink,
        *,
        model_call_id: str = "",
        profile_name: str = "",
    ) -> CallWorker:
        """Build the call's worker, register it, bind the log context, and start it.

        ``model_call_id``: the model vendor carries this call's audio itself; the model
        session attaches to that call (a sideband) instead of opening a session of its own.
        ``profile_name`` picks the profile by name instead of by dialed number.

        The log context is bound in the calling task: every line it and the tasks it starts
        from now on write carries the call's ids (contextvars are copied at task creation).
        """
        settings = self.settings
        profile = self.call_profile(started.to_number, started.parameters, profile_name)
        tools = self.call_tools(profile)
        if model_call_id:
            model = open_sideband_session(settings, self.session_for(profile), model_call_id)
        else:
            model = self.prewarmed.claim(started.call_sid) or self.model_for(profile)
        worker = CallWorker(
            started,
            store=self.store,
            send=send,
            model=model,
            backend="openai" if model_call_id else self.backend(profile),
            profile=profile.name,
            greeting=self.greeting_for(profile),
            timings=self.timings,
            tools=tools,
            tool_context=ToolContext(
                call_sid=started.call_sid,
                redis=self.redis,
                key_prefix=settings.redis_key_prefix,
                transfer_policy=TransferPolicy(
                    settings.transfer_default_number, settings.transfer_allowed_prefixes
                ),
            ),
            audit=self.audit,
            metrics=self.metrics,
            filler_ms=settings.tool_filler_ms,
            dtmf_pause_ms=settings.dtmf_pause_ms,
            response_ack_timeout=settings.response_ack_timeout_seconds,
            survival=SurvivalPolicy(
                attempts=settings.model_reconnect_attempts,
                backoff_s=settings.model_reconnect_backoff_seconds,
                attempt_timeout_s=settings.model_reconnect_attempt_timeout_seconds,
                session_max_s=settings.model_session_max_seconds,
                held_audio_ms=settings.model_gap_audio_ms,
            ),
        )
        self.calls.add(started.call_sid, worker)
        if started.parameters.get(PROFILE_PARAMETER):
            self.answer_policies[worker] = VoicemailPolicy(message=profile.voicemail_message)
        structlog.contextvars.bind_contextvars(
            call_sid=started.call_sid,
            carrier=started.carrier,
            backend=worker.backend,
            profile=profile.name,
            **started.carrier_fields,
        )
        worker.start()
        log.info("call started", direction=started.direction)
        return worker

    async def close(self) -> None:
        await self.prewarmed.close()
