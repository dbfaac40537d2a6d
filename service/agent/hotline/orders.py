"""Orders of the order-status hotline, in Redis, seeded from ``orders.json``.

Key layout (``P`` is ``REDIS_KEY_PREFIX``)::

    P order:{order_number}                   string  the order as a JSON object (below)
    P order:{order_number}:verify_failures   string  failed ZIP checks (counter, 15 min TTL)

An order: ``order_number`` (4–6 digits), ``status`` (one of ``STATUSES``), ``carrier`` (UPS,
FedEx, USPS, DHL or ""), ``tracking_number``, ``eta`` (ISO date or ""; for a delivered order
the delivery date), ``shipped_at`` (ISO date or ""), ``items`` (``[{name, qty}]``),
``customer_name``, ``zip_code``, ``phone_last4``. A JSON string rather than a hash because
``items`` is nested and an order is always read whole.

The fixture stores dates as day offsets from the day of seeding, so the demo's order 4217 is
always "shipped yesterday, arriving in two days". Seeding overwrites the same keys, so it is
idempotent (on the same day: byte-identical). Orders have no TTL: they are reference data.

Memory: the fixture (36 orders, ~10 KB) is read once per seeding, not kept.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import structlog

__all__ = [
    "CARRIERS",
    "FIXTURE",
    "STATUSES",
    "failures_key",
    "get_order",
    "hotline_seed_main",
    "load_fixture",
    "order_key",
    "seed_orders",
    "spoken_digits",
]

log = structlog.get_logger(__name__)

FIXTURE = Path(__file__).with_name("orders.json")
STATUSES = frozenset(
    {"processing", "shipped", "out_for_delivery", "delivered", "delayed", "cancelled", "returned"}
)
CARRIERS = frozenset({"UPS", "FedEx", "USPS", "DHL", ""})


def order_key(prefix: str, number: str) -> str:
    return f"{prefix}order:{number}"


def failures_key(prefix: str, number: str) -> str:
    return f"{prefix}order:{number}:verify_failures"


def load_fixture(
    path: str | Path | None = None, *, today: date | None = None
) -> list[dict[str, Any]]:
    """The fixture's orders with their day offsets turned into ISO dates (relative to
    ``today``). Malformed rows raise ``ValueError`` naming the row."""
    source = Path(path) if path else FIXTURE
    rows = orjson.loads(source.read_bytes())["orders"]
    today = today or date.today()
    orders = []
    for i, row in enumerate(rows):
        try:
            orders.append(_order(row, today))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: order #{i} ({row.get('order_number')}): {exc}") from None
    return orders


def _order(row: dict[str, Any], today: date) -> dict[str, Any]:
    def day(offset: int | None) -> str:
        return (today + timedelta(days=offset)).isoformat() if offset is not None else ""

    order = {
        "order_number": str(row["order_number"]),
        "status": row["status"],
        "carrier": row["carrier"],
        "tracking_number": row["tracking_number"],
        "eta": day(row["eta_offset_days"]),
        "shipped_at": day(row["shipped_offset_days"]),
        "items": [{"name": str(i["name"]), "qty": int(i["qty"])} for i in row["items"]],
        "customer_name": row["customer_name"],
        "zip_code": str(row["zip_code"]),
        "phone_last4": str(row["phone_last4"]),
    }
    checks = {
        "order_number": re.fullmatch(r"\d{4,6}", order["order_number"]),
        "status": order["status"] in STATUSES,
        "carrier": order["carrier"] in CARRIERS,
        "zip_code": re.fullmatch(r"\d{5}", order["zip_code"]),
        "phone_last4": re.fullmatch(r"\d{4}", order["phone_last4"]),
        "items": bool(order["items"]),
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise ValueError(f"invalid {', '.join(bad)}")
    return order


async def seed_orders(
    redis: Any, prefix: str = "", *, path: str | Path | None = None, today: date | None = None
) -> int:
    """Write every fixture order under ``prefix`` (one pipeline round trip); returns how
    many. Idempotent: re-seeding overwrites the same keys."""
    orders = load_fixture(path, today=today)
    async with redis.pipeline(transaction=False) as pipe:
        for order in orders:
            pipe.set(order_key(prefix, order["order_number"]), orjson.dumps(order))
        await pipe.execute()
    return len(orders)


async def get_order(redis: Any, prefix: str, number: str) -> dict[str, Any] | None:
    """The order with this (already normalised) number, or None."""
    raw = await redis.get(order_key(prefix, number))
    return orjson.loads(raw) if raw else None


async def hotline_seed_main(redis_url: str | None, prefix: str) -> int:
    """``python -m service hotline seed``: connect and seed; returns the count. With no URL
    this seeds an embedded in-process Redis, which is gone when this process exits (the
    service seeds its own embedded store instead)."""
    from service.store import connect_redis

    redis, embedded = connect_redis(redis_url)
    if embedded:
        log.warning(
            "hotline.seed_embedded",
            detail="REDIS_URL is not set: seeding an embedded in-process Redis that dies "
            "with this command; set REDIS_URL to seed a real one",
        )
    try:
        count = await seed_orders(redis, prefix)
    finally:
        await redis.aclose()
    log.info("hotline.seeded", count=count, prefix=prefix, embedded=embedded)
    return count


# --- Spoken numbers ----------------------------------------------------------------------

_DIGITS = {
    "zero": 0, "oh": 0, "o": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
_TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 2, "thirty": 3, "forty": 4, "fifty": 5, "sixty": 6, "seventy": 7, "eighty": 8,
    "ninety": 9,
}  # fmt: skip
_REPEAT = {"double": 2, "triple": 3}
# Words that make a digit-by-digit reading ambiguous: refuse rather than guess.
_AMBIGUOUS = frozenset({"hundred", "thousand", "million", "point", "minus"})


def spoken_digits(text: str) -> str:
    """The digits in a number as a caller says it or a model transcribes it: ``"4217"``,
    ``"four two one seven"``, ``"9 4 1 0 7"``, ``"forty-two seventeen"``, ``"double four"``,
    ``"#4217"``. Other words ("order", "uh") are ignored. Returns "" when the reading is
    ambiguous ("two hundred …") so the agent asks again instead of guessing."""
    tokens = re.findall(r"[a-z]+|\d+", text.lower())
    out: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token.isdigit():
            out.append(token)
        elif token in _AMBIGUOUS:
            return ""
        elif token in _REPEAT and (nxt in _DIGITS or (nxt.isdigit() and len(nxt) == 1)):
            digit = str(_DIGITS[nxt]) if nxt in _DIGITS else nxt
            out.append(digit * _REPEAT[token])
            i += 1
        elif token in _DIGITS:
            out.append(str(_DIGITS[token]))
        elif token in _TEENS:
            out.append(str(_TEENS[token]))
        elif token in _TENS:
            if nxt in _DIGITS and _DIGITS[nxt] > 0:  # "forty two" is 42, "forty" is 40
                out.append(f"{_TENS[token]}{_DIGITS[nxt]}")
                i += 1
            else:
                out.append(f"{_TENS[token]}0")
        i += 1
    return "".join(out)
