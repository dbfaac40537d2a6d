"""The call worker with no sockets: a simulated carrier, the worker, and the real protocol pair
(our OpenAI client core wired to the model server's core) on one simulated clock.

What is asserted is what a caller would notice: where the agent's audio was cut, what
reached the carrier after a barge-in, the order the model heard the caller in, that every
tool call is answered once, and that a goodbye is heard before the line drops.
"""

from __future__ import annotations

import asyncio
import base64

import orjson

from service.agent.call_control import end_call
from service.agent.tools import ToolRegistry, build_spec
from service.audio.g711 import pcm16_to_ulaw
from service.audio.synthetic import SyntheticVoice
from service.calls.responses import Idle
from service.modelserver.script import FunctionCall, Script, Turn
from service.realtime.config import SessionConfig
from service.telephony.events import CallerAudio, ClearPlayback, HangUp, PlaceMark
from tests.support.wired_call import WiredCall

CALLER = SyntheticVoice(seed=7, level_dbfs=-16.0)


def caller_frames(ms: int) -> list[bytes]:
    pcm = b"".join(CALLER.synthesize("wait, which carrier", ms, 8000))
    ulaw = pcm16_to_ulaw(pcm)
    return [ulaw[i : i + 160] for i in range(0, len(ulaw), 160)]


async def speak(call: WiredCall, ms: int) -> None:
    """The caller talks for ``ms``: one 20 ms frame per 20 ms of simulated time."""
    for frame in caller_frames(ms):
        await call.worker.on_event(CallerAudio(frame))
        await call.advance(0.02)


async def lookup_order(order_number: str) -> dict[str, str]:
    """Look up an order."""
    return {"order_number": order_number, "status": "shipped"}


def tools(*functions: object) -> ToolRegistry:
    return ToolRegistry([build_spec(fn) for fn in functions])  # type: ignore[arg-type]


def marks_of(call: WiredCall) -> list[str]:
    return [c.name for c in call.carrier.commands if isinstance(c, PlaceMark)]


async def test_barge_in_truncates_at_the_millisecond_the_caller_heard() -> None:
    """The greeting streams 4x faster than real time; the caller talks over it at ~1.2 s. The
    truncation names exactly what the carrier had played when it was told to clear."""
    script = Script(greeting=Turn(text="Hello and welcome", duration_ms=4000), pace=4.0)
    async with WiredCall(script) as call:
        await call.advance(1.2)
        assert call.model.received("response.done")  # fully sent, still playing at the carrier
        await speak(call, 600)
        await call.until(lambda: bool(call.model.sent("conversation.item.truncate")))

        [truncate] = call.model.sent("conversation.item.truncate")
        played = call.carrier.played_at_clear
        assert played is not None and 1200 <= played < 4000
        # Heard = played up to the clear, to within one clock step of the simulation.
        assert abs(truncate["audio_end_ms"] - played) <= call.step_ms
        assert call.carrier.count(ClearPlayback) == 1
        assert call.worker.barge_ins == 1
        [truncated] = call.model.received("conversation.item.truncated")
        assert truncated["audio_end_ms"] == truncate["audio_end_ms"]


async def test_interrupted_response_never_reaches_the_caller_again() -> None:
    """Streaming at real time, the greeting is still being generated when the caller talks:
    nothing of it is played after the clear, though its deltas may still arrive."""
    script = Script(greeting=Turn(text="A long greeting", duration_ms=6000), pace=1.0)
    async with WiredCall(script) as call:
        await call.advance(1.0)
        [created] = call.model.received("response.created")
        greeting_id = created["response"]["id"]
        await speak(call, 600)
        await call.until(lambda: call.carrier.count(ClearPlayback) == 1)
        clear_at = next(
            i for i, c in enumerate(call.carrier.commands) if isinstance(c, ClearPlayback)
        )
        greeting_items = {
            e["item_id"]
            for e in call.model.received("response.output_audio.delta")
            if e["response_id"] == greeting_id
        }
        await call.advance(3.0)
        later_marks = [c.name for c in call.carrier.commands[clear_at:] if isinstance(c, PlaceMark)]
        assert not any(name.split(":")[1] in greeting_items for name in later_marks)
        assert greeting_id in {
            e["response"]["id"]
            for e in call.model.received("response.done")
            if e["response"]["status"] == "cancelled"
        }


