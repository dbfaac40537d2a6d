"""A model-server script that answers from what a replayed conversation told it.

After a drop the worker opens a fresh session and replays the conversation as items; the
caller's earlier words arrive as ``input_text`` (the session's own audio turns carry
``input_audio``). ``Remembering`` answers "Yes Ada…" only when such a replayed line names
Ada, so an answer with that name proves the fresh session got the context. A response asked
for with the worker's resume instructions finishes the cut answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.calls.survival import RESUME_INSTRUCTIONS
from service.modelserver.script import ResponseRequest, Script, Turn

__all__ = ["QUESTION", "REMEMBERED", "RESUMED", "Remembering"]

QUESTION = "My name is Ada and my order is 42."
REMEMBERED = Turn(text="Yes Ada, order 42 shipped yesterday", duration_ms=1500)
RESUMED = Turn(text="as I was saying, it shipped", duration_ms=1200)


@dataclass
class Remembering(Script):
    def turn_for(self, request: ResponseRequest) -> Turn:
        if request.instructions == RESUME_INSTRUCTIONS:
            return RESUMED
        if request.index == 0 and not request.history:
            return self.greeting
        remembered = [
            part.get("text", "")
            for item in request.history
            for part in item.get("content") or []
            if part.get("type") == "input_text"
        ]
        if any("Ada" in text for text in remembered):
            return REMEMBERED
        return super().turn_for(request)
