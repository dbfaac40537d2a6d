"""Wire-level pieces of the GA Realtime protocol (protocols.md B.3/B.4): ids, errors, and
validation of client and server events against the ``openai`` SDK's own pydantic types.

The SDK models allow unknown fields (``extra="allow"``), so validating against them alone
would let a dialect slip through. Here "valid" additionally means *no field the SDK does not
declare* (:func:`first_unknown_field`), which is also how the real server answers unknown
fields: ``unknown_parameter`` (B.1).
"""

from __future__ import annotations

import secrets
import typing
from collections.abc import Iterable
from typing import Any

from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from pydantic import BaseModel, TypeAdapter, ValidationError

__all__ = [
    "CLIENT_EVENT_TYPES",
    "IdFactory",
    "ProtocolError",
    "ServerEventInvalid",
    "error_event",
    "first_unknown_field",
    "parse_client_event",
    "validate_server_event",
]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _models_by_type(union: Any) -> dict[str, type[BaseModel]]:
    """``{"session.update": SessionUpdateEvent, …}`` from an SDK event union.

    The SDK marks its unions with its own ``PropertyInfo(discriminator=…)``, which pydantic
    ignores, so a plain union validation reports errors for every member; dispatching on
    ``type`` first gives errors for the one model that matters.
    """
    members = typing.get_args(typing.get_args(union)[0])
    return {typing.get_args(m.model_fields["type"].annotation)[0]: m for m in members}


CLIENT_EVENT_MODELS: dict[str, type[BaseModel]] = _models_by_type(RealtimeClientEvent)
SERVER_EVENT_MODELS: dict[str, type[BaseModel]] = _models_by_type(RealtimeServerEvent)
CLIENT_EVENT_TYPES: tuple[str, ...] = tuple(CLIENT_EVENT_MODELS)
_SERVER_UNION: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)

# The SDK types ``session`` in session.created/updated as the *request* model, which lacks the
# read-only fields the server adds (they are declared on RealtimeSessionCreateResponse).
_SERVER_EXTRA_ALLOWED = frozenset({"session.id", "session.object", "session.expires_at"})


class IdFactory:
    """Server-side ids shaped like OpenAI's: ``<prefix>_`` + 21 base62 characters.

    A random per-session stem plus a counter: unique, cheap (deltas need one each), O(1) memory.
    """

    def __init__(self) -> None:
        self._stem = "".join(secrets.choice(_ALPHABET) for _ in range(13))
        self._count = 0

    def new(self, prefix: str) -> str:
        self._count += 1
        n, digits = self._count, []
        for _ in range(8):
            n, r = divmod(n, 62)
            digits.append(_ALPHABET[r])
        return f"{prefix}_{self._stem}{''.join(reversed(digits))}"

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        """A server event: its ``type``, a fresh ``event_id`` (never reused in a session),
        then ``fields`` — every event this server sends is made here."""
        return {"type": kind, "event_id": self.new("event"), **fields}


class ProtocolError(Exception):
    """A client mistake, reported as an ``error`` event; the connection stays open (B.4)."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.type = type


class ServerEventInvalid(AssertionError):
    """An event this server was about to send does not match the SDK's server event union."""


def error_event(ids: IdFactory, err: ProtocolError, client_event_id: str | None) -> dict[str, Any]:
    """The B.4 ``error`` event; the failing client event's ``event_id`` is echoed (B.3)."""
    error = {"type": err.type, "code": err.code, "message": err.message, "param": err.param}
    return ids.event("error", error={**error, "event_id": client_event_id})


def first_unknown_field(
    value: Any, path: str = "", allowed: frozenset[str] = frozenset()
) -> str | None:
    """Dotted path (``session.tools[0].foo``) of the first field no SDK model declares."""
    if isinstance(value, BaseModel):
        for key in value.model_extra or {}:
            full = f"{path}.{key}" if path else key
            if full not in allowed:
                return full
        for name in type(value).model_fields:
            found = first_unknown_field(
                getattr(value, name), f"{path}.{name}" if path else name, allowed
            )
            if found:
                return found
    elif isinstance(value, list):
        for i, element in enumerate(value):
            found = first_unknown_field(element, f"{path}[{i}]", allowed)
            if found:
                return found
    return None


def _is_field(segment: str | int) -> bool:
    # pydantic puts union-member tags into error locations ("RealtimeSessionCreateRequest",
    # "literal['inf']", "int", …); field names are lower snake_case.
    if isinstance(segment, int):
        return True
    return segment.isidentifier() and segment.islower() and segment not in _PYDANTIC_TAGS


