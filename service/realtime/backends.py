"""Which realtime model a call talks to, from settings (REALTIME_BACKEND)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from service.realtime.config import SessionConfig, VadSettings
from service.realtime.gemini.connection import open_gemini_session
from service.realtime.openai.connection import RealtimeConnection
from service.realtime.openai.protocol import OpenAIRealtimeProtocol, realtime_url
from service.realtime.openai.sideband import SidebandConnection
from service.realtime.session import ModelSession
from service.realtime.silent import SilentModel
from service.settings import Settings

__all__ = [
    "call_accept_session",
    "model_secrets",
    "open_model_session",
    "open_sideband_session",
    "session_config",
]


def session_config(
    settings: Settings,
    *,
    instructions: str,
    voice: str,
    greeting: str = "",
    tools: tuple[dict[str, Any], ...] = (),
) -> SessionConfig:
    """The one session configuration every backend is opened with."""
    return SessionConfig(
        model=settings.openai_realtime_model,
        instructions=instructions,
        voice=voice,
        greeting=greeting,
        audio_mode=settings.audio_mode,
        vad=VadSettings(
            threshold=settings.vad_threshold,
            prefix_padding_ms=settings.vad_prefix_padding_ms,
            silence_duration_ms=settings.vad_silence_duration_ms,
            idle_timeout_ms=settings.vad_idle_timeout_ms,
        ),
        transcription_model=settings.input_transcription_model or None,
        tools=tools,
    )


def _azure_url(endpoint: str, deployment: str) -> str:
    # E: GA endpoint /openai/v1/realtime?model=<deployment name>, over wss.
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    scheme = "ws" if parts.scheme in ("http", "ws") else "wss"
    return urlunsplit((scheme, parts.netloc, "/openai/v1/realtime", f"model={deployment}", ""))


def open_model_session(settings: Settings, backend: str, config: SessionConfig) -> ModelSession:
    """A not-yet-opened session for one call on ``backend`` (REALTIME_BACKEND or a profile's)."""
    if backend == "none":
        return SilentModel()
    if backend == "gemini":
        return open_gemini_session(settings, config)
    if backend == "azure":
        url = _azure_url(settings.azure_openai_endpoint, settings.azure_openai_deployment)
        headers = {"api-key": settings.azure_openai_api_key.get_secret_value()}
    elif backend == "openai":
        url = realtime_url(settings.openai_realtime_url, config.model)
        # B.0: GA takes only the bearer key; an OpenAI-Beta header would select the old shape.
        headers = {"Authorization": f"Bearer {settings.openai_api_key.get_secret_value()}"}
    else:
        url = realtime_url(settings.local_realtime_url, config.model)
        key = settings.openai_api_key.get_secret_value() or "local"
        headers = {"Authorization": f"Bearer {key}"}
    return RealtimeConnection(
        url,
        headers,
        OpenAIRealtimeProtocol(config),
        ready_timeout=settings.model_ready_timeout_seconds,
    )


# Calls whose audio OpenAI carries (SIP, WebRTC): the session goes in the call's ``accept``
# and the call is driven over a sideband connection (sip-and-outbound.md 1.3, 1.4).


def call_accept_session(config: SessionConfig) -> dict[str, Any]:
    """The body of ``client.realtime.calls.accept`` (minus ``call_id``) for ``config``."""
    session = OpenAIRealtimeProtocol(config, carries_audio=False).session()
    session["model"] = config.model
    return session


def open_sideband_session(settings: Settings, config: SessionConfig, call_id: str) -> ModelSession:
    """A not-yet-opened sideband session attached to OpenAI's call ``call_id``."""
    headers = {"Authorization": f"Bearer {settings.openai_api_key.get_secret_value()}"}
    return SidebandConnection(
        settings.openai_realtime_url,
        call_id,
        headers,
        OpenAIRealtimeProtocol(config, carries_audio=False),
        ready_timeout=settings.model_ready_timeout_seconds,
    )


def model_secrets(settings: Settings) -> list[str]:
    return [
        settings.openai_api_key.get_secret_value(),
        settings.azure_openai_api_key.get_secret_value(),
        settings.gemini_api_key.get_secret_value(),
        settings.llm_api_key.get_secret_value(),
    ]
