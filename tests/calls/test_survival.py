"""Model session drops and roll-overs, socket-free: the worker replaces the session, tells the
new one the conversation so far, and the call carries on (issue 17, "Model session drops").

The wired model checks every replayed item against the openai SDK's client-event types, and
the fresh server session really holds the replayed conversation: what is asserted is what
the new session knows and what the caller hears.
"""

from __future__ import annotations

import asyncio

from service.calls.survival import RESUME_INSTRUCTIONS, SurvivalPolicy
from service.modelserver.script import FunctionCall, Script, Turn
from service.realtime.config import SessionConfig
from service.telephony.events import CallerAudio, HangUp
from tests.calls.test_worker import lookup_order, speak, tools
from tests.support.remembering import QUESTION, Remembering
from tests.support.wired_call import WiredCall

FAST = SurvivalPolicy(attempts=3, backoff_s=0.0, attempt_timeout_s=1.0)


async def quiet(call: WiredCall, ms: int) -> None:
    """The caller is silent (μ-law silence frames keep the server's VAD clock running)."""
    for _ in range(ms // 20):
        await call.worker.on_event(CallerAudio(b"\xff" * 160))
        await call.advance(0.02)


def transcription() -> SessionConfig:
    return SessionConfig(transcription_model="whisper-1")


async def test_a_drop_mid_answer_is_replaced_and_the_answer_finished() -> None:
    script = Remembering(
        greeting=Turn(text="Hello this is the order line how can I help", duration_ms=3000),
        pace=1.0,
    )
    async with WiredCall(script, survival=FAST) as call:
        await call.advance(1.0)  # about three words of the greeting sent
        call.model.drop()
        await call.until(lambda: call.model.sessions == 2)
        await call.settle()
        assert call.carrier.hung_up is None
        replayed = [e["item"] for e in call.model.sent("conversation.item.create")]
        [agent] = [i for i in replayed if i.get("role") == "assistant"]
        words = agent["content"][0]["text"].split()
        # Only what the carrier was sent (≈1 s of audio ≈ 3-4 words), not the whole line.
        assert 1 <= len(words) <= 4 and words[0] == "Hello"
        [resume] = [
            e
            for e in call.model.sent("response.create")
            if e.get("response", {}).get("instructions") == RESUME_INSTRUCTIONS
        ]
        assert resume["response"]["metadata"]["purpose"] == "reply"
        await call.until(lambda: bool(call.model.received("response.done")), within=5)
        events = await call.events()
        [reconnected] = [e for e in events if e["type"] == "model_reconnected"]
        assert reconnected["attempts"] == "1" or reconnected["attempts"] == 1
        assert int(reconnected["gap_ms"]) < 2000
        assert call.worker.model_reconnects == 1


async def test_the_next_question_is_answered_with_context_from_before_the_drop() -> None:
    script = Remembering(
        greeting=Turn(text="Hello", duration_ms=500),
        replies=[Turn(text="Thanks, one moment", duration_ms=800)],
        user_transcripts=[QUESTION, "Did it ship?"],
        pace=4.0,
    )
    async with WiredCall(script, config=transcription(), survival=FAST) as call:
        await call.advance(1.0)
        await speak(call, 800)
        await quiet(call, 2500)  # the turn ends; the reply is said and played
        call.model.drop()
        await call.until(lambda: call.model.sessions == 2)
        await call.settle()
        server_items = [i.public() for i in call.model.server.conversation.items()]
        said = [p.get("text", "") for i in server_items for p in i.get("content") or []]
        assert QUESTION in said
        assert any(i.get("role") == "assistant" for i in server_items)
        await speak(call, 800)  # "Did it ship?" to the fresh session
        await quiet(call, 800)
        await call.until(
            lambda: any(
                "Ada" in (e.get("transcript") or "")
                for e in call.model.received("response.output_audio_transcript.done")
            ),
            within=5,
        )
        assert call.carrier.hung_up is None


async def test_tool_calls_and_their_outputs_are_replayed() -> None:
    script = Script(
        greeting=Turn(text="Hi", duration_ms=300),
        replies=[
            Turn(function_call=FunctionCall("lookup_order", '{"order_number": "42"}', "call_1")),
            Turn(text="It shipped", duration_ms=600),
        ],
        pace=4.0,
    )
    async with WiredCall(script, tools=tools(lookup_order), survival=FAST) as call:
        await call.advance(0.5)
        await speak(call, 800)
        await quiet(call, 800)
        await call.until(lambda: len(call.model.received("response.done")) >= 3, within=10)
        await call.advance(1.0)
        sent_before = len(call.model.client_events)
        call.model.drop()
        await call.until(lambda: call.model.sessions == 2)
        await call.settle()
        replayed = [
            e["item"]
            for e in call.model.client_events[sent_before:]
            if e["type"] == "conversation.item.create"
        ]
        kinds = [i["type"] for i in replayed]
        assert kinds.index("function_call") < kinds.index("function_call_output")
        [output] = [i for i in replayed if i["type"] == "function_call_output"]
        assert output["call_id"] == "call_1" and "shipped" in output["output"]


async def test_gives_up_after_the_attempts_with_the_carriers_apology() -> None:
    script = Script(greeting=Turn(text="Hello", duration_ms=400))
    async with WiredCall(script, survival=FAST) as call:
        await call.advance(1.0)
        call.model.refuse_reopens = 3
        call.model.drop()
        await call.until(lambda: call.carrier.hung_up is not None)
        assert call.carrier.hung_up == HangUp("model_reconnect_failed", failed=True)
        assert call.worker.end_reason == "model_reconnect_failed"
        events = await call.events()
        [error] = [e for e in events if e.get("reason") == "model_reconnect_failed"]
        assert "3 attempts" in error["detail"]


async def test_a_second_attempt_succeeds_and_caller_audio_in_the_gap_is_held_bounded() -> None:
    policy = SurvivalPolicy(attempts=3, backoff_s=0.05, attempt_timeout_s=1.0, held_audio_ms=100)
    script = Script(greeting=Turn(text="Hello", duration_ms=400))
    async with WiredCall(script, survival=policy) as call:
        await call.advance(1.0)
        appended = len(call.model.sent("input_audio_buffer.append"))
        call.model.refuse_reopens = 1
        call.model.drop()
        await call.settle()
        for _ in range(20):  # 400 ms of caller audio while there is no session
            await call.worker.on_event(CallerAudio(b"\xff" * 160))
        await call.until(lambda: call.model.sessions == 2)
        await asyncio.sleep(0.1)  # the real backoff before the second attempt
        await call.until(lambda: call.worker.model_ready)
        events = await call.events()
        [reconnected] = [e for e in events if e["type"] == "model_reconnected"]
        assert int(reconnected["attempts"]) == 2
        assert int(reconnected["held_frames"]) == 5 and int(reconnected["dropped_frames"]) == 15
        assert len(call.model.sent("input_audio_buffer.append")) - appended >= 5


async def test_an_aged_session_is_rolled_over_between_turns() -> None:
    policy = SurvivalPolicy(attempts=3, backoff_s=0.0, session_max_s=2.0)
    script = Remembering(
        greeting=Turn(text="Hello", duration_ms=3000),
        user_transcripts=[QUESTION, "Did it ship?"],
        pace=4.0,
    )
    async with WiredCall(script, config=transcription(), survival=policy) as call:
        await call.advance(2.5)  # the greeting is still playing at 2 s: no roll yet
        assert call.model.sessions == 1
        await call.advance(1.0)  # played out at 3 s: the idle moment to roll
        await call.until(lambda: call.model.sessions == 2)
        await call.until(lambda: call.worker.model_ready)
        events = await call.events()
        [rolled] = [e for e in events if e["type"] == "model_reconnected"]
        assert rolled["reason"] == "session_max_age"
        # No resume request: nothing was cut.
        assert not any(
            e.get("response", {}).get("instructions") == RESUME_INSTRUCTIONS
            for e in call.model.sent("response.create")
        )
        assert call.carrier.hung_up is None


async def test_reconnecting_off_ends_the_call_as_before() -> None:
    script = Script(greeting=Turn(text="Hello", duration_ms=400))
    async with WiredCall(script, survival=SurvivalPolicy(attempts=0)) as call:
        await call.advance(1.0)
        call.model.drop()
        await call.until(lambda: call.carrier.hung_up is not None)
        assert call.worker.end_reason == "model_disconnected"
        assert call.model.sessions == 1


async def test_a_session_that_keeps_dropping_ends_the_call_instead_of_a_storm() -> None:
    script = Script(greeting=Turn(text="Hello", duration_ms=400))
    async with WiredCall(script, survival=FAST) as call:
        await call.advance(20.0)  # the first session was stable: its drop is an ordinary one
        for sessions in (2, 3, 4):
            call.model.drop()
            await call.until(lambda n=sessions: call.model.sessions == n)
            await call.advance(1.0)
        call.model.drop()  # the third quick drop in a row (attempts=3)
        await call.until(lambda: call.carrier.hung_up is not None)
        assert call.worker.end_reason == "model_keeps_dropping"
        assert call.carrier.hung_up == HangUp("model_keeps_dropping", failed=True)
        assert call.model.sessions == 4
