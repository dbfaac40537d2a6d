"""What the local server does, scripted per test: replies, function calls, faults, pacing.

A :class:`Script` is shared by every connection of a server and must not keep per-connection
state; :meth:`Script.turn_for` gets everything it needs in a :class:`ResponseRequest`.
Subclass it (or pass ``replies``) to script a conversation. A script never carries a speech
engine: a server or session is given one (``engine=``), and then the engine's brain decides
instead of :meth:`Script.turn_for`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.audio.synthetic import SyntheticVoice, Voice
from service.modelserver.turns import FunctionCall, ResponseRequest, Trigger

# FunctionCall, ResponseRequest and Trigger live in .turns (shared with the engine) and are
# re-exported here: scripts and their tests name them together with Turn.
__all__ = ["ErrorSpec", "FunctionCall", "ResponseRequest", "Script", "Trigger", "Turn"]

MS_PER_WORD = 330  # ~180 words/min, an ordinary speaking rate


@dataclass(frozen=True)
class ErrorSpec:
    """An error the script injects (B.4 error shape)."""

    message: str
    code: str | None = None
    type: str = "server_error"
    param: str | None = None


@dataclass(frozen=True)
class Turn:
    """One response. Output items, in order: a spoken message if ``text`` (or ``duration_ms``)
    is given, then a function call if ``function_call`` is.

    Faults: ``fail`` ends the response at once with ``status: "failed"``; ``error_event`` sends
    a standalone ``error`` right after ``response.created`` (the response carries on);
    ``drop_after_ms`` ends the connection once that much of this turn's audio was sent —
    ``drop_close_code`` None aborts the TCP connection (a network drop), an int sends a close
    frame with that code (e.g. 1011, or 4000 as for beta_api_shape_disabled, B.0).
    For a turn asked for by ``response.create``: ``refuse`` answers that request with this
    ``error`` (its ``event_id`` echoed, B.4) and makes no response.
    """

    text: str = ""
    duration_ms: int | None = None
    function_call: FunctionCall | None = None
    fail: ErrorSpec | None = None
    error_event: ErrorSpec | None = None
    drop_after_ms: int | None = None
    drop_close_code: int | None = None
    refuse: ErrorSpec | None = None

    @property
    def speaks(self) -> bool:
        return bool(self.text) or bool(self.duration_ms) or self.function_call is None

    @property
    def audio_ms(self) -> int:
        """Scripted length, or estimated from the word count at a normal speaking rate."""
        if self.duration_ms is not None:
            return self.duration_ms
        return max(500, MS_PER_WORD * len(self.text.split()))


GREETING = Turn(text="Hello! Thanks for calling. How can I help you today?", duration_ms=1500)
REPLY = Turn(text="Sure, I can help with that. Could you tell me a bit more?", duration_ms=3000)


@dataclass
class Script:
    """The server's behaviour.

    * ``greeting`` is the first response of a session, ``replies[i]`` the (i+1)-th, and
      ``default_reply`` every later one.
    * Streaming: audio in ``chunk_ms`` deltas, paced at ``pace`` × real time (None: as fast as
      possible), the first delta ``first_audio_delay_ms`` after ``response.created``.
    * ``answer_session_update=False`` makes the server ignore ``session.update`` entirely
      (no ``session.updated``, no error) to exercise client timeouts.
    * ``on_client_event(session_id, event)`` observes every decoded client event before it is
      handled (audio payloads included); exceptions it raises are logged, not sent.
    * ``user_transcripts``: what input transcription (if the session turned it on) "heard".
    """

    greeting: Turn = GREETING
    replies: Sequence[Turn] = ()
    default_reply: Turn = REPLY
    voice: Voice = field(default_factory=SyntheticVoice)
    chunk_ms: int = 100
    pace: float | None = 4.0
    first_audio_delay_ms: int = 0
    answer_session_update: bool = True
    # LocalAI's OpenAI-compat fix (mudler/LocalAI#6445) reports the GA server no longer sends
    # conversation.created; it is in the SDK union, so it can be switched on.
    send_conversation_created: bool = False
    on_client_event: Callable[[str, dict[str, Any]], None] | None = None
    # When the session enables audio.input.transcription, committed user audio item i gets
    # ``user_transcripts[i]`` (or ``default_user_transcript``) as its transcription.
    user_transcripts: Sequence[str] = ()
    default_user_transcript: str = "Hello, I have a question."

    def user_transcript(self, index: int) -> str:
        if index < len(self.user_transcripts):
            return self.user_transcripts[index]
        return self.default_user_transcript

    def turn_for(self, request: ResponseRequest) -> Turn:
        if request.index == 0:
            return self.greeting
        if request.index - 1 < len(self.replies):
            return self.replies[request.index - 1]
        return self.default_reply
