"""Strict checks of Gemini Live messages against the ``google-genai`` SDK's own types.

The SDK's pydantic models forbid unknown fields but accept snake_case spellings and, for enums,
any string (with a warning). The real server parses proto JSON, where enum names are exact. So
each message is validated by the SDK and then walked: every key must be the SDK field's
camelCase alias and every enum value one of the SDK's members. On top come the rules protocols.md
states that the types cannot (one top-level field per message, D.1/D.4; no ``mediaChunks``, D.3).

SDK gap: ``LiveClientSetup`` has no ``realtimeInputConfig`` although the SDK's own
``LiveConnectConfig`` → setup converter sends ``setup.realtimeInputConfig`` (and D.2 documents
it), so that part is checked against ``types.RealtimeInputConfig`` on its own.

``google-genai`` is a test dependency: without it the checks are skipped (``sdk_available``).
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
import warnings
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError

__all__ = [
    "CLIENT_FIELDS",
    "SERVER_FIELDS",
    "ConformanceError",
    "check_client_message",
    "check_server_message",
    "sdk_available",
]

CLIENT_FIELDS = ("setup", "clientContent", "realtimeInput", "toolResponse")  # D.1
SERVER_FIELDS = (  # D.4 (usageMetadata may come alongside any of them)
    "setupComplete",
    "serverContent",
    "toolCall",
    "toolCallCancellation",
    "goAway",
    "sessionResumptionUpdate",
)
_PCM_MIME = re.compile(r"^audio/pcm;rate=\d+$")


class ConformanceError(ValueError):
    """A message the real service would refuse (or that only our own code would accept)."""


@cache
def sdk_available() -> bool:
    try:
        import google.genai.types  # noqa: F401
    except ImportError:
        return False
    return True


def _types() -> Any:
    from google.genai import types

    return types


def _validate(model: type[BaseModel], raw: dict[str, Any], path: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # unknown enum values: reported below
        try:
            value = model.model_validate(raw)
        except ValidationError as exc:
            raise ConformanceError(f"{path}: not a {model.__name__}: {exc}") from exc
    problems: list[str] = []
    _walk(raw, value, path, problems)
    if problems:
        raise ConformanceError("; ".join(problems[:5]))


def _walk(raw: Any, value: Any, path: str, problems: list[str]) -> None:
    if isinstance(value, BaseModel):
        if not isinstance(raw, dict):
            problems.append(f"{path}: expected an object")
            return
        names = {info.alias or name: name for name, info in type(value).model_fields.items()}
        for key, item in raw.items():
            name = names.get(key)
            if name is None:
                problems.append(f"{path}.{key}: not an SDK field name (camelCase expected)")
            else:
                _walk(item, getattr(value, name), f"{path}.{key}", problems)
    elif isinstance(value, enum.Enum):
        if raw not in {member.value for member in type(value)}:
            problems.append(f"{path}: {raw!r} is not a {type(value).__name__}")
    elif isinstance(value, list) and isinstance(raw, list):
        for i, (item_raw, item) in enumerate(zip(raw, value, strict=False)):
            _walk(item_raw, item, f"{path}[{i}]", problems)
    elif isinstance(value, dict) and isinstance(raw, dict):
        for key, item in raw.items():
            if key in value:
                _walk(item, value[key], f"{path}.{key}", problems)


def _one_of(message: Any, fields: tuple[str, ...], path: str, *, also: tuple[str, ...] = ()) -> str:
    if not isinstance(message, dict):
        raise ConformanceError(f"{path}: a message is a JSON object")
    present = [key for key in message if key in fields]
    others = [key for key in message if key not in fields and key not in also]
    if len(present) != 1 or others:
        raise ConformanceError(f"{path}: exactly one of {fields} expected, got {list(message)}")
    return present[0]


def check_client_message(message: Any) -> None:
    """Raise ``ConformanceError`` unless ``message`` is a client message the SDK defines."""
    if not sdk_available():
        return
    types = _types()
    kind = _one_of(message, CLIENT_FIELDS, "client")
    body = message[kind]
    if kind == "setup" and isinstance(body, dict):
        setup = dict(body)
        ric = setup.pop("realtimeInputConfig", None)
        if ric is not None:
            _validate(types.RealtimeInputConfig, ric, "setup.realtimeInputConfig")
        _validate(types.LiveClientMessage, {"setup": setup}, "client")
        if not str(setup.get("model", "")).startswith("models/"):
            raise ConformanceError("setup.model must be models/{model} (D.2)")
        modalities = (setup.get("generationConfig") or {}).get("responseModalities") or []
        if len(modalities) != 1:
            raise ConformanceError("setup: exactly one response modality (D.2)")
        return
    _validate(types.LiveClientMessage, message, "client")
    if kind == "realtimeInput":
        if "mediaChunks" in body:
            raise ConformanceError("realtimeInput.mediaChunks is deprecated (D.3)")
        audio = body.get("audio")
        if audio is not None:
            if not _PCM_MIME.match(str(audio.get("mimeType", ""))):
                raise ConformanceError(f"audio.mimeType {audio.get('mimeType')!r} (D.3)")
            try:
                size = len(base64.b64decode(audio.get("data", ""), validate=True))
            except (binascii.Error, ValueError) as exc:
                raise ConformanceError("audio.data is not base64") from exc
            if size % 2:
                raise ConformanceError("audio.data is not whole PCM16 samples")
    elif kind == "toolResponse":
        for response in body.get("functionResponses") or [{}]:
            if not response.get("id") or not isinstance(response.get("response"), dict):
                raise ConformanceError("functionResponses[] need an id and a response object")


def check_server_message(message: Any) -> None:
    """Raise ``ConformanceError`` unless ``message`` validates as the SDK's
    ``LiveServerMessage`` with at most one D.4 field (plus ``usageMetadata``)."""
    if not sdk_available():
        return
    if isinstance(message, dict) and list(message) == ["usageMetadata"]:
        _validate(_types().LiveServerMessage, message, "server")
        return
    _one_of(message, SERVER_FIELDS, "server", also=("usageMetadata",))
    _validate(_types().LiveServerMessage, message, "server")
