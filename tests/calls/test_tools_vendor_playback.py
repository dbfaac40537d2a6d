"""Tool answers on calls whose audio the vendor plays (OpenAI SIP/WebRTC): spoken or
interrupted from the vendor's playback events, and end_call waiting for the goodbye to stop."""

from __future__ import annotations

import asyncio
from typing import Any

from service.agent.catalog import builtin_tools
from service.agent.tools import ToolContext, ToolRegistry, build_spec
from service.calls.playback import PlaybackLedger
from service.calls.tools import ToolCoordinator
from service.realtime.events import ResponseDone, ResponseStarted, ToolCallRequested


class VendorModel:
    """The worker's model session on a sideband: it only records what is asked of it."""

    active_response_id: str | None = None

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    async def function_output(self, call_id: str, output: str) -> bool:
        self.sent.append(("output", call_id))
        return True

    async def create_response(self, instructions: str | None = None, **options: Any) -> bool:
        self.sent.append(("create", options.get("purpose")))
        return True

    async def send_user_text(self, text: str) -> bool:
        return True

    async def cancel_response(self) -> bool:
        return True


class Audit:
    def __init__(self) -> None:
        self.states: list[tuple[str, str]] = []

    def record(self, call_sid: str, call_id: str, name: str, state: str, **_: Any) -> None:
        self.states.append((name, state))


async def ping() -> dict:
    """Ping."""
    return {"pong": True}


def coordinator() -> tuple[ToolCoordinator, VendorModel, Audit, list[str]]:
    registry: ToolRegistry = builtin_tools().subset(("end_call",))
    registry.add(build_spec(ping))
    model, audit, hung_up = VendorModel(), Audit(), []

    async def hang_up(reason: str) -> None:
        hung_up.append(reason)

    context = ToolContext(call_sid="rtc_1", redis=None)

    class Control:
        async def hang_up(self, reason: str = "agent_hangup") -> None:
            await hang_up(reason)

    context.call = Control()  # type: ignore[assignment]
    tools = ToolCoordinator(
        call_sid="rtc_1",
        registry=registry,
        ctx=context,
        model=model,  # type: ignore[arg-type]
        ledger=PlaybackLedger(),
        audit=audit,  # type: ignore[arg-type]
        hang_up=hang_up,
    )
    return tools, model, audit, hung_up


async def answer_ping(tools: ToolCoordinator, model: VendorModel) -> None:
    await tools.requested(ToolCallRequested("call_1", "ping", "{}"))
    for _ in range(20):
        await asyncio.sleep(0)
    assert ("create", "tool_answer") in model.sent
    await tools.response_started(ResponseStarted("r1", "tool_answer"))
    tools.playback_started("r1")
    await tools.response_done(ResponseDone("r1", "completed"))


async def test_an_answer_is_spoken_when_the_vendor_plays_it_out() -> None:
    tools, model, audit, _ = coordinator()
    await answer_ping(tools, model)
    assert ("ping", "spoken") not in audit.states  # still playing after response.done
    tools.playback_ended("r1", cleared=False)
    assert [s for n, s in audit.states if n == "ping"] == [
        "requested",
        "started",
        "finished",
        "spoken",
    ]
    await tools.close()


async def test_an_answer_is_interrupted_when_the_vendor_clears_it() -> None:
    tools, model, audit, _ = coordinator()
    await answer_ping(tools, model)
    tools.playback_ended("r1", cleared=True)
    assert audit.states[-1] == ("ping", "interrupted")
    await tools.close()


async def test_end_call_hangs_up_only_after_the_goodbye_has_played() -> None:
    tools, model, audit, hung_up = coordinator()
    await tools.requested(ToolCallRequested("call_9", "end_call", "{}"))
    assert model.sent[-1] == ("create", "goodbye")
    await tools.response_started(ResponseStarted("r9", "goodbye"))
    tools.playback_started("r9")
    await tools.response_done(ResponseDone("r9", "completed"))
    for _ in range(20):
        await asyncio.sleep(0)
    assert hung_up == []
    tools.playback_ended("r9", cleared=False)
    for _ in range(20):
        await asyncio.sleep(0)
    assert hung_up
    assert ("end_call", "spoken") in audit.states
    await tools.close()
