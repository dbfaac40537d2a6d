"""The agent: tools the model may call (``tools``) and per-number profiles (``profiles``).

The hotline's tools and data are in ``service.agent.hotline``; the call-control tools
(end_call, transfer_call) in ``service.agent.call_control``, acting through the typed
``ToolContext.call``. A new tool: an ``async def`` with type hints and a docstring, added to
``catalog.builtin_tools``; profiles pick tools by name. The agent never imports a carrier or
a model edge.
"""

from service.agent.profiles import AgentProfile, Profiles, load_profiles
from service.agent.tools import (
    CallIdLedger,
    ToolContext,
    ToolOutcome,
    ToolRegistry,
    ToolRun,
    ToolSpec,
    redact,
    redact_arguments,
    run_tool,
    tool,
)

__all__ = [
    "AgentProfile",
    "CallIdLedger",
    "Profiles",
    "ToolContext",
    "ToolOutcome",
    "ToolRegistry",
    "ToolRun",
    "ToolSpec",
    "load_profiles",
    "redact",
    "redact_arguments",
    "run_tool",
    "tool",
]
