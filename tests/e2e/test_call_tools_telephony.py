"""Tools meeting telephony: barge-in during a tool, end_call and transfer_call through Twilio's
REST API (a local stand-in), DTMF as text, and an audit that survives a Redis restart."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import Any

from service.modelserver.script import FunctionCall, Turn
from tests.conftest import TEST_AUTH_TOKEN
from tests.e2e.test_call_tools import ask, audit_of, caller, hotline_service, states, with_tool
from tests.support.twilio_rest import TwilioRestStandIn
from tests.support.waiting import eventually

ACCOUNT = "AC" + "e" * 32


async def greeted(phone) -> None:
    await phone.dial()
    await phone.connect()
    await phone.wait_for(lambda p: p.playback.played_ms > 500 and p.playback.buffered_ms == 0, 8)


async def test_barge_in_during_a_tool_is_audited_and_cancellable_tools_stop(
    make_service, local_model
):
    async def slow_search(query: str) -> dict:
        """Search the catalogue (slow)."""
        await asyncio.sleep(3.0)
        return {"found": True, "say": "Found it."}

    model, service = await hotline_service(make_service, local_model)
    with_tool(service, slow_search, timeout=5.0, cancellable=True)
    object.__setattr__(
        model.script,
        "caller_turn",
        lambda _r: Turn(function_call=FunctionCall("slow_search", '{"query": "red shoes"}')),
    )
    phone = caller(service, seconds=7.0)
    await greeted(phone)
    ask(phone, 800)
    await eventually(lambda: bool(service.services.calls.values()[0].tool_calls.running), 5)
    await asyncio.sleep(0.3)
    ask(phone, 700)  # the caller talks while the tool runs
    summary = await phone.finished()
    entries = await audit_of(service, summary.call_sid)
    search = states(entries, "slow_search")
    assert search[:3] == ["requested", "started", "interrupted"]
    interrupted = next(e for e in entries if e["state"] == "interrupted")
    assert interrupted["cancelled"] == "true" and interrupted["during"] == "tool_run"
    finished = next(e for e in entries if e["name"] == "slow_search" and e["state"] == "finished")
    assert finished["status"] == "cancelled"
    # Its output was still sent: no call is left dangling.
    outputs = [
        e["item"]["output"]
        for e in model.history[0].received
        if e["type"] == "conversation.item.create"
        and e["item"].get("call_id") == interrupted["call_id"]
    ]
    assert len(outputs) == 1 and "cancelled" in outputs[0]


async def rest_service(make_service, local_model, rest: TwilioRestStandIn, **settings: Any):
    return await hotline_service(
        make_service,
        local_model,
        twilio_account_sid=ACCOUNT,
        twilio_api_base_url=rest.base_url,
        **settings,
    )


async def test_end_call_says_goodbye_then_hangs_up_through_twilio(make_service, local_model):
    async with TwilioRestStandIn(ACCOUNT, TEST_AUTH_TOKEN) as rest:
        model, service = await rest_service(make_service, local_model, rest)
        model.script.end_after_answer = True
        phone = caller(service, seconds=15.0)
        await greeted(phone)
        ask(phone)
        summary = await phone.finished()
        assert summary.closed_by == "server"  # the agent ended the call
        assert summary.duration_s < 14
        [(path, form)] = rest.requests
        assert path.endswith(f"/Calls/{summary.call_sid}.json") and form == {"Status": "completed"}
        entries = await audit_of(service, summary.call_sid)
        end = states(entries, "end_call")
        assert end[:2] == ["requested", "started"] and "finished" in end
        done = next(e for e in entries if e["name"] == "end_call" and e["state"] == "finished")
        assert done["status"] == "ok"
        # The goodbye was heard before the hang-up.
        assert "spoken" in end
        record = await service.services.store.get_call(summary.call_sid)
        assert record["end_reason"] == "agent_hangup"


async def test_transfer_call_redirects_with_dial(make_service, local_model):
    async with TwilioRestStandIn(ACCOUNT, TEST_AUTH_TOKEN) as rest:
        model, service = await rest_service(make_service, local_model, rest)
        object.__setattr__(
            model.script,
            "caller_turn",
            lambda _r: Turn(
                text="Let me connect you.",
                function_call=FunctionCall("transfer_call", '{"target": "+1 (555) 010-9999"}'),
            ),
        )
        phone = caller(service, seconds=6.0)
        await greeted(phone)
        ask(phone)
        summary = await phone.finished()
        [(path, form)] = rest.requests
        assert path.endswith(f"/Calls/{summary.call_sid}.json")
        dial = ET.fromstring(form["Twiml"]).find("Dial")
        assert dial is not None and (dial.text or "").strip() == "+15550109999"
        entries = await audit_of(service, summary.call_sid)
        done = next(e for e in entries if e["name"] == "transfer_call" and e["state"] == "finished")
        assert done["status"] == "ok" and "+15550109999" in done["result"]


async def test_dtmf_reaches_the_model_as_text(make_service, local_model):
    model, service = await hotline_service(make_service, local_model, dtmf_pause_ms=400)
    phone = caller(service, seconds=4.0, dtmf=[(2.5, "4217#"), (3.0, "9")])
    await phone.run()
    texts = [
        e["item"]["content"][0]["text"]
        for e in model.history[0].received
        if e["type"] == "conversation.item.create" and e["item"]["type"] == "message"
    ]
    assert texts[:2] == [
        "The caller pressed 4 2 1 7 # on the keypad.",
        "The caller pressed 9 on the keypad.",  # sent after the pause, no # needed
    ]


async def test_redis_restart_mid_call_loses_no_audit(make_service, local_model, own_redis_server):
    async def check_stock(item: str) -> dict:
        """Check stock (a service that does not need Redis)."""
        return {"found": True, "say": f"We have {item} in stock."}

    model, service = await hotline_service(
        make_service, local_model, redis_url=own_redis_server.url
    )
    with_tool(service, check_stock)
    object.__setattr__(
        model.script,
        "caller_turn",
        lambda _r: Turn(function_call=FunctionCall("check_stock", '{"item": "red shoes"}')),
    )
    phone = caller(service, seconds=8.0)
    await greeted(phone)
    own_redis_server.stop()  # Redis goes away before the caller asks
    ask(phone)
    await asyncio.sleep(3.5)  # the tool runs and its answer is spoken while Redis is down
    assert service.services.writer.pending > 0
    own_redis_server.start()
    summary = await phone.finished()
    await eventually(lambda: service.services.writer.pending == 0, 15)
    entries = await audit_of(service, summary.call_sid)
    assert states(entries, "check_stock") == ["requested", "started", "finished", "spoken"]
    assert service.services.writer.dropped == 0
    recent = await service.services.audit.recent(service.services.redis, count=100)
    assert len([e for e in recent if e["call_sid"] == summary.call_sid]) == len(entries)
