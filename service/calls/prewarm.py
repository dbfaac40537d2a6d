"""Model sessions opened at the voice webhook, before the caller's stream exists.

The webhook reaches us a few hundred ms before Twilio opens the media stream. Opening the model
session (and asking for the greeting) then means the greeting is ready when the stream starts.
A session nobody claims within ``timeout`` seconds (the call never connected, or its stream
went to another worker) is closed. Memory: one entry per call between webhook and stream.
"""

from __future__ import annotations

import asyncio

import structlog

from service.realtime.session import ModelSession

__all__ = ["PrewarmedSessions"]

log = structlog.get_logger(__name__)


class PrewarmedSessions:
    def __init__(self, *, timeout: float = 15.0) -> None:
        self.timeout = timeout
        self._sessions: dict[str, tuple[ModelSession, asyncio.Event]] = {}
        self._greetings: dict[str, str | None] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.claimed = 0
        self.expired = 0

    def start(self, call_sid: str, session: ModelSession, greeting: str | None) -> None:
        if call_sid in self._sessions:
            return  # a retried webhook: keep the session already opening
        claimed = asyncio.Event()
        self._sessions[call_sid] = (session, claimed)
        self._greetings[call_sid] = greeting
        task = asyncio.create_task(self._hold(call_sid, session, greeting, claimed))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _hold(
        self,
        call_sid: str,
        session: ModelSession,
        greeting: str | None,
        claimed: asyncio.Event,
    ) -> None:
        try:
            await session.open(greeting)
        except Exception as exc:
            # The worker sees the same failure when it claims the session, and ends politely.
            log.info("pre-warm failed", call_sid=call_sid, error=str(exc))
        try:
            await asyncio.wait_for(claimed.wait(), self.timeout)
        except TimeoutError:
            self._greetings.pop(call_sid, None)
            if self._sessions.pop(call_sid, None) is not None:
                self.expired += 1
                log.info("pre-warmed session unclaimed; closing", call_sid=call_sid)
                await session.close()

    async def ready(self, call_sid: str) -> bool:
        """Wait for ``call_sid``'s pre-warmed session to open: ``False`` if it failed. A call
        with nothing pre-warmed has nothing to wait for (``True``)."""
        entry = self._sessions.get(call_sid)
        if entry is None:
            return True
        try:
            # Whoever opens first asks for the greeting; opening twice is waiting once.
            await entry[0].open(self._greetings.get(call_sid))
        except Exception:
            return False
        return True

    def claim(self, call_sid: str) -> ModelSession | None:
        entry = self._sessions.pop(call_sid, None)
        if entry is None:
            return None
        session, claimed = entry
        self._greetings.pop(call_sid, None)
        claimed.set()
        self.claimed += 1
        return session

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for session, _ in list(self._sessions.values()):
            await session.close()
        self._sessions.clear()

    def __len__(self) -> int:
        return len(self._sessions)