async def test_audio_held_while_the_model_opens_reaches_it_in_order() -> None:
    """Caller frames that arrive before the model is ready are held, then sent in arrival
    order, and frames arriving while the held ones go out queue behind them."""
    config = SessionConfig(audio_mode="passthrough")
    call = WiredCall(Script(), config=config, greeting=None)
    gate = asyncio.Event()
    opened = call.model.open

    async def slow_open(greeting: str | None = None) -> None:
        await gate.wait()
        await opened(greeting)

    call.model.open = slow_open  # type: ignore[method-assign]
    frames = [bytes([i]) * 160 for i in range(1, 31)]
    async with call:
        for frame in frames[:20]:
            await call.worker.on_event(CallerAudio(frame))
        gate.set()
        await asyncio.sleep(0)
        for frame in frames[20:]:  # racing the hand-over of the held frames
            await call.worker.on_event(CallerAudio(frame))
        await call.settle(50)
        appended = [
            base64.b64decode(e["audio"]) for e in call.model.sent("input_audio_buffer.append")
        ]
        assert appended == frames


async def test_each_tool_call_is_answered_once_even_if_requested_twice() -> None:
    script = Script(
        greeting=Turn(
            text="Let me check",
            duration_ms=800,
            function_call=FunctionCall("lookup_order", '{"order_number": "4217"}', "call_1"),
        ),
        replies=(Turn(text="It shipped yesterday.", duration_ms=1200),),
    )
    async with WiredCall(script, tools=tools(lookup_order)) as call:
        await call.until(lambda: bool(call.model.sent("conversation.item.create")))
        # The same call arrives again (a replayed event): it must not run or be answered twice.
        call.model.inject(
            {
                "type": "response.function_call_arguments.done",
                "event_id": "event_replay",
                "response_id": "resp_x",
                "item_id": "item_x",
                "output_index": 0,
                "call_id": "call_1",
                "name": "lookup_order",
                "arguments": '{"order_number": "4217"}',
            }
        )
        await call.advance(3.0)
        outputs = [
            e["item"]
            for e in call.model.sent("conversation.item.create")
            if e["item"]["type"] == "function_call_output"
        ]
        assert [o["call_id"] for o in outputs] == ["call_1"]
        assert orjson.loads(outputs[0]["output"])["status"] == "shipped"
        purposes = [
            e.get("response", {}).get("metadata", {}).get("purpose")
            for e in call.model.sent("response.create")
        ]
        assert purposes == ["greeting", "tool_answer"]


async def test_a_request_that_lost_the_race_is_asked_again() -> None:
    """The model refuses our response.create because another response holds the
    conversation: the worker asks again when the slot is free, and the answer is spoken."""
    script = Script(
        greeting=Turn(
            duration_ms=400,
            function_call=FunctionCall("lookup_order", '{"order_number": "4217"}', "call_1"),
        ),
        replies=(Turn(text="It shipped yesterday.", duration_ms=1200),),
    )
    async with WiredCall(script, tools=tools(lookup_order)) as call:
        refused: list[str] = []

        def lose_the_first_race(event: dict) -> bool:
            purpose = event.get("response", {}).get("metadata", {}).get("purpose")
            if event["type"] == "response.create" and purpose == "tool_answer" and not refused:
                refused.append(event["event_id"])
                return True
            return False

        call.model.drop_client = lose_the_first_race
        await call.until(lambda: bool(refused))
        call.model.inject(
            {
                "type": "error",
                "event_id": "event_err",
                "error": {
                    "type": "invalid_request_error",
                    "code": "conversation_already_has_active_response",
                    "message": "Conversation already has an active response in progress",
                    "event_id": refused[0],
                },
            }
        )
        await call.until(lambda: len(call.model.received("response.done")) == 2, within=10)
        creates = call.model.sent("response.create")
        assert [e["response"]["metadata"]["purpose"] for e in creates] == [
            "greeting",
            "tool_answer",
            "tool_answer",
        ]
        assert isinstance(call.worker.tool_calls.slot.state, Idle)
        assert call.worker.tool_calls.slot.refused_count == 1


async def test_goodbye_is_heard_before_the_line_drops() -> None:
    script = Script(
        greeting=Turn(duration_ms=300, function_call=FunctionCall("end_call", "{}", "call_bye")),
        replies=(Turn(text="Goodbye, have a nice day.", duration_ms=1500),),
    )
    async with WiredCall(script, tools=tools(end_call)) as call:
        await call.until(lambda: call.carrier.hung_up is not None, within=10)
        assert call.carrier.hung_up == HangUp("agent_hangup", failed=False)
        goodbye_ms = sum(
            len(base64.b64decode(e["delta"])) / 48  # PCM16 24 kHz: 48 bytes a ms
            for e in call.model.received("response.output_audio.delta")
        )
        # Everything sent (greeting + goodbye) had been played when the line dropped.
        assert call.carrier.played_at_hang_up >= goodbye_ms - call.step_ms
        assert call.worker.end_reason == "agent_hangup"


