"""Taking numbers on a noisy line: read-back, "no" and corrections, the keypad, and the
lockout counting only ZIPs the caller confirmed (the product's real tools, real Redis)."""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from service.agent.hotline import hotline_registry, seed_orders
from service.agent.hotline.orders import failures_key
from service.agent.tools import ToolContext, run_tool
from service.modelserver.engine.base import Decision
from service.modelserver.engine.slots import ZIP, slot_asked
from tests.modelserver.engine.corpus.dialogue import GREETING, Conversation

PREFIX = "numbers:"
KEYPAD = "type it on your phone's keypad"


class Call(Conversation):
    def __init__(self) -> None:
        super().__init__()
        self.decide("client", f'Greet the caller by saying exactly: "{GREETING}"')

    def hears(self, text: str, *, unsure: bool = False) -> Decision:
        self.user({"type": "input_audio", "transcript": text}, unsure)
        return self.decide("turn_detection")

    def keys(self, digits: str) -> Decision:
        text = f"The caller pressed {' '.join(digits)} on the keypad."
        self.user({"type": "input_text", "text": text}, unsure=False)
        return self.decide("turn_detection")

    async def runs(self, decision: Decision, ctx: ToolContext) -> tuple[Decision, dict[str, Any]]:
        (call,) = decision.calls
        outcome = await run_tool(hotline_registry().get(call.name), call.arguments, ctx)
        call_id = self.items[-1]["call_id"]
        output = {"type": "function_call_output", "call_id": call_id, "output": outcome.output}
        self.items.append(output)
        return self.decide("client"), orjson.loads(outcome.output)


def test_heard_digits_are_read_back_and_no_re_asks_with_the_keypad() -> None:
    call = Call()
    assert "ZIP code" in call.hears("It's four two one seven.").text
    read_back = call.hears("Nine, four, one, oh, eight.")
    assert read_back.text == "I heard order 4 2 1 7, ZIP code 9 4 1 0 8 — is that right?"
    assert not read_back.calls and slot_asked(read_back.text) is None
    again = call.hears("No, that's wrong.")
    assert KEYPAD in again.text and not again.calls  # nothing was checked, nothing counted
    keyed = call.keys("4217")  # keypad digits fill the slot at once: no read-back
    assert "ZIP code" in keyed.text and slot_asked(keyed.text) == ZIP
    done = call.keys("94107")
    assert orjson.loads(done.calls[0].arguments) == {"order_number": "4217", "zip_code": "94107"}


def test_an_unsure_order_is_read_back_at_once_and_a_correction_replaces_it() -> None:
    call = Call()
    assert (
        call.hears("Four, two, one, eight.", unsure=True).text == "I heard 4 2 1 8 — is that right?"
    )
    corrected = call.hears("No, it's four two one seven.", unsure=False)
    assert "ZIP code" in corrected.text  # the correction, heard with confidence, is taken
    assert (
        call.hears("9 4 1 0 7").text == "I heard order 4 2 1 7, ZIP code 9 4 1 0 7 — is that right?"
    )
    assert call.hears("Yes.").calls[0].name == "verify_caller"


def test_order_and_zip_in_one_breath_even_when_zip_is_misheard() -> None:
    call = Call()
    said = "Hi, where's my order four, two, one, seven. My ZRP code is nine, four, one, oh, seven."
    assert call.hears(said).text == "I heard order 4 2 1 7, ZIP code 9 4 1 0 7 — is that right?"


def test_a_miss_offers_the_keypad_and_unclear_answers_ask_again() -> None:
    call = Call()
    call.hears("4217")
    missed = call.hears("nine four one")
    assert "whole ZIP code" in missed.text and KEYPAD in missed.text
    assert slot_asked(missed.text) == ZIP
    call.hears("nine four one oh seven")
    assert "yes or a no" in call.hears("Hmm, what?").text
    wrong_length = call.keys("941")
    assert "3 digits" in wrong_length.text and KEYPAD in wrong_length.text


async def test_only_a_confirmed_wrong_zip_counts_toward_the_lockout(
    redis_client: aioredis.Redis,
) -> None:
    await seed_orders(redis_client, PREFIX)
    ctx = ToolContext(call_sid="CAnumbers", redis=redis_client, key_prefix=PREFIX)
    key = failures_key(PREFIX, "4217")
    call = Call()
    call.hears("4217")
    call.hears("9 4 1 0 8")  # misheard
    call.hears("No.")  # the caller hears the mistake: nothing is checked
    call.keys("4217")
    assert await redis_client.get(key) is None
    call.hears("9 4 1 0 8")  # the caller really says a wrong ZIP...
    confirmed = call.hears("Yes, that's right.")  # ...and confirms it: that one counts
    answer, result = await call.runs(confirmed, ctx)
    assert result["attempts_left"] == 2 and await redis_client.get(key) == "1"
    assert "doesn't match" in answer.text and KEYPAD in answer.text
    verified = call.keys("94107")
    lookup, result = await call.runs(verified, ctx)
    assert result["verified"] is True
    spoken, result = await call.runs(lookup, ctx)
    assert result["order_number"] == "4217"
    assert spoken.text.startswith("About order 4 2 1 7:")  # a misheard order would be noticed
