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

It calls ``verify_caller`` (order_number, zip_code) then ``lookup_order`` (order_number)
through the protocol's function calls, and speaks ``say``, or the caller-facing sentences of
``message`` (sentences addressed to the model — "Ask the caller …" — are dropped). Greetings,
holding phrases and goodbyes asked for with instructions are honoured as the service words
them. Anything else gets "I can help you check on an order …". It does not understand
corrections ("no, I said …" restarts the question), several orders at once, spelled
letters, or any topic beyond the hotline.

State per session (one object per session): the order number and ZIP heard, what it last
asked for, and the last lookup result. Memory: a few strings and one small dict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from service.modelserver.engine.base import BrainRequest, Decision, item_text
from service.modelserver.engine.numbers import numbers_in, speakable
from service.modelserver.script import FunctionCall

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
    order: str | None = None
    zip: str | None = None
    expect: str | None = None  # "order" | "zip" | "transfer" | "more"
    lookup: dict[str, Any] | None = None


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
        heard = _caller_words(request)
        if not any(item.get("role") == "user" for item in request.items):
            return self._greeted(GREETING)  # the first response, before the caller spoke
        return self._understand(heard, request)

    def _greeted(self, text: str) -> Decision:
        if "order number" in text.lower():
            self.state.expect = "order"
        return Decision(text)

    # -- the caller's turn ----------------------------------------------------------------
    def _understand(self, heard: str, request: BrainRequest) -> Decision:
        state, tools = self.state, request.tool_names()
        text = heard.lower()
        if not text.strip():
            return Decision("Sorry, I didn't catch that. Could you say it again?")
        # "I have one question" is not a number; a short one counts only when one was asked.
        wanted = state.expect in ("order", "zip")
        numbers = [(at, n) for at, n in numbers_in(text) if len(n) >= 3 or wanted]
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
            return self._numbers(text, numbers, tools)
        if state.expect == "more" and _YES.search(text):
            state.expect = None
            return Decision("Sure. What else can I help you with?")
        if _ORDER.search(text) or state.expect == "order":
            state.expect = "order"
            return Decision("I can help with that. What's your order number?")
        if state.expect == "zip":
            return Decision("What's the five-digit ZIP code on the order?")
        return Decision("I can help you check on an order. What's your order number?")

    def _numbers(self, text: str, numbers: list[tuple[int, str]], tools: set[str]) -> Decision:
        state = self.state
        zip_at = m.start() if (m := _ZIP.search(text)) else None
        zip_given = order_changed = False
        for position, digits in numbers:
            # The ZIP is the first number after the word "zip", or the answer to asking for it.
            if zip_at is not None:
                is_zip = position > zip_at and not zip_given
            else:
                is_zip = state.expect == "zip" and len(digits) in (5, 9)
            if is_zip and len(digits) in (5, 9):
                state.zip, zip_given = digits[:5], True
            elif is_zip or (state.expect == "zip" and not 4 <= len(digits) <= 6):
                state.zip, state.expect = None, "zip"
                return Decision("A ZIP code has five digits. Could you say it again?")
            elif 4 <= len(digits) <= 6:
                order_changed = order_changed or digits != state.order
                state.order = digits
            else:
                state.expect = "order"
                return Decision(
                    "Sorry, I didn't get the whole number. Could you say it one digit at a time?"
                )
        if order_changed:
            state.lookup = None
            if not zip_given:  # a ZIP heard for another order does not carry over
                state.zip = None
        if state.order is None:
            state.expect = "order"
            return Decision("Thanks. And what's the order number?")
        if state.zip is None:
            state.expect = "zip"
            return Decision("Thanks. To verify it's you, what's the ZIP code on the order?")
        if not {"verify_caller", "lookup_order"} <= tools:
            return Decision("I'm sorry, I can't look up orders on this line.")
        state.expect = None
        arguments = orjson.dumps({"order_number": state.order, "zip_code": state.zip}).decode()
        return Decision("Thanks, one moment.", (FunctionCall("verify_caller", arguments),))

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
        if output.get("found") is False:
            state.order, state.zip, state.expect = None, None, "order"
            said = message or "I couldn't find an order with that number."
            return Decision(f"{said} Could you say the order number again, one digit at a time?")
        if name == "verify_caller":
            if output.get("verified"):
                number = str(output.get("order_number") or state.order or "")
                return Decision(calls=(FunctionCall("lookup_order", _args(order_number=number)),))
            if "attempts_left" in output or output.get("order_number"):
                state.zip, state.expect = None, "zip"
                return Decision(
                    "That ZIP code doesn't match the order. Could you say the ZIP code again?"
                )
            state.order, state.expect = None, "order"
            return Decision(f"{message} Could you say the order number again?".strip())
        if name == "lookup_order":
            if output.get("verified") is False:
                state.expect = "zip"
                return Decision("To verify it's you, what's the ZIP code on the order?")
            state.lookup, state.expect = output, "more"
            said = str(output.get("say") or message or "I found your order.")
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


def _caller_words(request: BrainRequest) -> str:
    """What the caller said since the agent last produced anything: a turn the VAD split
    in two ("Hi, where is my order …" / "… 4 2 1 7") is understood as one."""
    said: list[str] = []
    for item in reversed(request.items):
        if item.get("role") == "assistant" or item.get("type") == "function_call":
            break
        if item.get("type") == "message" and item.get("role") == "user":
            said.append(item_text(item))
    return " ".join(reversed(said)).strip()