async def test_an_unacknowledged_request_does_not_block_later_answers() -> None:
    """The model never answers our response.create (lost, or a stuck server): after the
    acknowledgement timeout the worker asks again, and the tool's answer is spoken."""
    script = Script(
        greeting=Turn(
            duration_ms=300,
            function_call=FunctionCall("lookup_order", '{"order_number": "4217"}', "call_1"),
        ),
        replies=(Turn(text="It shipped yesterday.", duration_ms=1200),),
    )
    async with WiredCall(script, tools=tools(lookup_order), response_ack_timeout=0.3) as call:
        dropped: list[str] = []

        def lose_the_first_request(event: dict) -> bool:
            purpose = event.get("response", {}).get("metadata", {}).get("purpose")
            if event["type"] == "response.create" and purpose == "tool_answer" and not dropped:
                dropped.append(event["event_id"])
                return True
            return False

        call.model.drop_client = lose_the_first_request
        await call.until(lambda: len(call.model.sent("response.create")) == 3, within=20)
        await call.until(lambda: len(call.model.received("response.done")) == 2, within=10)
        assert call.worker.tool_calls.slot.expired == 1
        assert isinstance(call.worker.tool_calls.slot.state, Idle)
        transcripts = [
            e["transcript"] for e in call.model.received("response.output_audio_transcript.done")
        ]
        assert transcripts[-1] == "It shipped yesterday."


async def test_a_refused_request_is_retried_then_given_up() -> None:
    """A server_error refusing our request twice: asked once more, then the slot is free for
    what comes next (no silent dead end)."""
    script = Script(
        greeting=Turn(
            duration_ms=300,
            function_call=FunctionCall("lookup_order", '{"order_number": "4217"}', "call_1"),
        )
    )
    async with WiredCall(script, tools=tools(lookup_order)) as call:
        refusals: list[str] = []

        def refuse(event: dict) -> bool:
            purpose = event.get("response", {}).get("metadata", {}).get("purpose")
            if event["type"] == "response.create" and purpose == "tool_answer":
                refusals.append(event["event_id"])
                call.model.inject(
                    {
                        "type": "error",
                        "event_id": f"event_err_{len(refusals)}",
                        "error": {
                            "type": "server_error",
                            "code": "server_error",
                            "message": "The server had an error",
                            "event_id": event["event_id"],
                        },
                    }
                )
                return True
            return False

        call.model.drop_client = refuse
        await call.until(lambda: len(refusals) == 2, within=10)
        await call.advance(1.0)
        assert len(refusals) == 2  # asked once more, not forever
        assert isinstance(call.worker.tool_calls.slot.state, Idle)
        assert call.worker.end_reason is None  # the call carries on


async def test_two_tools_finishing_together_never_send_two_requests() -> None:
    """Two answers ready in the same instant: one request goes out, the other answer waits for
    the slot — the model never sees a second response.create while one is outstanding."""
    script = Script(
        greeting=Turn(text="Hello", duration_ms=300),
        default_reply=Turn(text="Here is what I found.", duration_ms=600),
    )
    async with WiredCall(script, tools=tools(lookup_order)) as call:
        await call.advance(1.0)  # the greeting is over: the slot is free
        for call_id in ("call_1", "call_2"):
            call.model.inject(
                {
                    "type": "response.function_call_arguments.done",
                    "event_id": f"event_{call_id}",
                    "response_id": "resp_x",
                    "item_id": f"item_{call_id}",
                    "output_index": 0,
                    "call_id": call_id,
                    "name": "lookup_order",
                    "arguments": '{"order_number": "4217"}',
                }
            )
        await call.advance(6.0)
        races = [
            e
            for e in call.model.received("error")
            if e["error"]["code"] == "conversation_already_has_active_response"
        ]
        assert races == []
        outputs = [
            e["item"]["call_id"]
            for e in call.model.sent("conversation.item.create")
            if e["item"]["type"] == "function_call_output"
        ]
        assert sorted(outputs) == ["call_1", "call_2"]
        assert call.worker.tool_calls.slot.refused_count == 0
