"""Recent calls, newest first, filtered by one search box and paged from Redis.

The call index's ``calls:recent`` set gives the order; each call's hash is read in pipelined
chunks and matched here. A query matches a call when it is a substring of its CallSid, of the
digits of its from/to numbers, of its profile, or equals its outcome (``end_reason`` or
``status``). A page scans at most ``SCAN_LIMIT`` calls, so a rare match costs bounded work; the
cursor says where the next page starts scanning. Calls whose hash expired are skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from service.ui.views import public_call

if TYPE_CHECKING:
    from service.services import Services

__all__ = ["RecentPage", "matches", "recent_calls"]

CHUNK = 100
SCAN_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class RecentPage:
    calls: list[dict[str, str]]
    next_cursor: int | None  # None: nothing further
    scanned: int


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def matches(call_sid: str, fields: Mapping[str, str], query: str) -> bool:
    query = query.strip().lower()
    if not query:
        return True
    if query in call_sid.lower() or query in fields.get("profile", "").lower():
        return True
    if query in (fields.get("end_reason", "").lower(), fields.get("status", "").lower()):
        return True
    digits = _digits(query)
    if digits and len(digits) == len(query.lstrip("+").replace(" ", "").replace("-", "")):
        return any(digits in _digits(fields.get(name, "")) for name in ("from", "to"))
    return False


async def recent_calls(
    services: Services, query: str, cursor: int, page_size: int = 25
) -> RecentPage:
    index = services.store.index
    assert index is not None
    mask = services.settings.ui_mask_numbers
    found: list[dict[str, str]] = []
    position = cursor
    while len(found) < page_size and position - cursor < SCAN_LIMIT:
        sids = await index.recent(position, CHUNK)
        if not sids:
            return RecentPage(found, None, position - cursor)
        async with services.redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hgetall(services.store.keys.call(sid))
            hashes = await pipe.execute()
        for offset, (sid, raw) in enumerate(zip(sids, hashes, strict=True)):
            fields = {_text(k): _text(v) for k, v in raw.items()}
            if fields and matches(sid, fields, query):
                found.append(public_call(sid, fields, mask=mask))
                if len(found) == page_size:
                    return RecentPage(found, position + offset + 1, position + offset + 1 - cursor)
        position += len(sids)
    return RecentPage(found, position, position - cursor)


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
