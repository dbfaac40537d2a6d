"""The contract between the call worker and any realtime model edge.

Rules for this package (``service/realtime/``): model edges only. A vendor gets a folder with
the same file names as the others (``protocol.py`` sans-I/O, ``connection.py`` asyncio, and
``setup.py`` where the session set-up is its own concern). Edges translate wire ↔ the neutral
``events``; they may import ``service.audio``, ``service.settings`` and each other's shared
modules here, never ``service.telephony``, ``service.calls`` or ``service.agent``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from service.realtime.events import ModelAudioFormat, ModelEvent, Purpose, ReplayItem

__all__ = ["ModelSession", "ModelUnavailable"]


class ModelUnavailable(Exception):
    """The session could not be opened (refused, unreachable, or never became ready)."""


class ModelSession(Protocol):
    """What the worker needs from a model edge (OpenAI, Azure, Gemini, the local engine).

    The contract, which every edge keeps and the worker relies on:

    * ``open(greeting)`` is idempotent: pre-warm calls it at the voice webhook and the worker
      again when the stream starts; the second call waits for the first attempt and asks for
      no second greeting. It raises :class:`ModelUnavailable` when the session cannot be had.
    * ``events()`` yields every event once, in order, and its last event is always
      ``ModelClosed`` (however the session ends), after which it stops.
    * ``create_response(purpose=p)`` is echoed: the ``ResponseStarted`` of that response
      carries ``purpose == p``; responses the model starts by itself carry ``""``. An
      out-of-band response (``out_of_band=True``) never becomes ``active_response_id``.
    * ``active_response_id`` is the response holding the conversation now (ours or the
      server's), ``None`` between responses.
    * ``detects_speech_during_playback``: True when the model reports the caller's speech
      while earlier audio still plays at the carrier (OpenAI's server VAD). False (Gemini,
      which only reports ``interrupted`` while it generates): the worker then runs its own
      VAD on caller audio while a fully sent reply is still playing.
    * ``can_reopen``: True when the worker may replace a dropped (or aged) session in place:
      ``reopen()`` opens a fresh session with the same configuration (new socket, new
      protocol state, no greeting; raises :class:`ModelUnavailable`), after which
      ``events()`` is called again for the new session's events; ``replay(items)`` hands
      it the conversation so far. ``reopen()`` may follow ``close()`` (a roll closes the
      aged session first when it is idle). When to reopen, how often, and what to replay is the
      worker's decision (service/calls/survival.py). False for edges that resume by
      themselves (Gemini reports ``SessionResumed``) or have nothing to reopen; the worker
      never calls ``reopen``/``replay`` on them.
    * The ``send``-like methods return False when the session is gone (``events()`` says why)
      and never raise for a closed socket.
    """

    detects_speech_during_playback: bool
    can_reopen: bool

    @property
    def audio_format(self) -> ModelAudioFormat:
        """What the model's audio arrives in."""
        ...

    @property
    def input_format(self) -> ModelAudioFormat:
        """What the model wants caller audio in."""
        ...

    @property
    def active_response_id(self) -> str | None: ...
    async def open(self, greeting: str | None = None) -> None: ...
    def events(self) -> AsyncIterator[ModelEvent]: ...
    async def send_audio(self, audio: bytes) -> bool: ...
    async def create_response(
        self,
        instructions: str | None = None,
        *,
        purpose: Purpose | None = None,
        out_of_band: bool = False,
    ) -> bool: ...
    async def send_user_text(self, text: str) -> bool: ...
    async def truncate(self, item_id: str, audio_end_ms: int) -> bool: ...
    async def cancel_response(self) -> bool: ...
    async def function_output(self, call_id: str, output: str) -> bool: ...
    async def close(self) -> None: ...
    async def reopen(self) -> None: ...
    async def replay(self, items: Sequence[ReplayItem]) -> bool: ...
