"""What a running process holds: Redis, the store, the call factory, carrier clients, metrics.

Built once per process by the app's lifespan (``build_services``) and shared by every request
and call. Edges reach the middle through ``factory``; nothing here decides anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from redis.asyncio import Redis

from service.agent.catalog import builtin_tools, profiles_from_settings
from service.agent.profiles import Profiles
from service.calls.factory import CallFactory
from service.calls.prewarm import PrewarmedSessions
from service.calls.registry import CallRegistry
from service.calls.signals import CallSignals
from service.calls.timing import ServiceTimings
from service.calls.worker import CallWorker
from service.campaigns.campaigns import Campaigns
from service.campaigns.dispatcher import Dispatcher
from service.campaigns.outbound import OutboundCalls
from service.campaigns.progress import CampaignProgress
from service.campaigns.store import CampaignStore
from service.logging import redact_secrets
from service.metrics import Metrics
from service.realtime.backends import model_secrets
from service.settings import Settings
from service.store import connect_redis
from service.store.audit import ToolAudit
from service.store.call_index import CallIndex
from service.store.calls import CallStore
from service.store.dials import DialRecords
from service.store.writer import StoreWriter
from service.telephony.events import CallProgress
from service.telephony.openai_calls.call import OpenAICalls
from service.telephony.openai_calls.control import OpenAICallControl
from service.telephony.twilio.dialer import TwilioDialer
from service.telephony.twilio.rest import TwilioCalls
from service.telephony.twilio.security import SignatureChecker, StreamTokens

__all__ = ["CarrierListener", "Services", "build_services"]

__all__ = [
    "CarrierListener",
    "ConfigurationError",
    "Services",
    "build_services",
    "configuration_problem",
]


class CarrierListener(Protocol):
    """A carrier edge with its own socket (the SIP edge), started and stopped by the app."""

    async def stop(self) -> None: ...
    def stats(self) -> dict[str, object]: ...


@dataclass
class Services:
    """Everything a request or a call needs, built once per process by the lifespan."""

    settings: Settings
    redis: Redis
    embedded_redis: bool
    writer: StoreWriter
    store: CallStore
    signatures: SignatureChecker
    tokens: StreamTokens
    factory: CallFactory
    calls: CallRegistry[CallWorker] = field(default_factory=CallRegistry)
    metrics: Metrics = field(default_factory=Metrics)
    timings: ServiceTimings = field(default_factory=ServiceTimings)
    audit: ToolAudit | None = None
    twilio_calls: TwilioCalls | None = None  # Twilio's REST API, when credentials are set
    draining: bool = False
    sip: CarrierListener | None = None  # the SIP edge, when SIP_LISTEN is set
    openai_calls: OpenAICalls | None = None  # OpenAI SIP/WebRTC calls, when either is enabled
    # Outbound calls and campaigns (service/campaigns/).
    outbound: OutboundCalls | None = None
    campaigns: Campaigns | None = None
    dispatcher: Dispatcher | None = None
    signals: CallSignals | None = None
    call_progress: Callable[[CallProgress], Awaitable[None]] | None = None

    def start_background(self) -> None:
        """Start what runs beside the calls: the signal listener and, if configured, the
        campaign dispatcher (called by the app's lifespan)."""
        if self.signals is not None:
            self.signals.start()
        if self.dispatcher is not None and self.settings.campaign_dispatcher:
            self.dispatcher.start()

    @property
    def full(self) -> bool:
        """At MAX_CALLS: live calls plus calls whose model is warming up before their stream."""
        limit = self.settings.max_calls
        return bool(limit) and len(self.calls) + len(self.factory.prewarmed) >= limit

    async def aclose(self) -> None:
        """Release what the process holds, the store writer last (it flushes)."""
        self.draining = True
        if self.dispatcher is not None:
            await self.dispatcher.close()
        if self.signals is not None:
            await self.signals.close()
        await self.factory.close()
        if self.openai_calls is not None:
            await self.openai_calls.aclose()
        if self.twilio_calls is not None:
            await self.twilio_calls.aclose()
        await self.writer.close(timeout=5.0)
        await self.redis.aclose()


class ConfigurationError(Exception):
    """The process cannot serve a single call as configured; the message says why."""


def configuration_problem(settings: Settings, profiles: Profiles | None = None) -> str | None:
    """Why this configuration cannot serve a call (one line), or None."""
    try:
        profiles = profiles or profiles_from_settings(settings)
    except ValueError as exc:  # a profiles file that is missing, unreadable or inconsistent
        return str(exc)
    backends = {profile.backend or settings.realtime_backend for profile in profiles.all()}
    problems = sorted(filter(None, (settings.missing_for(backend) for backend in backends)))
    return "; ".join(problems) or None


def build_services(settings: Settings) -> Services:
    """Everything the process holds; raises ``ConfigurationError`` (one clear line) when a
    backend some profile uses lacks its credentials."""
    auth_token = settings.twilio_auth_token.get_secret_value()
    token_secret = settings.stream_token_secret.get_secret_value() or auth_token
    webhook_secret = settings.openai_webhook_secret.get_secret_value()
    redact_secrets(
        auth_token,
        token_secret,
        webhook_secret,
        settings.webrtc_session_token.get_secret_value(),
        *model_secrets(settings),
    )
    redis, embedded = connect_redis(settings.redis_url)
    writer = StoreWriter(redis, max_pending=settings.store_max_pending)
    store = CallStore(
        redis,
        writer,
        prefix=settings.redis_key_prefix,
        ttl_seconds=settings.call_ttl_seconds,
        index=CallIndex(redis, settings.redis_key_prefix),  # the dashboard's list (service/ui)
    )
    metrics = Metrics()
    metrics.watch_store(writer.stats)
    timings = ServiceTimings(metrics=metrics)
    calls: CallRegistry[CallWorker] = CallRegistry()
    audit = ToolAudit(
        writer,
        prefix=settings.redis_key_prefix,
        call_ttl_seconds=settings.call_ttl_seconds,
        global_maxlen=settings.audit_maxlen,
    )
    profiles = profiles_from_settings(settings)
    problem = configuration_problem(settings, profiles)
    if problem is not None:
        raise ConfigurationError(problem)
    factory = CallFactory(
        settings=settings,
        store=store,
        redis=redis,
        calls=calls,
        metrics=metrics,
        timings=timings,
        audit=audit,
        profiles=profiles,
        tools=builtin_tools(),
        prewarmed=PrewarmedSessions(timeout=settings.prewarm_timeout_seconds),
    )
    twilio_calls = (
        TwilioCalls(settings.twilio_account_sid, auth_token, base_url=settings.twilio_api_base_url)
        if settings.twilio_account_sid and auth_token
        else None
    )
    outbound = OutboundCalls(
        settings,
        lambda: factory.profiles,
        TwilioDialer(settings, twilio_calls) if twilio_calls is not None else None,
        store,
        DialRecords(redis, settings.redis_key_prefix, ttl_seconds=settings.call_ttl_seconds),
    )
    ring_s = float(settings.outbound_ring_timeout_seconds)
    campaigns = Campaigns(CampaignStore(redis, settings.redis_key_prefix), outbound, ring_s=ring_s)
    progress = CampaignProgress(campaigns, store)
    dispatcher = Dispatcher(
        campaigns,
        account_cps=settings.twilio_account_cps,
        lease_s=settings.campaign_lease_seconds,
        ring_s=ring_s,
        time_limit_s=float(settings.outbound_time_limit_seconds),
    )
    services = Services(
        settings=settings,
        outbound=outbound,
        campaigns=campaigns,
        dispatcher=dispatcher,
        signals=CallSignals(redis, settings.redis_key_prefix, factory.deliver),
        call_progress=progress.on_progress,
        metrics=metrics,
        timings=timings,
        redis=redis,
        embedded_redis=embedded,
        writer=writer,
        store=store,
        signatures=SignatureChecker(auth_token, enforced=settings.signatures_enforced),
        tokens=StreamTokens(token_secret, ttl_seconds=settings.stream_token_ttl_seconds),
        factory=factory,
        calls=calls,
        audit=audit,
        twilio_calls=twilio_calls,
    )
    if webhook_secret or settings.webrtc_session_token.get_secret_value():
        control = OpenAICallControl(
            settings.openai_api_key.get_secret_value(), base_url=settings.openai_base_url
        )
        services.openai_calls = OpenAICalls(services, control)
    return services
