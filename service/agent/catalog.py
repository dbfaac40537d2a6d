"""Every tool the service offers, and the agent profile a call gets."""

from __future__ import annotations

import dataclasses

from service.agent.call_control import end_call, transfer_call
from service.agent.hotline.tools import hotline_registry
from service.agent.outcome import record_outcome
from service.agent.profiles import AgentProfile, Profiles, load_profiles
from service.agent.tools import ToolRegistry, build_spec
from service.settings import Settings

__all__ = ["builtin_tools", "greeting_instruction", "profiles_from_settings"]


def builtin_tools() -> ToolRegistry:
    """The hotline's tools plus the telephony ones; profiles pick from these by name."""
    registry = hotline_registry()
    # REST round trips to Twilio: allow for a slow edge, well under a caller's patience.
    registry.add(build_spec(end_call, timeout=10.0))
    registry.add(build_spec(transfer_call, timeout=10.0))
    registry.add(build_spec(record_outcome, timeout=5.0))  # outbound calls and campaigns
    return registry


def profiles_from_settings(settings: Settings) -> Profiles:
    """AGENT_PROFILES (or the built-in hotline), with AGENT_* settings overriding the default."""
    profiles = load_profiles(settings.agent_profiles or None)
    overrides = {
        key: value
        for key, value in (
            ("instructions", settings.agent_instructions),
            ("voice", settings.agent_voice),
            ("greeting", settings.agent_greeting),
        )
        if value
    }
    if overrides:
        profiles = dataclasses.replace(
            profiles, default=dataclasses.replace(profiles.default, **overrides)
        )
    profiles.check_tools(builtin_tools().names())
    return profiles


def greeting_instruction(profile: AgentProfile) -> str | None:
    """The agent speaks first (B.3 "model speaks first") with the profile's own words."""
    if not profile.greeting:
        return None
    return f'Greet the caller by saying exactly: "{profile.greeting}"'
