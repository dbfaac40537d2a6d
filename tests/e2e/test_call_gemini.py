"""A phone call through the service with REALTIME_BACKEND=gemini_peer: the softphone, real Redis,
uvicorn, and the local Gemini-Live peer (which checks every client message against the
google-genai SDK's own types)."""

from __future__ import annotations

from service.peers.gemini_live import GeminiScript, GeminiTurn, LocalGeminiServer, ToolCall
from tests.e2e.test_call_tools import ask, audit_of, caller, states, with_tool
from tests.support.waiting import eventually


async def check_stock(item: str) -> dict:
    """Check whether an item is in stock."""
    return {"in_stock": True, "say": f"Yes, {item} are in stock."}


async def slow_search(query: str) -> dict:
    """Search the catalogue (slow)."""
    import asyncio

    await asyncio.sleep(5)
    return {"found": True}


async def gemini_service(make_service, server: LocalGeminiServer):
    return await make_service(
        realtime_backend="gemini",
        gemini_live_url=server.url,
        gemini_api_key="test-gemini-key-0123456789",
    )


async def test_gemini_call_greets_answers_with_a_tool_survives_go_away_and_barge_in(
    make_service, gemini_peer
) -> None:
    script = GeminiScript(
        greeting=GeminiTurn(text="Hello, thanks for calling.", duration_ms=1200),
        replies=[
            GeminiTurn(
                text="Let me check.",
                duration_ms=500,
                tool_call=ToolCall("check_stock", {"item": "red shoes"}, id="fc_1"),
            ),
            GeminiTurn(text="Yes, red shoes are in stock in every size.", duration_ms=3000),
        ],
        go_away_after_s=7.5,
        go_away_time_left_s=1.0,
    )
    server = await gemini_peer(script)
    service = await gemini_service(make_service, server)
    with_tool(service, check_stock)
    phone = caller(service, seconds=11.0)
    await phone.dial()
    await phone.connect()
    await phone.wait_for(lambda p: p.playback.played_ms > 900 and p.playback.buffered_ms == 0, 8)
    ask(phone, 1000)
    # The answer comes after the tool; talk over it once it is well under way.
    await phone.wait_for(lambda p: p.playback.played_ms > 3200, 10)
    ask(phone, 700)
    summary = await phone.finished()
    assert summary.closed_by == "softphone" and summary.clears >= 1

    await service.services.writer.flush(timeout=5)
    store = service.services.store
    record = await store.get_call(summary.call_sid)
    events = await store.get_events(summary.call_sid)
    types = [e["type"] for e in events]
    assert record["backend"] == "gemini" and record["end_reason"] == "caller_hangup"
    # goAway mid-call: resumed with the newest handle, the phone call never noticed.
    assert "model_reconnected" in types and int(record["model_reconnects"]) >= 1
    assert len(server.history) >= 2
    # Barge-in: Gemini keeps what it sent, so the event says how much went unheard.
    barge = next(e for e in events if e["type"] == "barge_in")
    assert int(barge["unheard_ms"]) > 0
    # The tool ran once and its response carried the model's own id.
    entries = await audit_of(service, summary.call_sid)
    assert states(entries, "check_stock")[:3] == ["requested", "started", "finished"]
    responses = [
        m["toolResponse"]["functionResponses"][0]
        for session in server.history
        for m in session.received
        if "toolResponse" in m
    ]
    assert [r["id"] for r in responses] == ["fc_1"]
    # Transcripts of both sides reach the event stream.
    roles = {e["role"] for e in events if e["type"] == "transcript"}
    assert roles == {"agent", "caller"}


async def test_gemini_cancels_a_running_tool(make_service, gemini_peer) -> None:
    script = GeminiScript(
        greeting=GeminiTurn(text="Hello.", duration_ms=600),
        replies=[
            GeminiTurn(
                text="Searching.",
                duration_ms=400,
                tool_call=ToolCall(
                    "slow_search", {"query": "boots"}, id="fc_9", cancel_after_ms=400
                ),
            ),
            GeminiTurn(text="Never mind that.", duration_ms=800),
        ],
    )
    server = await gemini_peer(script)
    service = await gemini_service(make_service, server)
    with_tool(service, slow_search, timeout=10.0)
    phone = caller(service, seconds=5.0)
    await phone.dial()
    await phone.connect()
    await phone.wait_for(lambda p: p.playback.played_ms > 300 and p.playback.buffered_ms == 0, 8)
    ask(phone, 800)
    summary = await phone.finished()
    entries = await audit_of(service, summary.call_sid)
    search = states(entries, "slow_search")
    assert "cancel_requested" in search
    finished = next(e for e in entries if e["name"] == "slow_search" and e["state"] == "finished")
    assert finished["status"] == "cancelled"
    # A cancelled call gets no toolResponse (the model withdrew it).
    await eventually(lambda: True)
    assert not any("toolResponse" in m for s in server.history for m in s.received)
