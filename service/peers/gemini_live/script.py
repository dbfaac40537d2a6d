"""What the local Gemini Live peer says and does, scripted per test (like realtime/local/script.py).

A :class:`GeminiScript` is shared by every connection of a server and holds no per-connection
state. Model turns are numbered per *conversation* (which a resumption handle carries over to
the next connection): turn 0 is ``greeting``, turn ``i`` is ``replies[i-1]``, later ones
``default_reply`` — whether a turn was asked for by ``clientContent``, the caller's speech or a
``toolResponse``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.audio.synthetic import SyntheticVoice, Voice

__all__ = ["GREETING", "REPLY", "GeminiScript", "GeminiTurn", "ToolCall"]

MS_PER_WORD = 330  # ~180 words/min, an ordinary speaking rate


@dataclass(frozen=True)
class ToolCall:
    """A ``toolCall.functionCalls[]`` entry sent after the turn's speech (D.4). The turn then
    waits for the ``toolResponse``; ``cancel_after_ms`` instead withdraws the call that long
    after asking (``toolCallCancellation``) and ends the turn."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    id: str | None = None  # None: a fresh "fc_…" id
    cancel_after_ms: int | None = None


@dataclass(frozen=True)
class GeminiTurn:
    """One model turn: speech (if ``text`` or ``duration_ms``), then ``tool_call`` if given.

    ``drop_after_ms`` aborts the TCP connection (no close frame) once that much of this turn's
    audio was sent — a network drop in the middle of a sentence — on the first
    ``GeminiScript.drop_connections`` connections only (a resumed session replays the turn).
    """

    text: str = ""
    duration_ms: int | None = None
    tool_call: ToolCall | None = None
    drop_after_ms: int | None = None

    @property
    def speaks(self) -> bool:
        return bool(self.text) or bool(self.duration_ms) or self.tool_call is None

    @property
    def audio_ms(self) -> int:
        if self.duration_ms is not None:
            return self.duration_ms
        return max(500, MS_PER_WORD * len(self.text.split()))


GREETING = GeminiTurn(text="Hello! Thanks for calling. How can I help you today?", duration_ms=1500)
REPLY = GeminiTurn(
    text="Sure, I can help with that. Could you tell me a bit more?", duration_ms=3000
)


@dataclass
class GeminiScript:
    """The peer's behaviour.

    * Streaming: audio in ``chunk_ms`` pieces at ``pace`` × real time (None: all at once),
      starting ``response_delay_ms`` after the turn was asked for; binary frames unless
      ``binary`` is false (D.1: binary is what the real server was seen to send).
    * ``setup_delay_ms`` / ``resume_setup_delay_ms``: wait before ``setupComplete`` on a fresh /
      resumed connection; ``answer_setup=False`` never answers (client timeouts).
    * ``go_away_after_s``: the first ``go_away_connections`` connections get a ``goAway``
      (``timeLeft`` = ``go_away_time_left_s``) that long after setup, and are closed when it
      runs out.
    * ``drop_connections``: how many connections a turn's ``drop_after_ms`` applies to.
    * ``reject_resumptions``: refuse that many resumption attempts (close 1008) server-wide.
    * ``resumption_updates``: send ``sessionResumptionUpdate`` when the setup asks for them.
    * ``user_transcripts[i]``: what ``inputTranscription`` "heard" for the i-th caller turn.
    * ``on_client_message(connection_index, message)`` sees every decoded client message
      before it is handled (audio included); exceptions it raises are logged, not sent.
    """

    greeting: GeminiTurn = GREETING
    replies: Sequence[GeminiTurn] = ()
    default_reply: GeminiTurn = REPLY
    voice: Voice = field(default_factory=SyntheticVoice)
    chunk_ms: int = 100
    pace: float | None = 4.0
    response_delay_ms: int = 0
    binary: bool = True
    answer_setup: bool = True
    setup_delay_ms: int = 0
    resume_setup_delay_ms: int = 0
    go_away_after_s: float | None = None
    go_away_time_left_s: float = 1.0
    go_away_connections: int = 1
    drop_connections: int = 1
    reject_resumptions: int = 0
    resumption_updates: bool = True
    user_transcripts: Sequence[str] = ()
    default_user_transcript: str = "Hello, I have a question."
    on_client_message: Callable[[int, dict[str, Any]], None] | None = None

    def turn_for(self, index: int) -> GeminiTurn:
        if index == 0:
            return self.greeting
        if index - 1 < len(self.replies):
            return self.replies[index - 1]
        return self.default_reply

    def user_transcript(self, index: int) -> str:
        if index < len(self.user_transcripts):
            return self.user_transcripts[index]
        return self.default_user_transcript
