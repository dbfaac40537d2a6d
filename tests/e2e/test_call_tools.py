"""Tool calls through the whole service: softphone, service, real Redis, local model.

The local model runs ``HotlineScript``: each caller turn makes it call ``verify_caller`` then
``lookup_order`` over the protocol's function-calling events, and speak the result.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson

from service.agent.hotline.orders import seed_orders
from service.agent.profiles import HOTLINE_PROFILE, Profiles
from service.agent.tools import build_spec
from service.demo import CALLER_VOICE
from service.modelserver.hotline_script import HotlineScript
from service.modelserver.script import FunctionCall, Turn
from service.peers.twilio import Softphone
from tests.conftest import TEST_AUTH_TOKEN
from tests.support.waiting import eventually


async def hotline_service(
    make_service, local_model, script: HotlineScript | None = None, **settings: Any
):
    model = await local_model(script or HotlineScript())
    service = await make_service(realtime_backend="local", local_realtime_url=model.url, **settings)
    await seed_orders(service.services.redis, service.services.settings.redis_key_prefix)
    return model, service


def caller(service, **options: Any) -> Softphone:
    return Softphone(
        service.base_url,
        auth_token=TEST_AUTH_TOKEN,
        public_url=service.services.settings.public_url,
        **options,
    )


def ask(phone: Softphone, ms: int = 1200) -> None:
    phone.speak(b"".join(CALLER_VOICE.synthesize("where is my order", ms, 8000)))


async def audit_of(service, call_sid: str) -> list[dict[str, str]]:
    await service.services.writer.flush(timeout=5)
    return await service.services.audit.call_entries(service.services.redis, call_sid)


def states(entries: list[dict[str, str]], name: str) -> list[str]:
    return [e["state"] for e in entries if e["name"] == name]


def with_tool(service, fn, **spec_options: Any) -> None:
    """Offer one more tool on the default profile (as an operator's profile file would)."""
    services = service.services
    services.factory.tools.add(build_spec(fn, **spec_options))
    profile = dataclasses.replace(HOTLINE_PROFILE, tools=(*HOTLINE_PROFILE.tools, fn.__name__))
    services.factory.profiles = Profiles(default=profile)


async def test_hotline_call_answers_from_the_tools_and_audits_them(make_service, local_model):
    model, service = await hotline_service(make_service, local_model)
    phone = caller(service, seconds=9.0)
    await phone.dial()
    await phone.connect()
    await phone.wait_for(lambda p: p.playback.played_ms > 500 and p.playback.buffered_ms == 0, 8)
    ask(phone)
    summary = await phone.finished()
    entries = await audit_of(service, summary.call_sid)

    assert states(entries, "verify_caller") == ["requested", "started", "finished", "unspoken"]
    assert states(entries, "lookup_order") == ["requested", "started", "finished", "spoken"]
    verify_requested = next(e for e in entries if e["name"] == "verify_caller")
    assert "94107" not in str(entries)  # the ZIP is sensitive: redacted everywhere
    assert "[redacted]" in verify_requested["arguments"]
    lookup_done = next(
        e for e in entries if e["name"] == "lookup_order" and e["state"] == "finished"
    )
    assert lookup_done["status"] == "ok"
    assert "UPS" in lookup_done["result"]
    spoken = next(e for e in entries if e["state"] == "spoken")
    assert int(spoken["heard_ms"]) == int(spoken["sent_ms"]) > 0

    # The global stream has the same entries; the model got the outputs it asked for.
    recent = await service.services.audit.recent(service.services.redis, count=100)
    assert [e["state"] for e in recent if e["call_sid"] == summary.call_sid] == [
        e["state"] for e in entries
    ]
    outputs = [
        e
        for e in model.history[0].received
        if e["type"] == "conversation.item.create" and e["item"]["type"] == "function_call_output"
    ]
    assert len(outputs) == 2
    events = await service.services.store.get_events(summary.call_sid)
    said = [e["text"] for e in events if e["type"] == "transcript" and e["role"] == "agent"]
    assert any("UPS" in line for line in said)


async def test_slow_tool_keeps_audio_flowing_and_says_a_holding_phrase(make_service, local_model):
    async def slow_lookup(order_number: str) -> dict:
        """Look up an order in a slow back office."""
        await asyncio.sleep(2.0)
        return {"found": True, "say": f"Order {order_number} is on its way."}

    model, service = await hotline_service(make_service, local_model)
    with_tool(service, slow_lookup, timeout=5.0)

    # The caller's turn makes the model call the slow tool.
    object.__setattr__(
        model.script,
        "caller_turn",
        lambda _request: Turn(
            function_call=FunctionCall("slow_lookup", '{"order_number": "4217"}')
        ),
    )

    phone = caller(service, seconds=8.0)
    await phone.dial()
    await phone.connect()
    await phone.wait_for(lambda p: p.playback.played_ms > 500 and p.playback.buffered_ms == 0, 8)
    ask(phone, 800)
    # Wait until the tool is running, then count frames both ways while it runs.
    await eventually(lambda: bool(service.services.calls.values()[0].tool_calls.running), 5)
    sent_before, played_before = phone.summary().frames_sent, phone.playback.played_ms
    await asyncio.sleep(1.8)
    sent_during = phone.summary().frames_sent - sent_before
    played_during = phone.playback.played_ms - played_before
    summary = await phone.finished()
    assert sent_during >= 80  # ~90 caller frames in 1.8 s: the caller was never blocked
    assert played_during >= 500  # the holding phrase played while the tool ran
    entries = await audit_of(service, summary.call_sid)
    finished = next(e for e in entries if e["name"] == "slow_lookup" and e["state"] == "finished")
    assert finished["status"] == "ok" and float(finished["duration_ms"]) >= 1900
    fillers = [
        e
        for e in model.history[0].received
        if e["type"] == "response.create"
        and (e.get("response") or {}).get("metadata", {}).get("purpose") == "filler"
    ]
    assert len(fillers) == 1 and fillers[0]["response"]["conversation"] == "none"


async def test_duplicate_tool_request_runs_once(make_service, local_model):
    model, service = await hotline_service(make_service, local_model)
    phone = caller(service, seconds=7.0)
    await phone.dial()
    await phone.connect()
    await phone.wait_for(lambda p: p.playback.played_ms > 500 and p.playback.buffered_ms == 0, 8)
    ask(phone)
    session = model.history[0]
    await eventually(
        lambda: any(e["type"] == "conversation.item.create" for e in session.received), 6
    )
    first = next(
        e
        for e in session.received
        if e["type"] == "conversation.item.create" and e["item"]["type"] == "function_call_output"
    )
    # Replay the same function_call_arguments.done, as after a reconnect.
    await model.push(
        session,
        {
            "type": "response.function_call_arguments.done",
            "response_id": "resp_replay",
            "item_id": "item_replay",
            "output_index": 0,
            "call_id": first["item"]["call_id"],
            "name": "verify_caller",
            "arguments": '{"order_number": "4217", "zip_code": "94107"}',
        },
    )
    summary = await phone.finished()
    entries = await audit_of(service, summary.call_sid)
    verify = [e for e in entries if e["call_id"] == first["item"]["call_id"]]
    assert [e["state"] for e in verify].count("started") == 1
    assert "duplicate" in [e["state"] for e in verify]
    outputs = [
        e
        for e in session.received
        if e["type"] == "conversation.item.create"
        and e["item"].get("call_id") == first["item"]["call_id"]
    ]
    assert len(outputs) == 1


async def test_invalid_arguments_and_timeouts_get_speakable_errors(make_service, local_model):
    async def stuck(order_number: str) -> dict:
        """A back office that never answers."""
        await asyncio.sleep(30)
        return {}

    model, service = await hotline_service(make_service, local_model)
    with_tool(service, stuck, timeout=0.3)
    script = model.script
    calls = iter(
        [
            FunctionCall("lookup_order", "{not json"),
            FunctionCall("lookup_order", '{"order_number": 4217, "extra": true}'),
            FunctionCall("stuck", '{"order_number": "1"}'),
        ]
    )
    after_tool = script._after_tool

    def next_call(_request: object = None) -> Turn:
        nxt = next(calls, None)
        return Turn(function_call=nxt) if nxt is not None else Turn(text="Sorry about that.")

    # The caller's turn, and then each error answer, lead to the next bad call.
    object.__setattr__(script, "caller_turn", next_call)
    object.__setattr__(
        script,
        "_after_tool",
        lambda output: next_call() if output.get("error") else after_tool(output),
    )
    phone = caller(service, seconds=6.0)
    await phone.dial()
    await phone.connect()
    await phone.wait_for(lambda p: p.playback.played_ms > 500 and p.playback.buffered_ms == 0, 8)
    ask(phone, 800)
    summary = await phone.finished()
    entries = await audit_of(service, summary.call_sid)
    finished = [e["status"] for e in entries if e["state"] == "finished"]
    assert finished == ["invalid_arguments", "invalid_arguments", "timeout"]
    outputs = [
        orjson.loads(e["item"]["output"])
        for e in model.history[0].received
        if e["type"] == "conversation.item.create" and e["item"]["type"] == "function_call_output"
    ]
    assert len(outputs) == 3
    assert all(o["error"] and o["message"] for o in outputs)  # something to say, never silence
