"""What every model edge does first with a server frame: decode one JSON object, or say why not."""

from __future__ import annotations

from typing import Any

import orjson

from service.realtime.events import ModelError

__all__ = ["json_object"]


def json_object(frame: str | bytes, code: str) -> dict[str, Any] | ModelError:
    """The frame's JSON object, or a ``ModelError`` with ``code`` (never an exception)."""
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        return ModelError(code, str(exc)[:120])
    if not isinstance(message, dict):
        return ModelError(code, "not an object")
    return message
