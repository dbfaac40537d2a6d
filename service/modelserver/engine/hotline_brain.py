"""The built-in dialogue engine of the order-status hotline (used when no LLM is configured).

It understands, in the transcript of the caller's turn (pattern rules, not a language model):

* an order number and/or a ZIP code, as digits or words ("4217", "four two one seven",
  "forty-two seventeen", Whisper's "for 217" for "four two one seven"); a number after the
  word "zip" is the ZIP, before it the order;
* "where is my order"-style questions without a number (it asks for the number);
* asking for a person/human/agent/representative/operator (``transfer_call`` to "human");
* goodbyes and "that's all"/"no" after "anything else?" (``end_call``);
* yes/no after it offered a transfer; carrier / delivery date / items / tracking questions
  about the order it has just looked up (answered from ``lookup_order``'s output).

Numbers are taken as :mod:`.hotline_numbers` describes: heard digits are read back and
confirmed before ``verify_caller`` is called (a misheard ZIP must not count toward the
lockout), "no" re-asks, a miss offers the keypad, and keypad digits are taken at once.

It calls ``verify_caller`` (order_number, zip_code) then ``lookup_order`` (order_number)
through the protocol's function calls, and speaks ``say``, or the caller-facing sentences of
``message`` (sentences addressed to the model — "Ask the caller …" — are dropped). Greetings,
holding phrases and goodbyes asked for with instructions are honoured as the service words
them. Anything else gets "I can help you check on an order …". It does not understand
several orders at once, spelled letters, or any topic beyond the hotline.

State per session (one object per session): the numbers (:class:`.hotline_numbers.Numbers`),
what it last asked for, and the last lookup result. Memory: a few strings and one small dict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from service.modelserver.engine.base import BrainRequest, Decision, item_text
from service.modelserver.engine.hotline_numbers import (
    LENGTHS,
    Numbers,
    keypad_digits,
    read_out,
)
from service.modelserver.engine.numbers import numbers_in, speakable
from service.modelserver.turns import FunctionCall

__all__ = ["HotlineBrain"]

GREETING = "Thanks for calling Acme order support. What's your order number?"
GOODBYE = "Thanks for calling. Goodbye!"
ANYTHING_ELSE = "Is there anything else I can help with?"
_QUOTED = re.compile(r'"([^"]+)"')
_HUMAN = re.compile(
    r"\b(person|human|agent|representative|operator|somebody|someone|manager|supervisor)\b"
)
_GOODBYE = re.compile(
    r"\b(bye|goodbye|that's all|that is all|that's it|nothing else|hang up|i'm done|all set)\b"
)
_YES = re.compile(r"^\W*(yes|yeah|yep|sure|please|ok|okay|correct|go ahead|do it|alright)\b")
_NO = re.compile(r"^\W*(no|nope|nah|not really)\b")
_ZIP = re.compile(r"\b(zip|postal|post code|postcode)")
_ORDER = re.compile(r"\b(order|package|parcel|shipment|delivery|tracking)")
_CARRIER = re.compile(r"\b(carrier|which company|who is delivering|who's delivering|shipping)\b")
_WHEN = re.compile(r"\b(when|arrive|arriving|get here|delivery date)\b")
_ITEMS = re.compile(r"\b(items?|what's in|what is in|contents?|what did i order)\b")


@dataclass
class _State:
    numbers: Numbers = field(default_factory=Numbers)
    expect: str | None = None  # "order" | "zip" | "confirm" | "transfer" | "more"
    lookup: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Turn:
    """What the caller said since the agent last spoke, and how it arrived."""

    text: str
    spoken: bool = False  # heard from audio (not typed, not keypad)
    unsure: bool = False  # the engine heard its digits with low confidence


class HotlineBrain:
    """:class:`~service.modelserver.engine.base.Brain` for the hotline profile."""

    def __init__(self) -> None:
        self.state = _State()

    # -- entry point ----------------------------------------------------------------------
    def decide(self, request: BrainRequest) -> Decision:
        instructions = request.instructions
        if request.request.trigger == "client":
            if "saying exactly" in instructions and (quoted := _QUOTED.search(instructions)):
                return self._greeted(quoted.group(1))
            if "checking that now" in instructions:
                return Decision("One moment while I check that.")
            if "short, friendly goodbye" in instructions:
                return Decision(GOODBYE)
        last = request.request.last_user_item or {}
        if request.request.trigger == "client" and last.get("type") == "function_call_output":
            name = _call_name(request, str(last.get("call_id")))
            return self._after_tool(name, _json(last.get("output")), request)
        turn = _caller_turn(request)
        if not any(item.get("role") == "user" for item in request.items):
            return self._greeted(GREETING)  # the first response, before the caller spoke
        return self._understand(turn, request)

    def _greeted(self, text: str) -> Decision:
        if "order number" in text.lower():
            self.state.expect = "order"
        return Decision(text)

    # -- the caller's turn ----------------------------------------------------------------
    def _understand(self, turn: _Turn, request: BrainRequest) -> Decision:
        state, tools = self.state, request.tool_names()
        keyed = keypad_digits(turn.text)
        if keyed is not None:
            return self._keyed(keyed, tools)
        text = turn.text.lower()
        if not text.strip():
            return Decision("Sorry, I didn't catch that. Could you say it again?")
        # "I have one question" is not a number; a short one counts only when one was asked.
        wanted = state.expect in ("order", "zip", "confirm")
        numbers = [(at, n) for at, n in numbers_in(text, self._lengths()) if len(n) >= 3 or wanted]
        if state.expect == "confirm" and not numbers:
            if _YES.search(text):
                state.numbers.confirmed()
                return self._next(tools)
            if _NO.search(text):
                said = state.numbers.rejected()
                state.expect = "zip" if state.numbers.order else "order"
                return Decision(said)
        if state.expect == "transfer" and not numbers:
            if _YES.search(text) or _HUMAN.search(text):
                return self._transfer(tools)
            if _NO.search(text):
                state.expect = "more"
                return Decision(f"Okay. {ANYTHING_ELSE}")
        if _HUMAN.search(text):
            return self._transfer(tools)
        done = _GOODBYE.search(text) or (state.expect == "more" and _NO.search(text))
        if done and not numbers:
            state.expect = None
            if "end_call" in tools:
                return Decision(calls=(FunctionCall("end_call", '{"reason": "caller_done"}'),))
            return Decision(GOODBYE)
        if state.lookup is not None and not numbers and (answer := self._follow_up(text)):
            return Decision(f"{answer} {ANYTHING_ELSE}")
        if numbers:
            return self._numbers(text, numbers, tools, turn)
        if state.expect == "confirm":
            return Decision(f"Sorry, I need a yes or a no. {state.numbers.readback()}")
        if state.expect == "more" and _YES.search(text):
            state.expect = None
            return Decision("Sure. What else can I help you with?")
        if state.expect in ("order", "zip") and not (
            _ORDER.search(text) and state.expect == "order"
        ):
            # Asked for a number and heard none: a miss, so the keypad is offered.
            slot = state.expect
            return Decision(state.numbers.missed(slot, "Sorry, I didn't catch the number."))
        if _ORDER.search(text) or state.expect == "order":
            state.expect = "order"
            return Decision("I can help with that. What's your order number?")
        return Decision("I can help you check on an order. What's your order number?")

    def _lengths(self) -> tuple[int, ...] | None:
        expect, pending = self.state.expect, self.state.numbers.pending
        if expect == "confirm" and pending:
            return tuple(n for slot in pending for n in LENGTHS[slot])
        return LENGTHS.get(expect or "")

    def _next(self, tools: set[str]) -> Decision:
        self.state.expect, decision = self.state.numbers.next_step(tools)
        return decision

    def _keyed(self, digits: str, tools: set[str]) -> Decision:
        """Keypad digits: exact, so they fill the slot being asked for at once."""
        state, numbers = self.state, self.state.numbers
        if state.expect == "confirm" and numbers.pending:
            slot = "order" if "order" in numbers.pending else "zip"
            numbers.pending.clear()
        elif state.expect in ("order", "zip"):
            slot = state.expect
        else:
            slot = "order" if numbers.order is None else "zip"
        if len(digits) not in LENGTHS[slot]:
            state.expect = slot
            return Decision(numbers.missed(slot, f"I got {len(digits)} digits on the keypad."))
        numbers.take(slot, digits, exact=True, unsure=False)
        state.lookup = None if slot == "order" else state.lookup
        return self._next(tools)

    def _numbers(
        self, text: str, found: list[tuple[int, str]], tools: set[str], turn: _Turn
    ) -> Decision:
        state, numbers = self.state, self.state.numbers
        zip_at = m.start() if (m := _ZIP.search(text)) else None
        expecting = state.expect
        if expecting == "confirm":  # a correction of what was read back
            expecting = "zip" if "zip" in numbers.pending else "order"
            if len(numbers.pending) == 2 and len(found) == 1:
                expecting = "zip" if len(found[0][1]) == 5 and zip_at is not None else "order"
            numbers.pending.clear()
        zip_given = order_given = False
        for position, digits in found:
            # The ZIP is the first number after the word "zip", or the answer to asking for it,
            # or a 5-digit number after the order number in the same breath ("ZIP" itself is
            # often misheard over the phone: "ZRP code", "M-I-Z.P.").
            fits = len(digits) in LENGTHS["zip"]
            if zip_at is not None:
                is_zip = position > zip_at and not zip_given
            elif order_given and fits and not zip_given:
                is_zip = True
            else:  # asked for the ZIP: a number is a try at it, unless it names the order
                is_zip = expecting == "zip" and (fits or not _ORDER.search(text))
            if is_zip and len(digits) in LENGTHS["zip"]:
                numbers.take("zip", digits, exact=not turn.spoken, unsure=turn.unsure)
                zip_given = True
            elif is_zip or (expecting == "zip" and len(digits) not in LENGTHS["order"]):
                state.expect = "zip"
                return Decision(numbers.missed("zip", "Sorry, I didn't get the whole ZIP code."))
            elif len(digits) in LENGTHS["order"]:
                if digits != numbers.order:
                    state.lookup = None
                numbers.take("order", digits, exact=not turn.spoken, unsure=turn.unsure)
                order_given = True
            else:
                state.expect = "order"
                return Decision(numbers.missed("order", "Sorry, I didn't get the whole number."))
        return self._next(tools)

    def _follow_up(self, text: str) -> str | None:
        lookup = self.state.lookup or {}
        if _CARRIER.search(text) and lookup.get("carrier"):
            return f"It's coming with {lookup['carrier']}."
        if _WHEN.search(text) and lookup.get("eta_spoken"):
            return f"The date we have is {lookup['eta_spoken']}."
        if _ITEMS.search(text) and lookup.get("items_summary"):
            return f"The order has {lookup['items_summary']}."
        if "tracking" in text and lookup.get("tracking_last4"):
            digits = " ".join(str(lookup["tracking_last4"]))
            return f"The tracking number ends in {digits}; the full number is in your email."
        return None

    def _transfer(self, tools: set[str]) -> Decision:
        self.state.expect = None
        if "transfer_call" not in tools:
            return Decision("I'm sorry, I can't transfer calls on this line.")
        call = FunctionCall("transfer_call", '{"target": "human"}')
        return Decision("Sure, I'll connect you with a person now.", (call,))

    # -- tool results ---------------------------------------------------------------------
    def _after_tool(self, name: str, output: dict[str, Any], request: BrainRequest) -> Decision:
        state = self.state
        message = speakable(str(output.get("message") or ""))
        if name == "end_call":
            return Decision(GOODBYE)
        if name == "transfer_call":
            if output.get("error") or not output.get("transferred", True):
                state.expect = "more"
                return Decision(message or "I'm sorry, I couldn't transfer you right now.")
            return Decision()  # the transfer's own announcement plays; nothing left to say
        if output.get("error"):
            state.expect = "transfer"
            said = message or "I'm sorry, I couldn't look that up right now."
            return Decision(f"{said} Would you like me to transfer you to a person?")
        if output.get("locked"):
            state.expect = "transfer"
            return Decision(
                "I'm sorry, I can't verify that order right now. "
                "Would you like me to transfer you to a person?"
            )
        numbers = state.numbers
        if output.get("found") is False:
            numbers.order, numbers.zip, numbers.order_confirmed = None, None, False
            said = message or "I couldn't find an order with that number."
            state.expect = "order"
            return Decision(numbers.missed("order", said))
        if name == "verify_caller":
            if output.get("verified"):
                number = str(output.get("order_number") or numbers.order or "")
                return Decision(calls=(FunctionCall("lookup_order", _args(order_number=number)),))
            if "attempts_left" in output or output.get("order_number"):
                numbers.zip, state.expect = None, "zip"
                return Decision(numbers.missed("zip", "That ZIP code doesn't match the order."))
            numbers.order, state.expect = None, "order"
            return Decision(numbers.missed("order", message or "That order number isn't valid."))
        if name == "lookup_order":
            if output.get("verified") is False:
                state.expect = "zip"
                return Decision("To verify it's you, what's the ZIP code on the order?")
            state.lookup, state.expect = output, "more"
            said = str(output.get("say") or message or "I found your order.")
            # Naming the order lets a caller catch a number that was misheard.
            if number := str(output.get("order_number") or ""):
                said = f"About order {read_out(number)}: {said}"
            return Decision(f"{said} {ANYTHING_ELSE}")
        return Decision(message or "Done.")


def _json(raw: Any) -> dict[str, Any]:
    try:
        value = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        return {"message": str(raw)}
    return value if isinstance(value, dict) else {"result": value}


def _args(**values: str) -> str:
    return orjson.dumps(values).decode()


def _call_name(request: BrainRequest, call_id: str) -> str:
    for item in reversed(request.items):
        if item.get("type") == "function_call" and item.get("call_id") == call_id:
            return str(item.get("name"))
    return ""


def _caller_turn(request: BrainRequest) -> _Turn:
    """What the caller said since the agent last produced anything: a turn the VAD split
    in two ("Hi, where is my order …" / "… 4 2 1 7") is understood as one."""
    said: list[str] = []
    spoken = unsure = False
    for item in reversed(request.items):
        if item.get("role") == "assistant" or item.get("type") == "function_call":
            break
        if item.get("type") == "message" and item.get("role") == "user":
            said.append(item_text(item))
            parts = item.get("content") or []
            spoken = spoken or any(p.get("type") == "input_audio" for p in parts)
            unsure = unsure or item.get("id") in request.unsure
    return _Turn(" ".join(reversed(said)).strip(), spoken, unsure)
