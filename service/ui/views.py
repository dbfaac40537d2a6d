"""What the operator sees of a call, built from the stored hash and events (sans-I/O).

Everything shown passes through here, so this is where the page's two promises are kept:

* nothing secret reaches the page: hash fields, event fields and tool-audit fields whose name
  looks secret (token, secret, password, key, auth, signature, …) are dropped, and JSON values
  (tool arguments and results) have such keys replaced by ``[redacted]`` at any depth (the
  audit already redacts a tool's sensitive arguments at the source; this is the safety net);
* phone numbers are masked when ``UI_MASK_NUMBERS`` is on: all but the last four digits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = [
    "REDACTED",
    "clean_fields",
    "mask_number",
    "public_call",
    "public_event",
    "public_tool_entry",
]

REDACTED = "[redacted]"
_SECRET_NAME = re.compile(
    r"token|secret|passw|api_?key|auth|signature|credential|cookie|ssn|pin$|cvv|card",
    re.IGNORECASE,
)
NUMBER_FIELDS = frozenset({"from", "to", "from_number", "to_number", "target", "caller", "callee"})
# Free text that can hold what the caller said about themselves; shown (it is the transcript)
# but never parsed as JSON.
_JSON_FIELDS = frozenset({"arguments", "result", "error"})


def mask_number(value: str) -> str:
    """``+15550100001`` → ``+1••••••0001``: keeps a leading ``+`` and country digit, and the
    last four digits; other digits become ``•``. Non-numbers (``browser``, ``sip:…``) too."""
    digits = [i for i, ch in enumerate(value) if ch.isdigit()]
    if len(digits) <= 4:
        return value
    keep = set(digits[-4:])
    if value.startswith("+"):
        keep.add(digits[0])
    return "".join(ch if (not ch.isdigit() or i in keep) else "•" for i, ch in enumerate(value))


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: REDACTED if _SECRET_NAME.search(str(k)) else _redact(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _redact_json_text(text: str) -> str:
    if text[:1] not in ("{", "["):
        return text
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return orjson.dumps(_redact(parsed)).decode()


def clean_fields(fields: Mapping[str, str], *, mask: bool) -> dict[str, str]:
    """Fields safe to show: secret-looking names dropped, JSON values redacted, numbers masked."""
    shown: dict[str, str] = {}
    for name, value in fields.items():
        if _SECRET_NAME.search(name):
            continue
        if name in _JSON_FIELDS:
            value = _redact_json_text(value)
        if mask and name in NUMBER_FIELDS:
            value = mask_number(value)
        shown[name] = value
    return shown


def public_call(call_sid: str, fields: Mapping[str, str], *, mask: bool) -> dict[str, str]:
    return {"call_sid": call_sid, **clean_fields(fields, mask=mask)}


def public_event(entry: Mapping[str, str], *, mask: bool) -> dict[str, str]:
    return clean_fields(entry, mask=mask)


def public_tool_entry(entry: Mapping[str, str], *, mask: bool) -> dict[str, str]:
    return clean_fields(entry, mask=mask)
