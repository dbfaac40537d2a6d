"""Strict checks of what we send a model against the official SDK's own type definitions.

The SDK's pydantic models accept unknown fields silently, so validation alone would let a
misspelt or beta-era field through; this also walks the validated model for any extras.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, TypeAdapter


@cache
def _client_event_adapter() -> TypeAdapter[Any]:
    from openai.types.realtime import RealtimeClientEvent

    return TypeAdapter(RealtimeClientEvent)


def _extras(value: Any, path: str) -> list[str]:
    found: list[str] = []
    if isinstance(value, BaseModel):
        for name in value.model_extra or {}:
            found.append(f"{path}.{name}")
        for name in type(value).model_fields:
            found.extend(_extras(getattr(value, name), f"{path}.{name}"))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found.extend(_extras(item, f"{path}[{i}]"))
    elif isinstance(value, dict):
        for key, item in value.items():
            found.extend(_extras(item, f"{path}.{key}"))
    return found


def check_openai_client_event(event: dict[str, Any]) -> None:
    """Raise ``AssertionError`` unless ``event`` is a GA client event with no unknown fields."""
    try:
        model = _client_event_adapter().validate_python(event)
    except Exception as exc:
        raise AssertionError(f"not a GA client event: {event.get('type')}: {exc}") from exc
    extras = _extras(model, event.get("type", "?"))
    assert not extras, f"fields the SDK does not define: {extras}"
