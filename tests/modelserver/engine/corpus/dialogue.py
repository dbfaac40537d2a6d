"""A corpus caller through the whole spoken hotline dialogue, without sockets: the engine's
brain decides, Whisper hears the caller's recorded clips (slot-aware, as the engine does),
and the product's real ``verify_caller``/``lookup_order`` run against Redis.

The simulated caller answers what the agent says:

* asked for the order number or ZIP: the first time, the clip in the caller's own style;
  the second time the retry clip (digit by digit, with commas) — or, for a ``keypad``
  caller offered the keypad, the digits as the service relays them ("The caller pressed …");
  a third request means the lookup did not succeed within two tries;
* asked "I heard … — is that right?": the "yes" clip if every number read back is the
  caller's, else the "no" clip (both heard by Whisper too);
* the lookup's answer ends the call: it succeeded if ``lookup_order`` gave the details of
  the caller's own order, and a *wrong order read out* is details of any other order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from service.agent.hotline import hotline_registry
from service.agent.tools import ToolContext, run_tool
from service.modelserver.engine.base import BrainRequest, Decision
from service.modelserver.engine.hotline_brain import HotlineBrain
from service.modelserver.engine.numbers import numbers_in
from service.modelserver.engine.slots import ORDER, ZIP, slot_asked
from service.modelserver.engine.stt import WhisperTranscriber
from service.modelserver.script import ResponseRequest
from tests.modelserver.engine.corpus import Caller, Clip, pcm

GREETING = "Thanks for calling Acme order support. What's your order number?"
TOOLS = tuple(
    {"type": "function", "name": n, "description": n, "parameters": {"type": "object"}}
    for n in ("verify_caller", "lookup_order", "transfer_call", "end_call")
)
MAX_TURNS = 14


@dataclass
class Outcome:
    caller: Caller
    noisy: bool
    success: bool = False
    wrong_order_read: bool = False
    tries: dict[str, int] = field(default_factory=lambda: {"order": 0, "zip": 0})
    turns: int = 0
    heard: list[str] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    end: str = ""


class Conversation:
    """The conversation as the session would keep it, decided turn by turn by the brain."""

    def __init__(self) -> None:
        self.brain = HotlineBrain()
        self.items: list[dict[str, Any]] = []
        self.unsure: set[str] = set()
        self.index = 0

    def decide(self, trigger: Any, instructions: str = "") -> Decision:
        last = next(
            (
                i
                for i in reversed(self.items)
                if i.get("role") == "user" or i["type"] == "function_call_output"
            ),
            None,
        )
        request = ResponseRequest(self.index, trigger, instructions, last)
        self.index += 1
        decision = self.brain.decide(
            BrainRequest(request, tuple(self.items), tools=TOOLS, unsure=frozenset(self.unsure))
        )
        if decision.text:
            content = [{"type": "output_audio", "transcript": decision.text}]
            self.items.append({"type": "message", "role": "assistant", "content": content})
        for n, call in enumerate(decision.calls):
            self.items.append(
                {
                    "type": "function_call",
                    "name": call.name,
                    "call_id": f"call{self.index}_{n}",
                    "arguments": call.arguments,
                }
            )
        return decision

    def user(self, content: dict[str, Any], unsure: bool) -> None:
        item_id = f"item{len(self.items)}"
        self.items.append({"id": item_id, "type": "message", "role": "user", "content": [content]})
        if unsure:
            self.unsure.add(item_id)


def _answer_to_readback(text: str, caller: Caller) -> bool:
    """True if every number the agent read back is one of the caller's."""
    said = [digits for _, digits in numbers_in(text)]
    return bool(said) and all(d in (caller.order, caller.zip) for d in said)


async def run_call(
    caller: Caller,
    *,
    noisy: bool,
    stt: WhisperTranscriber,
    ctx: ToolContext,
    keypad: bool = False,
) -> Outcome:
    """One call; ``ctx.redis`` must hold the seeded fixture orders."""
    outcome = Outcome(caller, noisy)
    talk = Conversation()
    registry = hotline_registry()
    decision = talk.decide("client", f'Greet the caller by saying exactly: "{GREETING}"')
    while outcome.turns < MAX_TURNS:
        outcome.turns += 1
        if decision.text:
            outcome.said.append(decision.text)
        if decision.calls:
            for call in decision.calls:
                result = await run_tool(registry.get(call.name), call.arguments, ctx)
                data = orjson.loads(result.output)
                if call.name == "lookup_order" and data.get("verified"):
                    outcome.success = data.get("order_number") == caller.order
                    outcome.wrong_order_read = not outcome.success
                    outcome.end = "looked up"
                    return outcome
                call_id = next(
                    i["call_id"] for i in reversed(talk.items) if i.get("name") == call.name
                )
                talk.items.append(
                    {"type": "function_call_output", "call_id": call_id, "output": result.output}
                )
            decision = talk.decide("client")
            continue
        text = decision.text
        slot = slot_asked(text)
        clip: Clip | None = None
        if "is that right" in text:
            clip = caller.clips["yes" if _answer_to_readback(text, caller) else "no"]
        elif slot in (ORDER, ZIP):
            name = slot.name
            outcome.tries[name] += 1
            if outcome.tries[name] > 2:
                outcome.end = f"{name}: not heard within two tries"
                return outcome
            if outcome.tries[name] == 2 and keypad and "keypad" in text:
                digits = caller.order if name == "order" else caller.zip
                keyed = f"The caller pressed {' '.join(digits)} on the keypad."
                talk.user({"type": "input_text", "text": keyed}, unsure=False)
                decision = talk.decide("turn_detection")
                continue
            clip = caller.clips[f"{name}{outcome.tries[name]}"]
        else:
            outcome.end = f"unexpected: {text!r}"
            return outcome
        heard = stt.hear(pcm(clip, noisy), 8000, slot)  # as the engine would: by its words
        outcome.heard.append(heard.text)
        content = {"type": "input_audio", "transcript": heard.text}
        talk.user(content, unsure=not heard.confident)
        decision = talk.decide("turn_detection")
    outcome.end = "too many turns"
    return outcome
