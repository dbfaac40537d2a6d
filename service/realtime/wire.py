"""What every model edge does first with a server frame: decode one JSON object, or say why not;
then read its fields by type (``Fields``), so that no value in any field can raise.

The rule the protocol cores follow with ``Fields``: a field of the wrong type (or out of range)
reads as absent, the event is handled as if it were absent, and the event's ``problems`` say
which fields were wrong, so the core reports one counted ``ModelError("malformed_event")`` for
the event. Nothing here raises on any JSON value.
"""

from __future__ import annotations

from typing import Any

import orjson

from service.realtime.events import ModelError

__all__ = [
    "MAX_CODE_CHARS",
    "MAX_ID_CHARS",
    "MAX_MESSAGE_BYTES",
    "MAX_MESSAGE_CHARS",
    "MAX_TEXT_CHARS",
    "MS_LIMIT",
    "Fields",
    "json_object",
    "short",
]

# The most one model message may be: the model connections refuse (close 1009) anything
# bigger before decoding it. Real events are a few KB (audio comes in ~100 ms deltas); the
# largest legitimate one is session.updated echoing long instructions and tools. Decoding a
# message this size costs ~1-2 ms of the event loop (bench/model_flood.py).
MAX_MESSAGE_BYTES = 1 << 20

# Bounds on what one event may put into memory, logs and Redis (the model is trusted to be
# well-behaved, not to be small): ids and codes are short, free text is cut.
MAX_ID_CHARS = 256
MAX_CODE_CHARS = 64
MAX_MESSAGE_CHARS = 1_000  # error messages: logged and stored per error
MAX_TEXT_CHARS = 4_000  # transcripts: stored once per line
MS_LIMIT = 24 * 3600 * 1000  # a day of audio: no call's timeline goes further


def json_object(frame: str | bytes, code: str) -> dict[str, Any] | ModelError:
    """The frame's JSON object, or a ``ModelError`` with ``code`` (never an exception)."""
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        return ModelError(code, str(exc)[:120])
    if not isinstance(message, dict):
        return ModelError(code, "not an object")
    return message


def short(value: object, limit: int = 40) -> str:
    """A bounded printable sketch of any value, for error messages."""
    text = value if isinstance(value, str) else type(value).__name__
    return text[:limit]


class Fields:
    """Typed reads of one JSON object. Wrong types read as the default and are noted in
    ``problems`` (shared with nested objects, so one list covers the whole event).

    Memory: the object it wraps and at most ``MAX_PROBLEMS`` short notes.
    """

    MAX_PROBLEMS = 8
    __slots__ = ("_object", "_path", "problems")

    def __init__(self, value: object, path: str = "", problems: list[str] | None = None) -> None:
        self.problems: list[str] = [] if problems is None else problems
        self._path = path
        if isinstance(value, dict):
            self._object: dict[str, Any] = value
        else:
            self._object = {}
            if value is not None:
                self._note(path or "event", value, "an object")

    def _note(self, name: str, value: object, wanted: str) -> None:
        if len(self.problems) < self.MAX_PROBLEMS:
            self.problems.append(f"{name} is {type(value).__name__}, not {wanted}")

    def _name(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def has(self, name: str) -> bool:
        return self._object.get(name) is not None

    def text(self, name: str, default: str = "", *, limit: int = MAX_ID_CHARS) -> str:
        """A string field, cut to ``limit`` characters; missing or null: ``default``."""
        value = self._object.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            self._note(self._name(name), value, "a string")
            return default
        return value[:limit]

    def integer(self, name: str, default: int = 0, *, low: int = 0, high: int = MS_LIMIT) -> int:
        """An integer field within [low, high] (JSON numbers with a fraction, booleans and
        numbers too big for an int64 are not integers here)."""
        value = self._object.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self._note(self._name(name), value, "an integer")
            return default
        if not low <= value <= high:
            self._note(self._name(name), value, f"within [{low}, {high}]")
            return default
        return value

    def flag(self, name: str) -> bool:
        """A boolean field; missing or null: False."""
        value = self._object.get(name)
        if value is None:
            return False
        if not isinstance(value, bool):
            self._note(self._name(name), value, "a boolean")
            return False
        return value

    def object(self, name: str) -> Fields:
        """A nested object (empty when missing or of the wrong type)."""
        return Fields(self._object.get(name), self._name(name), self.problems)

    def objects(self, name: str, *, limit: int = 64) -> list[Fields]:
        """A list of objects (at most ``limit``); elements that are not objects are noted."""
        items = self._list(name, limit)
        return [
            Fields(item, f"{self._name(name)}[{i}]", self.problems) for i, item in enumerate(items)
        ]

    def texts(self, name: str, *, limit: int = 64) -> list[str]:
        """A list of strings (at most ``limit``); other elements are noted and skipped."""
        found: list[str] = []
        for item in self._list(name, limit):
            if isinstance(item, str):
                found.append(item[:MAX_ID_CHARS])
            else:
                self._note(f"{self._name(name)}[]", item, "a string")
        return found

    def as_dict(self) -> dict[str, Any]:
        """The object itself (empty if it was not one), for values passed on whole."""
        return self._object

    def raw(self, name: str) -> Any:
        """The value as decoded (for fields passed on whole, e.g. function arguments)."""
        return self._object.get(name)

    def _list(self, name: str, limit: int) -> list[Any]:
        value = self._object.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            self._note(self._name(name), value, "a list")
            return []
        if len(value) > limit:
            self._note(self._name(name), value, f"at most {limit} long")
        return value[:limit]
