"""A scripted hotline caller-agent exchange for the local server without a speech engine.

Where no speech recognition runs (the demo without the offline engine, and tests), this
script stands in for the model's judgement: every caller turn is taken as "where is order N,
my ZIP is Z"; the script then calls ``verify_caller`` and ``lookup_order`` through the
protocol's function-calling events, exactly as a real model would, and speaks the ``say``
line of the lookup's result. Responses the service asks for with instructions (greeting,
holding phrase, goodbye) are honoured by reading the quoted words or the instruction's intent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from service.modelserver.script import FunctionCall, ResponseRequest, Script, Turn

__all__ = ["HotlineScript"]

_QUOTED = re.compile(r'"([^"]+)"')


@dataclass
class HotlineScript(Script):
    order_number: str = "4217"
    zip_code: str = "94107"
    end_after_answer: bool = False

    def turn_for(self, request: ResponseRequest) -> Turn:
        item = request.last_user_item or {}
        if request.trigger == "client":
            # Asked for by the service: a tool answer, or a greeting/holding phrase/goodbye
            # whose instructions say what to do (B.3 response.create with instructions).
            if item.get("type") == "function_call_output" and request.index > 0:
                return self._after_tool(orjson.loads(item.get("output") or "{}"))
            instructions = request.instructions
            if "saying exactly" in instructions and (quoted := _QUOTED.search(instructions)):
                return Turn(text=quoted.group(1))
            if "checking that now" in instructions:
                return Turn(text="One moment while I check that for you.", duration_ms=1200)
            if "short, friendly goodbye" in instructions:
                return Turn(text="Thanks for calling. Goodbye!", duration_ms=1500)
            return self.greeting
        return self.caller_turn(request)

    def caller_turn(self, request: ResponseRequest) -> Turn:
        """What the model does when the caller has spoken (server VAD turn)."""
        return Turn(
            function_call=FunctionCall(
                "verify_caller",
                orjson.dumps(
                    {"order_number": self.order_number, "zip_code": self.zip_code}
                ).decode(),
            )
        )

    def _after_tool(self, output: dict) -> Turn:
        if output.get("error"):
            return Turn(text="I'm sorry, I couldn't look that up right now.", duration_ms=2000)
        if output.get("ending"):
            return Turn(text="Thanks for calling. Goodbye!", duration_ms=1500)
        if "found" in output:  # lookup_order's answer
            if self.end_after_answer:
                return Turn(text=output.get("say", ""), function_call=FunctionCall("end_call"))
            return Turn(text=output.get("say") or output.get("message", ""))
        if output.get("verified"):
            return Turn(
                function_call=FunctionCall(
                    "lookup_order", orjson.dumps({"order_number": self.order_number}).decode()
                )
            )
        return Turn(text=output.get("message") or "That doesn't match our records.")
