"""The order-status hotline's tools: verify the caller, then look the order up.

Privacy: ``lookup_order`` gives details only for an order verified *on this call*
(``ctx.state["verified_orders"]``, a set of order numbers; at most one entry per correct ZIP
given, so bounded by the call). Before that it says only whether the order exists. The ZIP on
file is never returned. Three wrong ZIPs for one order lock it for ``LOCKOUT_SECONDS`` across
calls (a Redis counter, so hanging up and calling back does not reset it); the agent is told
to offer a human. Only the last four characters of a tracking number are returned: the full
one is useless read aloud and is in the caller's shipping email.

Audit: ``zip_code`` (argument) and ``customer_name``/``phone_last4`` (results) are marked
sensitive and redacted before the tool-call audit is written.
"""

from __future__ import annotations

import hmac
from datetime import date
from typing import Annotated, Any

from pydantic import Field

from service.agent.hotline.orders import failures_key, get_order, spoken_digits
from service.agent.tools import ToolContext, ToolRegistry, ToolSpec, tool

__all__ = [
    "LOCKOUT_SECONDS",
    "LOOKUP_ORDER",
    "MAX_ATTEMPTS",
    "VERIFY_CALLER",
    "hotline_registry",
    "lookup_order",
    "say_status",
    "spoken_date",
    "verify_caller",
]

MAX_ATTEMPTS = 3
LOCKOUT_SECONDS = 15 * 60
SENSITIVE = frozenset({"zip_code", "phone_last4", "customer_name"})

OrderNumber = Annotated[
    str,
    Field(
        description="The order number as the caller gave it: 4 to 6 digits, "
        "e.g. '4217' (spoken forms like 'four two one seven' are accepted).",
        max_length=100,
    ),
]
ZipCode = Annotated[
    str,
    Field(description="The 5-digit ZIP code the caller says is on the order.", max_length=100),
]

_BAD_NUMBER = (
    "Order numbers have 4 to 6 digits. Ask the caller to say it again, one digit at a time."
)
_NOT_FOUND = (
    "There's no order with that number. Ask the caller to check it and say it digit by digit; "
    "if it still isn't found, offer a human."
)


def _order_number(text: str) -> str | None:
    digits = spoken_digits(text)
    return digits if 4 <= len(digits) <= 6 else None


def _verified(ctx: ToolContext) -> set[str]:
    verified: set[str] = ctx.state.setdefault("verified_orders", set())
    return verified


def _store(ctx: ToolContext) -> Any:
    if ctx.redis is None:  # becomes an "error" outcome: the model says it couldn't look
        raise RuntimeError("no order store on this call")
    return ctx.redis


@tool(timeout=3.0, cancellable=True, sensitive=SENSITIVE)
async def verify_caller(ctx: ToolContext, order_number: OrderNumber, zip_code: ZipCode) -> dict:
    """Verify the caller for one order by checking the ZIP code they give against the
    order. Call this before lookup_order, with a ZIP the caller confirmed when you read it
    back (or typed): every mismatch counts toward a lockout. Never tell the caller the ZIP
    code on file.

    Memory: one verified order number per success in ctx.state; the failure counter lives in
    Redis with a TTL.
    """
    number = _order_number(order_number)
    if number is None:
        return {"verified": False, "message": _BAD_NUMBER}
    digits = spoken_digits(zip_code)
    zip5 = digits[:5] if len(digits) == 9 else digits  # ZIP+4 → ZIP
    if len(zip5) != 5:
        return {
            "verified": False,
            "order_number": number,
            "message": "A ZIP code has 5 digits. Ask the caller to say it again.",
        }
    redis = _store(ctx)
    order = await get_order(redis, ctx.key_prefix, number)
    if order is None:
        return {"verified": False, "found": False, "order_number": number, "message": _NOT_FOUND}
    if number in _verified(ctx):
        return {"verified": True, "order_number": number, "message": "Already verified."}
    key = failures_key(ctx.key_prefix, number)
    failures = int(await redis.get(key) or 0)
    if failures >= MAX_ATTEMPTS:
        return _locked(number)
    # Constant-time compare: the answer's timing must not hint at how many digits matched.
    if hmac.compare_digest(zip5, order["zip_code"]):
        _verified(ctx).add(number)
        await redis.delete(key)
        return {
            "verified": True,
            "order_number": number,
            "message": "The caller is verified for this order. Look it up with lookup_order.",
        }
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, LOCKOUT_SECONDS)
        failures, _ = await pipe.execute()
    if failures >= MAX_ATTEMPTS:
        return _locked(number)
    return {
        "verified": False,
        "order_number": number,
        "attempts_left": MAX_ATTEMPTS - failures,
        "message": "That ZIP code doesn't match this order. Ask the caller to check it. "
        "Don't say what it should be.",
    }


