"""The tool registry: schemas from type hints, strict GA tool dicts, run_tool outcomes."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

import orjson
import pytest
from openai.types.realtime import RealtimeFunctionTool
from pydantic import BaseModel, Field

from service.agent.tools import (
    CallIdLedger,
    ToolContext,
    ToolOutcome,
    ToolRegistry,
    ToolRun,
    ToolSpec,
    build_spec,
    redact,
    redact_arguments,
    run_tool,
    tool,
)
from tests.support.conformance import _extras, check_openai_client_event


class Item(BaseModel):
    name: str
    qty: int = 1


@tool(timeout=2.0, sensitive={"zip_code"})
async def find_order(
    ctx: ToolContext,
    order_number: Annotated[str, Field(description="The order number, digits only.")],
    zip_code: str,
    items: list[Item] | None = None,
    speed: Literal["standard", "express"] = "standard",
    limit: int = 3,
) -> dict[str, Any]:
    """Find an order by number.

    Developer notes: this paragraph is not shown to the model.
    """
    return {
        "order_number": order_number,
        "zip_code": zip_code,
        "limit": limit,
        "call": ctx.call_sid,
    }


@tool
async def no_args() -> str:
    """Say hello."""
    return "hello"


@tool(name="slow", timeout=0.05, cancellable=True)
async def slow_tool(seconds: float) -> str:
    """Sleep a while."""
    await asyncio.sleep(seconds)
    return "done"


@tool
async def broken(reason: str) -> None:
    """Always fails."""
    raise KeyError(reason)


@tool
async def unserialisable() -> object:
    """Returns something JSON cannot hold."""
    return object()


@tool(timeout=5.0)
async def stubborn(seconds: float) -> str:
    """A tool the worker may not cancel."""
    await asyncio.sleep(seconds)
    return "done"


def ctx() -> ToolContext:
    return ToolContext(call_sid="CA0001", redis=None)


def spec(fn: Any) -> ToolSpec:
    return fn.spec


# --- schema ------------------------------------------------------------------------------


def test_schema_from_type_hints() -> None:
    s = spec(find_order)
    assert s.name == "find_order"
    assert s.description == "Find an order by number."
    assert s.timeout_s == 2.0 and s.cancellable is False
    assert s.sensitive == frozenset({"zip_code"})
    p = s.parameters
    assert p["type"] == "object"
    assert p["additionalProperties"] is False
    assert p["required"] == ["order_number", "zip_code"]
    assert set(p["properties"]) == {"order_number", "zip_code", "items", "speed", "limit"}
    assert "ctx" not in p["properties"]
    assert p["properties"]["order_number"] == {
        "type": "string",
        "description": "The order number, digits only.",
    }
    assert p["properties"]["speed"]["enum"] == ["standard", "express"]
    assert p["properties"]["limit"] == {"type": "integer", "default": 3}
    # $defs are inlined and no titles clutter the schema.
    text = orjson.dumps(p).decode()
    assert "$defs" not in text and "$ref" not in text and '"title"' not in text
    item_schema = p["properties"]["items"]["anyOf"][0]["items"]
    assert item_schema["properties"]["name"] == {"type": "string"}
    assert item_schema["required"] == ["name"]


def test_schema_of_a_tool_without_arguments() -> None:
    assert spec(no_args).parameters == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }


def test_property_named_title_is_kept() -> None:
    async def titled(title: str) -> str:
        """Set a title."""
        return title

    assert build_spec(titled).parameters["properties"] == {"title": {"type": "string"}}


def test_ctx_is_found_by_annotation_too() -> None:
    async def uses_context(context: ToolContext, q: str) -> str:
        """Search."""
        return q

    s = build_spec(uses_context)
    assert s.ctx_param == "context" and list(s.parameters["properties"]) == ["q"]


def test_bad_tool_definitions_are_refused() -> None:
    def sync(q: str) -> str:
        """Sync."""
        return q

    async def undocumented(q: str) -> str:
        return q

    async def ok(q: str) -> str:
        """Fine."""
        return q

    with pytest.raises(TypeError, match="async"):
        build_spec(sync)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="docstring"):
        build_spec(undocumented)
    with pytest.raises(ValueError, match="must match"):
        build_spec(ok, name="has space")
    with pytest.raises(ValueError, match="timeout"):
        build_spec(ok, timeout=0)


@pytest.mark.parametrize("fn", [find_order, no_args, slow_tool, broken])
def test_openai_tool_is_a_strict_ga_function_tool(fn: Any) -> None:
    entry = spec(fn).openai_tool()
    assert set(entry) == {"type", "name", "description", "parameters"}
    model = RealtimeFunctionTool.model_validate(entry)
    assert _extras(model, "tool") == []
    check_openai_client_event(
        {"type": "session.update", "session": {"type": "realtime", "tools": [entry]}}
    )


def test_schema_is_plain_json_schema() -> None:
    # No jsonschema package here: check every keyword used is a standard one.
    allowed = {
        "type", "properties", "required", "additionalProperties", "description", "items",
        "anyOf", "enum", "default", "maxLength", "minLength", "minimum", "maximum", "const",
    }  # fmt: skip

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "properties":
                    for sub in value.values():
                        walk(sub)
                    continue
                assert key in allowed, key
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for fn in (find_order, no_args, slow_tool):
        walk(spec(fn).parameters)


# --- registry ----------------------------------------------------------------------------


def test_registry_add_get_subset() -> None:
    registry = ToolRegistry([find_order, no_args])
    registry.add(slow_tool.spec)  # type: ignore[attr-defined]
    assert registry.names() == ["find_order", "no_args", "slow"]
    assert registry.get("slow") is slow_tool.spec  # type: ignore[attr-defined]
    assert registry.get("nope") is None
    sub = registry.subset(["slow", "find_order"])
    assert sub.names() == ["slow", "find_order"]
    assert [t["name"] for t in sub.openai_tools()] == ["slow", "find_order"]
    with pytest.raises(ValueError, match="nope, missing"):
        registry.subset(["slow", "nope", "missing"])
    with pytest.raises(ValueError, match="already registered"):
        registry.add(no_args)


def test_registry_derives_plain_async_functions() -> None:
    async def plain(q: str) -> str:
        """Plain."""
        return q

    s = ToolRegistry().add(plain)
    assert s.name == "plain" and s.timeout_s == 5.0


# --- run_tool ----------------------------------------------------------------------------


def error_body(outcome: ToolOutcome) -> dict[str, Any]:
    body = orjson.loads(outcome.output)
    assert body["error"] == outcome.status
    assert body["message"]  # something the model can say
    return body


async def test_ok() -> None:
    outcome = await run_tool(
        spec(find_order), '{"order_number": "4217", "zip_code": "94107"}', ctx()
    )
    assert outcome.status == "ok"
    expected = {"order_number": "4217", "zip_code": "94107", "limit": 3, "call": "CA0001"}
    assert outcome.result == expected
    assert orjson.loads(outcome.output) == expected
    assert outcome.duration_ms >= 0


async def test_numbers_are_accepted_for_strings() -> None:
    outcome = await run_tool(spec(find_order), '{"order_number": 4217, "zip_code": "1"}', ctx())
    assert outcome.status == "ok" and outcome.result["order_number"] == "4217"


async def test_empty_arguments_mean_none() -> None:
    outcome = await run_tool(spec(no_args), "", ctx())
    assert outcome.status == "ok" and outcome.output == '"hello"'


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", '"4217"'])
async def test_arguments_that_are_not_a_json_object(arguments: str) -> None:
    outcome = await run_tool(spec(find_order), arguments, ctx())
    assert outcome.status == "invalid_arguments"
    error_body(outcome)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ('{"zip_code": "94107"}', "order_number: Field required"),
        ('{"order_number": "1", "zip_code": "2", "extra": 1}', "extra: Extra inputs"),
        ('{"order_number": "1", "zip_code": "2", "limit": "lots"}', "limit: Input should be"),
        ('{"order_number": "1", "zip_code": "2", "speed": "warp"}', "speed: Input should be"),
        ('{"order_number": "1", "zip_code": "2", "items": [{"qty": 2}]}', "items.0.name"),
    ],
)
async def test_schema_mismatch(arguments: str, field: str) -> None:
    outcome = await run_tool(spec(find_order), arguments, ctx())
    assert outcome.status == "invalid_arguments"
    assert field in outcome.error
    assert field in error_body(outcome)["details"]


async def test_validation_errors_do_not_echo_values() -> None:
    outcome = await run_tool(spec(find_order), '{"order_number": "1", "zip_code": [94107]}', ctx())
    assert outcome.status == "invalid_arguments"
    assert "94107" not in outcome.output and "94107" not in outcome.error


async def test_arguments_to_a_tool_without_parameters() -> None:
    outcome = await run_tool(spec(no_args), '{"x": 1}', ctx())
    assert outcome.status == "invalid_arguments" and "x" in outcome.error


async def test_exception_becomes_a_speakable_error() -> None:
    outcome = await run_tool(spec(broken), '{"reason": "db down"}', ctx())
    assert outcome.status == "error"
    assert outcome.error.startswith("KeyError")
    body = error_body(outcome)
    assert "couldn't" in body["message"]
    assert "db down" not in outcome.output  # internals stay in the audit, not with the model


async def test_timeout() -> None:
    outcome = await run_tool(spec(slow_tool), '{"seconds": 5}', ctx())
    assert outcome.status == "timeout"
    assert 40 <= outcome.duration_ms < 1000
    error_body(outcome)


async def test_unknown_tool() -> None:
    outcome = await run_tool(None, "{}", ctx())
    assert outcome.status == "unknown_tool"
    error_body(outcome)


async def test_result_that_is_not_json() -> None:
    outcome = await run_tool(spec(unserialisable), "{}", ctx())
    assert outcome.status == "error" and "JSON" in outcome.error
    error_body(outcome)


async def test_cancel_a_running_tool() -> None:
    run = ToolRun(build_spec(slow_tool, timeout=5, cancellable=True), '{"seconds": 5}', ctx())
    await asyncio.sleep(0.01)  # let it start
    assert run.cancel() is True
    outcome = await run.wait()
    assert outcome.status == "cancelled"
    error_body(outcome)
    assert run.cancel() is False  # already done


async def test_cancel_before_the_tool_starts() -> None:
    run = ToolRun(spec(slow_tool), '{"seconds": 5}', ctx())
    assert run.cancel() is True
    assert (await run.wait()).status == "cancelled"


async def test_a_non_cancellable_tool_refuses_cancel_unless_forced() -> None:
    run = ToolRun(spec(stubborn), '{"seconds": 5}', ctx())
    await asyncio.sleep(0.01)
    assert run.cancel() is False
    assert not run.task.done()
    assert run.cancel(force=True) is True
    assert (await run.wait()).status == "cancelled"


async def test_cancelling_the_caller_propagates_and_stops_the_tool() -> None:
    run = ToolRun(spec(stubborn), '{"seconds": 5}', ctx())
    waiter = asyncio.create_task(run.wait())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.sleep(0)  # the tool task sees its cancel
    assert run.task.done()
    assert run.task.result().status == "cancelled"


async def test_cancelling_run_tool_caller_is_not_swallowed() -> None:
    caller = asyncio.create_task(run_tool(spec(stubborn), '{"seconds": 5}', ctx()))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert caller.cancelled()


# --- redaction and idempotency -------------------------------------------------------------


def test_redact_is_deep_and_copies() -> None:
    value = {
        "zip_code": "94107",
        "order": {"customer_name": "Dana", "status": "shipped"},
        "list": [{"zip_code": "1"}, "zip_code", 3],
    }
    out = redact(value, frozenset({"zip_code", "customer_name"}))
    assert out == {
        "zip_code": "[redacted]",
        "order": {"customer_name": "[redacted]", "status": "shipped"},
        "list": [{"zip_code": "[redacted]"}, "zip_code", 3],
    }
    assert value["zip_code"] == "94107" and value["list"][0]["zip_code"] == "1"


def test_redact_arguments() -> None:
    sensitive = frozenset({"zip_code"})
    redacted = redact_arguments('{"order_number": "4217", "zip_code": "94107"}', sensitive)
    assert orjson.loads(redacted) == {"order_number": "4217", "zip_code": "[redacted]"}
    assert redact_arguments('{"zip_code": 941', sensitive) == "[unparseable: 16 chars]"


def test_call_id_ledger_is_bounded() -> None:
    ledger = CallIdLedger(maxlen=3)
    assert ledger.first_time("a") is True
    assert ledger.first_time("a") is False
    for call_id in ("b", "c", "d"):
        assert ledger.first_time(call_id)
    assert len(ledger) == 3
    assert "a" not in ledger  # the oldest was forgotten
    assert ledger.first_time("d") is False
    with pytest.raises(ValueError):
        CallIdLedger(maxlen=0)
