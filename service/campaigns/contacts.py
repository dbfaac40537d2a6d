"""Contact uploads (CSV or JSON) → validated contacts and one clear error per bad row. Pure.

CSV: a header row with ``contact_id`` and ``phone``, optional ``timezone``; every other column
is a variable (``customer_name``, ``order_number`` …). JSON: a list of objects with the same
keys, variables either flat or under ``"variables"``. A row is rejected (and never dialed) for:
a missing/overlong ``contact_id``, the same ``contact_id`` twice in one upload, a number that
is not valid E.164, an unknown time zone, or a variable the profile needs that is empty.

Memory: the whole upload is held while parsing (an upload is bounded by the route's body
limit); each contact keeps its variables only.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import orjson
import phonenumbers

from service.campaigns.windows import zones_for

__all__ = ["Contact", "RowError", "parse_contacts", "validate_e164"]

MAX_ID_CHARS = 128
MAX_VARIABLE_CHARS = 400  # a <Parameter> pair is at most 500 chars (protocols.md A.1)
RESERVED = frozenset({"contact_id", "phone", "timezone", "variables"})


@dataclass(frozen=True)
class Contact:
    contact_id: str
    phone: str  # E.164
    zones: tuple[str, ...]
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based data row (CSV: the header is row 0)
    contact_id: str
    error: str


def validate_e164(raw: str) -> str:
    """``raw`` as E.164 if it is a valid, dialable number written with its ``+`` country
    code; ``ValueError`` saying why not."""
    text = raw.strip()
    if not text.startswith("+"):
        raise ValueError(f"{raw!r} is not E.164 (it must start with + and the country code)")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{raw!r} is not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{raw!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_contacts(
    data: bytes | str,
    *,
    fmt: str,
    required: Iterable[str] = (),
    default_timezone: str = "UTC",
) -> tuple[list[Contact], list[RowError]]:
    """Parse an upload. ``fmt`` is ``csv`` or ``json``; ``required`` the variables the
    campaign's profile uses. A malformed file (not CSV/JSON at all) raises ``ValueError``."""
    rows = _csv_rows(data) if fmt == "csv" else _json_rows(data)
    needed = sorted(set(required))
    contacts: list[Contact] = []
    errors: list[RowError] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=1):
        contact_id = str(row.get("contact_id") or "").strip()
        try:
            contact = _contact(row, contact_id, needed, default_timezone)
            if contact_id in seen:
                raise ValueError("the same contact_id appears twice in this upload")
        except ValueError as exc:
            errors.append(RowError(number, contact_id, str(exc)))
            continue
        seen.add(contact_id)
        contacts.append(contact)
    return contacts, errors


def _contact(
    row: Mapping[str, object], contact_id: str, needed: list[str], default_tz: str
) -> Contact:
    if not contact_id:
        raise ValueError("contact_id is missing")
    if len(contact_id) > MAX_ID_CHARS or not contact_id.isprintable() or ":" in contact_id:
        raise ValueError(f"contact_id must be ≤ {MAX_ID_CHARS} printable characters, no ':'")
    phone = validate_e164(str(row.get("phone") or ""))
    zones = zones_for(phone, str(row.get("timezone") or "").strip(), default_tz)
    nested = row.get("variables")
    if nested is not None and not isinstance(nested, Mapping):
        raise ValueError("variables must be an object")
    variables = {
        str(k): "" if v is None else str(v).strip()
        for k, v in {**row, **(nested or {})}.items()
        if k not in RESERVED
    }
    missing = [name for name in needed if not variables.get(name)]
    if missing:
        raise ValueError(f"missing variable(s) the profile needs: {', '.join(missing)}")
    long = [k for k, v in variables.items() if len(k) + len(v) > MAX_VARIABLE_CHARS]
    if long:
        raise ValueError(f"variable(s) too long (≤ {MAX_VARIABLE_CHARS} chars): {', '.join(long)}")
    return Contact(contact_id, phone, zones, variables)


def _csv_rows(data: bytes | str) -> list[dict[str, object]]:
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"contact_id", "phone"} <= {
        f.strip() for f in reader.fieldnames
    }:
        raise ValueError("CSV needs a header row with contact_id and phone columns")
    rows: list[dict[str, object]] = []
    for raw in reader:
        extra = raw.pop(None, None)  # type: ignore[call-overload]
        row: dict[str, object] = {(k or "").strip(): v for k, v in raw.items()}
        if extra:
            row["contact_id"] = row.get("contact_id") or ""
            row["__error"] = "more fields than the header has"
        rows.append(row)
    return [_flag_malformed(row) for row in rows]


def _flag_malformed(row: dict[str, object]) -> dict[str, object]:
    # A row with too many fields keeps its id (for the error) but loses its phone.
    if row.pop("__error", None):
        row["phone"] = "(row has more fields than the header)"
    return row


def _json_rows(data: bytes | str) -> list[dict[str, object]]:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if isinstance(parsed, Mapping) and isinstance(parsed.get("contacts"), list):
        parsed = parsed["contacts"]
    if not isinstance(parsed, list):
        raise ValueError('JSON contacts must be a list (or {"contacts": [...]})')
    return [row if isinstance(row, dict) else {"contact_id": "", "phone": ""} for row in parsed]
