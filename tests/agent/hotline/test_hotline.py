"""The order-status hotline: seeding orders into a real Redis, verification, lookups."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from service.agent.hotline import (
    LOOKUP_ORDER,
    VERIFY_CALLER,
    get_order,
    hotline_registry,
    hotline_seed_main,
    lookup_order,
    seed_orders,
    spoken_digits,
    verify_caller,
)
from service.agent.hotline.orders import STATUSES, failures_key, load_fixture, order_key
from service.agent.hotline.tools import LOCKOUT_SECONDS, say_status, spoken_date
from service.agent.tools import ToolContext, redact, redact_arguments, run_tool
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.network  # real sockets on loopback (or a real Redis)

PREFIX = "test:"
TODAY = date.today()


@pytest.fixture
async def seeded(redis_client: aioredis.Redis) -> aioredis.Redis:
    await seed_orders(redis_client, PREFIX)
    return redis_client


def new_call(redis: Any, sid: str = "CA0001") -> ToolContext:
    return ToolContext(call_sid=sid, redis=redis, key_prefix=PREFIX)


# --- data ----------------------------------------------------------------------------------


async def test_seed_is_idempotent_and_counts(redis_client: aioredis.Redis) -> None:
    assert await seed_orders(redis_client, PREFIX) == 36
    first = {k: await redis_client.get(k) for k in await redis_client.keys("*")}
    assert await seed_orders(redis_client, PREFIX) == 36
    second = {k: await redis_client.get(k) for k in await redis_client.keys("*")}
    assert first == second
    assert len(first) == 36 and all(k.startswith(f"{PREFIX}order:") for k in first)
    assert {await redis_client.ttl(k) for k in first} == {-1}  # reference data: no TTL


async def test_fixture_covers_every_status(redis_client: aioredis.Redis) -> None:
    orders = load_fixture()
    assert {o["status"] for o in orders} == STATUSES
    assert len({o["order_number"] for o in orders}) == len(orders)
    for o in orders:
        assert o["items"] and all(i["qty"] >= 1 for i in o["items"])
        if o["status"] in ("processing", "cancelled"):
            assert o["carrier"] == "" and o["tracking_number"] == "" and o["shipped_at"] == ""
        else:
            assert o["carrier"] and o["tracking_number"] and o["shipped_at"]


async def test_demo_order(seeded: aioredis.Redis) -> None:
    order = await get_order(seeded, PREFIX, "4217")
    assert order is not None
    assert order["status"] == "shipped" and order["carrier"] == "UPS"
    assert order["zip_code"] == "94107"
    assert order["eta"] == (TODAY + timedelta(days=2)).isoformat()
    assert order["shipped_at"] == (TODAY - timedelta(days=1)).isoformat()
    assert orjson.loads(await seeded.get(order_key(PREFIX, "4217"))) == order
    assert await get_order(seeded, PREFIX, "999999") is None


async def test_bad_fixture_row_is_named(tmp_path: Path, redis_client: aioredis.Redis) -> None:
    rows = load_fixture()[:1]
    bad = {**rows[0], "status": "lost", "eta_offset_days": 1, "shipped_offset_days": None}
    path = tmp_path / "orders.json"
    path.write_bytes(orjson.dumps({"orders": [bad]}))
    with pytest.raises(ValueError, match=r"order #0 \(4217\): invalid status"):
        await seed_orders(redis_client, PREFIX, path=path)


async def test_seed_main_against_a_real_redis(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    assert await hotline_seed_main(redis_server.url, "main:") == 36
    assert await get_order(redis_client, "main:", "4217") is not None


async def test_seed_main_embedded() -> None:
    assert await hotline_seed_main(None, "x:") == 36


@pytest.mark.parametrize(
    ("spoken", "digits"),
    [
        ("4217", "4217"),
        ("four two one seven", "4217"),
        ("Four-two-one-seven.", "4217"),
        ("9 4 1 0 7", "94107"),
        ("nine four one oh seven", "94107"),
        ("forty-two seventeen", "4217"),
        ("ninety four one zero seven", "94107"),
        ("double four one two", "4412"),
        ("#4217", "4217"),
        ("it's order number 4,217, uh", "4217"),
        ("twenty", "20"),
        ("two hundred five", ""),  # ambiguous: ask again rather than guess
        ("I don't know", ""),
    ],
)
def test_spoken_digits(spoken: str, digits: str) -> None:
    assert spoken_digits(spoken) == digits


# --- verification and lookup ---------------------------------------------------------------


async def test_lookup_before_verification_leaks_nothing(seeded: aioredis.Redis) -> None:
    result = await lookup_order(new_call(seeded), "4217")
    assert result == {
        "found": True,
        "verified": False,
        "order_number": "4217",
        "message": "Ask the caller for the ZIP code on the order first.",
    }


async def test_wrong_then_right_zip(seeded: aioredis.Redis) -> None:
    ctx = new_call(seeded)
    wrong = await verify_caller(ctx, "4217", "10001")
    assert wrong["verified"] is False and wrong["attempts_left"] == 2
    assert "94107" not in orjson.dumps(wrong).decode()
    right = await verify_caller(ctx, "4217", "94107")
    assert right["verified"] is True
    assert ctx.state["verified_orders"] == {"4217"}
    assert await seeded.exists(failures_key(PREFIX, "4217")) == 0  # reset on success

    details = await lookup_order(ctx, "4217")
    eta = TODAY + timedelta(days=2)
    assert details["verified"] is True and details["status"] == "shipped"
    assert details["carrier"] == "UPS" and details["eta"] == eta.isoformat()
    assert (
        details["say"]
        == f"Your order shipped with UPS and should arrive {spoken_date(eta.isoformat())}."
    )
    assert "Wireless noise-cancelling headphones (1)" in details["items_summary"]
    assert len(details["tracking_last4"]) == 4
    assert "zip_code" not in details and "tracking_number" not in details


async def test_spoken_forms_verify(seeded: aioredis.Redis) -> None:
    ctx = new_call(seeded)
    result = await verify_caller(ctx, "four two one seven", "9 4 1 0 7")
    assert result["verified"] is True
    assert (await lookup_order(ctx, "forty-two seventeen"))["status"] == "shipped"


async def test_zip_plus_four_is_accepted(seeded: aioredis.Redis) -> None:
    assert (await verify_caller(new_call(seeded), "4217", "94107-1234"))["verified"] is True


async def test_verification_is_per_order_and_per_call(seeded: aioredis.Redis) -> None:
    ctx = new_call(seeded)
    assert (await verify_caller(ctx, "4218", "10001"))["verified"] is True
    assert (await lookup_order(ctx, "4217"))["verified"] is False  # another order
    assert (await lookup_order(new_call(seeded, "CA0002"), "4218"))["verified"] is False


async def test_lockout_after_three_failures(seeded: aioredis.Redis) -> None:
    ctx = new_call(seeded)
    assert (await verify_caller(ctx, "4217", "11111"))["attempts_left"] == 2
    assert (await verify_caller(ctx, "4217", "22222"))["attempts_left"] == 1
    third = await verify_caller(ctx, "4217", "33333")
    assert third["verified"] is False and third["locked"] is True
    assert "human" in third["message"]
    # Locked even with the right ZIP, on this call and on the next one.
    assert (await verify_caller(ctx, "4217", "94107"))["locked"] is True
    assert (await verify_caller(new_call(seeded, "CA0002"), "4217", "94107"))["locked"] is True
    assert 0 < await seeded.ttl(failures_key(PREFIX, "4217")) <= LOCKOUT_SECONDS
    assert (await lookup_order(ctx, "4217"))["verified"] is False
    # Another order is unaffected.
    assert (await verify_caller(ctx, "4218", "10001"))["verified"] is True


async def test_malformed_input_does_not_count_as_an_attempt(seeded: aioredis.Redis) -> None:
    ctx = new_call(seeded)
    for _ in range(4):
        result = await verify_caller(ctx, "4217", "nine four")
        assert result["verified"] is False and "5 digits" in result["message"]
    assert await seeded.exists(failures_key(PREFIX, "4217")) == 0
    bad_number = await verify_caller(ctx, "42", "94107")
    assert bad_number["verified"] is False and "4 to 6 digits" in bad_number["message"]


async def test_unknown_order(seeded: aioredis.Redis) -> None:
    ctx = new_call(seeded)
    assert (await lookup_order(ctx, "7777"))["found"] is False
    result = await verify_caller(ctx, "7777", "94107")
    assert result["verified"] is False and result["found"] is False
    assert (await lookup_order(ctx, "12"))["found"] is False


# --- through the registry, as the worker runs them -----------------------------------------


async def test_tools_run_through_run_tool(seeded: aioredis.Redis) -> None:
    registry = hotline_registry()
    assert registry.names() == ["verify_caller", "lookup_order"]
    ctx = new_call(seeded)
    args = '{"order_number": 4217, "zip_code": "94107"}'
    outcome = await run_tool(registry.get("verify_caller"), args, ctx)
    assert outcome.status == "ok" and outcome.result["verified"] is True
    assert "94107" not in redact_arguments(args, VERIFY_CALLER.sensitive)
    outcome = await run_tool(registry.get("lookup_order"), '{"order_number": "4217"}', ctx)
    assert outcome.status == "ok"
    audit = redact(outcome.result, LOOKUP_ORDER.sensitive)
    assert audit["customer_name"] == "[redacted]" and audit["status"] == "shipped"


async def test_no_store_is_a_speakable_error() -> None:
    outcome = await run_tool(LOOKUP_ORDER, '{"order_number": "4217"}', new_call(None))
    assert outcome.status == "error" and "RuntimeError" in outcome.error
    assert "couldn't" in orjson.loads(outcome.output)["message"]


def test_tool_specs() -> None:
    assert VERIFY_CALLER.parameters["required"] == ["order_number", "zip_code"]
    assert LOOKUP_ORDER.parameters["required"] == ["order_number"]
    assert "zip_code" in VERIFY_CALLER.sensitive
    assert {"customer_name", "phone_last4"} <= LOOKUP_ORDER.sensitive
    assert VERIFY_CALLER.cancellable and LOOKUP_ORDER.cancellable


SAYINGS = [
    ("processing", "", "2026-11-30", "Your order is being prepared and hasn't shipped yet; "
     "it should arrive by Monday, November 30."),
    ("shipped", "UPS", "2026-11-26",
     "Your order shipped with UPS and should arrive Thursday, November 26."),
    ("out_for_delivery", "FedEx", "2026-11-24",
     "Your order is out for delivery with FedEx and should arrive today."),
    ("delivered", "USPS", "2026-11-23", "Your order was delivered on Monday, November 23."),
    ("delayed", "DHL", "2026-11-27",
     "Your order is delayed; DHL now expects to deliver it Friday, November 27."),
    ("cancelled", "", "", "Your order was cancelled, so it won't ship."),
    ("returned", "UPS", "", "Your order was returned to us."),
]  # fmt: skip


@pytest.mark.parametrize(("status", "carrier", "eta", "expected"), SAYINGS)
def test_say_status(status: str, carrier: str, eta: str, expected: str) -> None:
    assert say_status({"status": status, "carrier": carrier, "eta": eta}) == expected
