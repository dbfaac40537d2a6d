"""Helpers for tests that drive the local Realtime server's sans-I/O session.

:class:`SessionDriver` runs a :class:`RealtimeSession` on a simulated clock and checks every
event it emits against the SDK's server event union (``validate_server_event``) and for unique
``event_id``s, so any test using it also checks that the server speaks no dialect.

With a speech engine, a response may wait on work running on other threads (a transcript, the
brain, synthesis): :meth:`SessionDriver.finish` then waits for it in real time (bounded),
while the session's own clock stays simulated.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from service.audio.g711 import pcm16_to_ulaw
from service.modelserver.protocol import validate_server_event
from service.modelserver.script import Script
from service.modelserver.session import RealtimeSession

__all__ = ["SessionDriver", "audio_bytes", "b64", "only", "types"]

Event = dict[str, Any]


class SessionDriver:
    """Runs a session on a simulated clock and validates everything it emits."""

    def __init__(self, script: Script | None = None, **kwargs: Any) -> None:
        self.session = RealtimeSession(script or Script(), **kwargs)
        self.now = 0.0
        self.events: list[Event] = []
        self.seen_ids: set[str] = set()
        self.take(self.session.open(self.now))

    def take(self, events: list[Event]) -> list[Event]:
        for event in events:
            validate_server_event(event)
            assert event["event_id"] not in self.seen_ids, "event_id reused"
            self.seen_ids.add(event["event_id"])
        self.events += events
        return events

    def send(self, event: Event | str) -> list[Event]:
        return self.take(self.session.receive(event, self.now))

    def advance(self, seconds: float) -> list[Event]:
        """Move the clock, ticking at every deadline on the way."""
        end, out = self.now + seconds, list[Event]()
        while (deadline := self.session.next_deadline()) is not None and deadline <= end:
            self.now = max(self.now, deadline)
            out += self.take(self.session.tick(self.now))
        self.now = end
        return out

    def finish(self, timeout: float = 60.0) -> list[Event]:
        """Run the clock until the active response is done (or the script dropped us);
        engine work is waited for in real time, at most ``timeout`` seconds in all."""
        out: list[Event] = []
        give_up = time.monotonic() + timeout
        while self.session.response is not None and self.session.close_request is None:
            if self.session.waiting:
                assert time.monotonic() < give_up, "engine work did not finish in time"
                time.sleep(0.005)
                out += self.take(self.session.tick(self.now))
                continue
            deadline = self.session.next_deadline()
            assert deadline is not None, "an active response must have a deadline"
            self.now = max(self.now, deadline)
            out += self.take(self.session.tick(self.now))
        return out

    def settle(self) -> list[Event]:
        """Finish the active response; every event so far."""
        self.finish()
        return self.events

    def stream(
        self, pcm: bytes, rate: int, *, ulaw: bool = False, chunk_ms: int = 20
    ) -> list[Event]:
        """Append audio in real-time-sized chunks, the clock moving with it."""
        step, out = rate * chunk_ms // 1000 * 2, list[Event]()
        for i in range(0, len(pcm), step):
            chunk = pcm[i : i + step]
            wire = pcm16_to_ulaw(chunk) if ulaw else chunk
            out += self.send({"type": "input_audio_buffer.append", "audio": b64(wire)})
            out += self.advance(chunk_ms / 1000)
        return out

    def update(self, **session: Any) -> list[Event]:
        return self.send({"type": "session.update", "session": {"type": "realtime", **session}})


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def types(events: list[Event]) -> list[str]:
    return [e["type"] for e in events]


def only(events: list[Event], kind: str) -> Event:
    found = [e for e in events if e["type"] == kind]
    assert len(found) == 1, (kind, types(events))
    return found[0]


def audio_bytes(events: list[Event]) -> int:
    return sum(
        len(base64.b64decode(e["delta"])) for e in events if e["type"].endswith("audio.delta")
    )