def _locked(number: str) -> dict[str, Any]:
    return {
        "verified": False,
        "locked": True,
        "order_number": number,
        "message": "Too many wrong ZIP codes for this order, so I can't give details. "
        "Don't ask again; offer to transfer the caller to a human.",
    }


@tool(timeout=3.0, cancellable=True, sensitive=SENSITIVE)
async def lookup_order(ctx: ToolContext, order_number: OrderNumber) -> dict:
    """Look up an order's status, carrier, delivery date and items. Details are only given
    once verify_caller has succeeded for that order number on this call.

    Memory: reads one order; keeps nothing.
    """
    number = _order_number(order_number)
    if number is None:
        return {"found": False, "message": _BAD_NUMBER}
    order = await get_order(_store(ctx), ctx.key_prefix, number)
    if order is None:
        return {"found": False, "order_number": number, "message": _NOT_FOUND}
    if number not in _verified(ctx):
        return {
            "found": True,
            "verified": False,
            "order_number": number,
            "message": "Ask the caller for the ZIP code on the order first.",
        }
    tracking = order["tracking_number"]
    return {
        "found": True,
        "verified": True,
        "order_number": number,
        "status": order["status"],
        "carrier": order["carrier"],
        "eta": order["eta"],
        "eta_spoken": spoken_date(order["eta"]),
        "shipped_at": order["shipped_at"],
        "tracking_last4": tracking[-4:] if tracking else "",
        "items": order["items"],
        "items_summary": ", ".join(f"{i['name']} ({i['qty']})" for i in order["items"]),
        "customer_name": order["customer_name"],
        "say": say_status(order),
    }


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip


def spoken_date(iso: str) -> str:
    """``"2026-11-26"`` → ``"Thursday, November 26"`` (English whatever the locale); "" → ""."""
    if not iso:
        return ""
    day = date.fromisoformat(iso)
    return f"{_WEEKDAYS[day.weekday()]}, {_MONTHS[day.month - 1]} {day.day}"


def say_status(order: dict[str, Any]) -> str:
    """One plain sentence the agent can say about the order's status."""
    status, carrier, eta = order["status"], order["carrier"], spoken_date(order["eta"])
    by = f" with {carrier}" if carrier else ""
    if status == "processing":
        tail = f"; it should arrive by {eta}" if eta else ""
        return f"Your order is being prepared and hasn't shipped yet{tail}."
    if status == "shipped":
        tail = f" and should arrive {eta}" if eta else ""
        return f"Your order shipped{by}{tail}."
    if status == "out_for_delivery":
        return f"Your order is out for delivery{by} and should arrive today."
    if status == "delivered":
        return f"Your order was delivered on {eta}." if eta else "Your order was delivered."
    if status == "delayed":
        who = carrier or "the carrier"
        return (
            f"Your order is delayed; {who} now expects to deliver it {eta}."
            if eta
            else ("Your order is delayed, and there's no new delivery date yet.")
        )
    if status == "cancelled":
        return "Your order was cancelled, so it won't ship."
    if status == "returned":
        return "Your order was returned to us."
    return f"Your order's status is {status.replace('_', ' ')}."


VERIFY_CALLER: ToolSpec = verify_caller.spec  # type: ignore[attr-defined]
LOOKUP_ORDER: ToolSpec = lookup_order.spec  # type: ignore[attr-defined]


def hotline_registry() -> ToolRegistry:
    """A fresh registry with the hotline's tools (transfer_call/end_call live elsewhere)."""
    return ToolRegistry([VERIFY_CALLER, LOOKUP_ORDER])
