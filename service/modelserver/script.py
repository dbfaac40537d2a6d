"""What the local server does, scripted per test: replies, function calls, faults, pacing.

A :class:`Script` is shared by every connection of a server and must not keep per-connection
state; :meth:`Script.turn_for` gets everything it needs in a :class:`ResponseRequest`.
Subclass it (or pass ``replies``) to script a conversation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from service.audio.synthetic import SyntheticVoice, Voice

__all__ = ["ErrorSpec", "FunctionCall", "ResponseRequest", "Script", "Trigger", "Turn"]

MS_PER_WORD = 330  # ~180 words/min, an ordinary speaking rate

Trigger = Literal["client", "turn_detection", "idle_timeout"]  # what started a response


@dataclass(frozen=True)
class FunctionCall:
    """A ``function_call`` output item (B.5); arguments are streamed in a few deltas."""

    name: str
    arguments: str = "{}"
    call_id: str | None = None  # None: a fresh "call_…" id


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
    """

    text: str = ""
    duration_ms: int | None = None
    function_call: FunctionCall | None = None
    fail: ErrorSpec | None = None
    error_event: ErrorSpec | None = None
    drop_after_ms: int | None = None
    drop_close_code: int | None = None

    @property
    def speaks(self) -> bool:
        return bool(self.text) or bool(self.duration_ms) or self.function_call is None

    @property
    def audio_ms(self) -> int:
        """Scripted length, or estimated from the word count at a normal speaking rate."""
        if self.duration_ms is not None:
            return self.duration_ms
        return max(500, MS_PER_WORD * len(self.text.split()))


@dataclass(frozen=True)
class ResponseRequest:
    """Why a response is being made; input to :meth:`Script.turn_for`."""

    index: int  # 0 for the session's first response
    trigger: Trigger
    instructions: str  # response.instructions if given, else the session's
    last_user_item: dict[str, Any] | None  # the newest user/function_call_output item, if any


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

    def session_engine(self) -> Any:
        """A new session's share of a speech engine (VAD, STT, brain, TTS), or None for a
        scripted session (the default: :meth:`turn_for` and :attr:`voice` decide). The
        engine's per-session part holds that call's state; the script itself stays shared
        and stateless. See :class:`~service.modelserver.engine.SpeechScript`.

        Typed ``Any``, not ``EngineSession | None``: the engine imports this module (its
        ``FunctionCall``/``ResponseRequest``), and naming the engine here closed a circle."""
        return None

    def turn_for(self, request: ResponseRequest) -> Turn:
        if request.index == 0:
            return self.greeting
        if request.index - 1 < len(self.replies):
            return self.replies[request.index - 1]
        return self.default_reply