_PYDANTIC_TAGS = frozenset({"int", "str", "float", "bool", "none", "list", "dict"})


def _path(loc: Iterable[str | int]) -> str:
    out = ""
    for segment in loc:
        if not _is_field(segment):
            continue
        out += f"[{segment}]" if isinstance(segment, int) else (f".{segment}" if out else segment)
    return out


def _quote(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value)


def translate_validation_error(exc: ValidationError) -> ProtocolError:
    """Turn pydantic's report into the error OpenAI would send for the same mistake.

    Union members whose ``type``/``role`` literal did not match are discarded first (they
    are not what the client meant), then the first remaining error wins.
    """
    errors = exc.errors(include_url=False)

    def branch(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
        last_tag = max((i for i, s in enumerate(loc) if not _is_field(s)), default=-1)
        return loc[: last_tag + 1]

    wrong = {
        branch(e["loc"])
        for e in errors
        if e["type"] == "literal_error" and e["loc"] and e["loc"][-1] in ("type", "role")
    }
    kept = [
        e
        for e in errors
        if e["type"] != "none_required" and not any(e["loc"][: len(b)] == b for b in wrong if b)
    ]
    if not kept:  # the discriminator itself is wrong: list what it could have been
        literals = [e for e in errors if e["type"] == "literal_error"] or errors
        deepest = max(literals, key=lambda e: len(e["loc"]))
        path = _path(deepest["loc"])
        expected = sorted(
            {str(e["ctx"]["expected"]) for e in literals if _path(e["loc"]) == path and "ctx" in e}
        )
        return ProtocolError(
            f"Invalid value: {_quote(deepest['input'])}. Supported values are: "
            + ", ".join(expected)
            + ".",
            code="invalid_value",
            param=path,
        )
    err = kept[0]
    path = _path(err["loc"])
    if err["type"] == "missing":
        return ProtocolError(
            f"Missing required parameter: '{path}'.",
            code="missing_required_parameter",
            param=path,
        )
    if err["type"] in ("literal_error", "enum"):
        return ProtocolError(
            f"Invalid value: {_quote(err['input'])}. Supported values are: "
            f"{err['ctx']['expected']}.",
            code="invalid_value",
            param=path,
        )
    return ProtocolError(
        f"Invalid type for '{path}': {err['msg'].lower()}, but got "
        f"{type(err['input']).__name__} instead.",
        code="invalid_type",
        param=path,
    )


def parse_client_event(event: Any) -> BaseModel:
    """Validate one decoded client event; raises :class:`ProtocolError` as the server would."""
    if not isinstance(event, dict):
        raise ProtocolError(
            f"Invalid type for event: expected an object, but got {type(event).__name__}.",
            code="invalid_type",
        )
    kind = event.get("type")
    if kind is None:
        raise ProtocolError(
            "Missing required parameter: 'type'.", code="missing_required_parameter", param="type"
        )
    model = CLIENT_EVENT_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        supported = ", ".join(f"'{t}'" for t in CLIENT_EVENT_TYPES)
        raise ProtocolError(
            f"Invalid value: {_quote(kind)}. Supported values are: {supported}.",
            code="invalid_value",
            param="type",
        )
    try:
        parsed = model.model_validate(event, strict=True)  # "0.5" is not a number
    except ValidationError as exc:
        raise translate_validation_error(exc) from None
    unknown = first_unknown_field(parsed)
    if unknown:  # B.1: "Unknown parameter: 'session.modalities'."
        raise ProtocolError(
            f"Unknown parameter: '{unknown}'.", code="unknown_parameter", param=unknown
        )
    return parsed


def validate_server_event(event: dict[str, Any]) -> BaseModel:
    """Check an outgoing event against the SDK's ``RealtimeServerEvent`` union, strictly.

    Raises :class:`ServerEventInvalid` for an unknown type, a shape the SDK rejects, or any
    field the SDK does not declare (apart from the session's read-only ``id``/``object``/
    ``expires_at``, see ``_SERVER_EXTRA_ALLOWED``).
    """
    model = SERVER_EVENT_MODELS.get(event.get("type", ""))
    if model is None:
        raise ServerEventInvalid(f"not a RealtimeServerEvent type: {event.get('type')!r}")
    try:
        parsed = model.model_validate(event)
        _SERVER_UNION.validate_python(event)
    except ValidationError as exc:
        raise ServerEventInvalid(f"{event.get('type')}: {exc}") from None
    unknown = first_unknown_field(parsed, allowed=_SERVER_EXTRA_ALLOWED)
    if unknown:
        raise ServerEventInvalid(f"{event['type']}: field {unknown!r} is not in the SDK types")
    return parsed
