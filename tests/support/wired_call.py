"""A whole call with no sockets: the worker between a simulated carrier and a wired model.

``WiredModel`` is a real ``ModelSession``: the client protocol core
(``OpenAIRealtimeProtocol``) wired straight to the model server's sans-I/O
``RealtimeSession``, on a simulated clock. Every client event is checked against the
``openai`` SDK's client-event union and every server event against its server-event union,
so the pair speaks the public protocol, not a dialect. Faults are injected on the wire:
``drop_client`` swallows client events (a lost ``response.create``), ``inject`` delivers any
server event, ``drop()`` loses the session (``ModelClosed``; sends fail) and ``reopen()``
then starts a fresh server session for the same script (``refuse_reopens`` makes that many
attempts fail first).

``Carrier`` is Twilio's playback queue (``PlaybackBuffer``) on the same clock: it plays what
the worker sends at real time and echoes marks as playback reaches them.

``WiredCall.advance(seconds)`` moves the clock in small steps, letting the server stream and
the carrier play, and the event loop run the worker's tasks in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import fakeredis
import orjson

from service.calls.worker import CallWorker
from service.modelserver.protocol import validate_server_event
from service.modelserver.script import Script
from service.modelserver.session import RealtimeSession
from service.peers.twilio.playback import BYTES_PER_MS, PlaybackBuffer
from service.realtime.config import SessionConfig
from service.realtime.events import ModelClosed, ModelEvent
from service.realtime.openai.connection import ProtocolSession
from service.realtime.openai.protocol import OpenAIRealtimeProtocol
from service.realtime.session import ModelUnavailable
from service.store.calls import CallStore
from service.store.writer import StoreWriter
from service.telephony.events import (
    CallerCommand,
    CallStarted,
    ClearPlayback,
    HangUp,
    MarkPlayed,
    PlaceMark,
    PlayAudio,
)
from tests.support.conformance import check_openai_client_event

__all__ = ["Carrier", "SimClock", "WiredCall", "WiredModel"]

Event = dict[str, Any]


class SimClock:
    """Simulated time, with ``loop.call_later``'s shape for timers that follow it."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[_Timer] = []

    def __call__(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self.now + delay, callback)
        self._timers.append(timer)
        return timer

    def fire_due(self) -> None:
        due = [t for t in self._timers if t.when <= self.now and not t.cancelled]
        self._timers = [t for t in self._timers if t not in due and not t.cancelled]
        for timer in due:
            timer.callback()


class _Timer:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class WiredModel(ProtocolSession):
    """A ``ModelSession`` over the sans-I/O protocol pair; see the module docstring."""

    def __init__(self, script: Script, clock: SimClock, config: SessionConfig | None = None):
        self.protocol = OpenAIRealtimeProtocol(config or SessionConfig())
        self.script = script
        self.server = RealtimeSession(script)
        self.sessions = 1  # server sessions opened (reopen starts another)
        self.refuse_reopens = 0
        self.dropped = False
        self.clock = clock
        self.client_events: list[Event] = []
        self.server_events: list[Event] = []
        self.drop_client: Callable[[Event], bool] = lambda _event: False
        self._queue: asyncio.Queue[ModelEvent] = asyncio.Queue()
        self._opened = False
        self.closed = False

    # --- the wire ------------------------------------------------------------------------

    def _to_server(self, event: Event) -> None:
        check_openai_client_event(event)
        self.client_events.append(event)
        if self.closed or self.dropped or self.drop_client(event):
            return
        self._deliver(self.server.receive(orjson.dumps(event), self.clock.now))

    def _deliver(self, events: list[Event]) -> None:
        for event in events:
            validate_server_event(event)
            self.inject(event)

    def inject(self, event: Event) -> None:
        """A server event on the wire, parsed by the client core as if it had arrived."""
        self.server_events.append(event)
        for model_event in self.protocol.receive(orjson.dumps(event), self.clock.now):
            self._queue.put_nowait(model_event)

    def tick(self) -> None:
        if not self.closed and not self.dropped:
            self._deliver(self.server.tick(self.clock.now))

    # --- ModelSession (the rest comes from ProtocolSession) --------------------------------

    async def send(self, event: Event) -> bool:
        self._to_server(event)
        await asyncio.sleep(0)  # a socket send may suspend: let other tasks interleave here
        return not (self.dropped or self.closed)

    def drop(self, reason: str = "socket closed (no close frame)") -> None:
        """The connection is lost: nothing more arrives, sends fail, ``ModelClosed`` follows."""
        self.dropped = True
        self._queue.put_nowait(ModelClosed(reason))

    async def reopen(self) -> None:
        if self.refuse_reopens > 0:
            self.refuse_reopens -= 1
            raise ModelUnavailable("cannot connect: refused (simulated)")
        self.protocol = OpenAIRealtimeProtocol(self.protocol.config)
        self.server = RealtimeSession(self.script)
        self.sessions += 1
        self.dropped = self.closed = False
        self._deliver(self.server.open(self.clock.now))
        self._to_server(self.protocol.session_update())

    async def open(self, greeting: str | None = None) -> None:
        if self._opened:
            return
        self._opened = True
        self._deliver(self.server.open(self.clock.now))
        self._to_server(self.protocol.session_update())
        if greeting:
            self._to_server(self.protocol.create_response(greeting, purpose="greeting"))

    async def events(self) -> AsyncIterator[ModelEvent]:
        while True:
            event = await self._queue.get()
            yield event
            if isinstance(event, ModelClosed):
                return

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(ModelClosed("closed"))

    def sent(self, kind: str) -> list[Event]:
        return [e for e in self.client_events if e["type"] == kind]

    def received(self, kind: str) -> list[Event]:
        return [e for e in self.server_events if e["type"] == kind]


class Carrier:
    """What the worker's commands do at Twilio: queue, play at real time, echo marks."""

    def __init__(self) -> None:
        self.playback = PlaybackBuffer()
        self.commands: list[CallerCommand] = []
        self.echoes: list[str] = []  # mark names due to be echoed to the worker
        self.hung_up: HangUp | None = None
        self.played_at_clear: float | None = None  # ms played when the (last) clear came
        self.played_at_hang_up = 0.0
        self.heard = bytearray()

    async def send(self, command: CallerCommand) -> None:
        self.commands.append(command)
        match command:
            case PlayAudio(ulaw=ulaw):
                self.playback.enqueue_audio(ulaw)
            case PlaceMark(name=name):
                self.echoes += self.playback.enqueue_mark(name)
            case ClearPlayback():
                self.played_at_clear = self.playback.played_ms
                self.echoes += self.playback.clear()
            case HangUp():
                self.hung_up = command
                self.played_at_hang_up = self.playback.played_ms

    def play(self, ms: float) -> None:
        audio, echoed = self.playback.advance(int(ms * BYTES_PER_MS))
        self.heard += audio
        self.echoes += echoed

    def count(self, kind: type) -> int:
        return sum(isinstance(c, kind) for c in self.commands)


class WiredCall:
    """One call: carrier ↔ worker ↔ wired model, all on one simulated clock."""

    def __init__(
        self,
        script: Script,
        *,
        config: SessionConfig | None = None,
        greeting: str | None = "Greet the caller.",
        step_ms: float = 10.0,
        **worker_options: Any,
    ) -> None:
        self.clock = SimClock()
        self.model = WiredModel(script, self.clock, config)
        self.carrier = Carrier()
        self.step_ms = step_ms
        # The embedded store the service runs with when REDIS_URL is unset: what the call
        # records is checked in the end-to-end tests against a real Redis.
        self.redis = fakeredis.FakeAsyncRedis()
        self.writer = StoreWriter(self.redis)
        self.store = CallStore(self.redis, self.writer)
        self.worker = CallWorker(
            CallStarted("CA_wired", "test", carrier_fields={"stream_sid": "MZ_wired"}),
            store=self.store,
            send=self.carrier.send,
            model=self.model,
            backend="local",
            greeting=greeting,
            clock=self.clock,
            call_later=self.clock.call_later,
            **worker_options,
        )

    async def __aenter__(self) -> WiredCall:
        # No exception may escape a call's tasks: collect any, and fail the test at the end.
        self.loop_errors: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(lambda _loop, context: self.loop_errors.append(context))
        self.writer.start()
        self.worker.start()
        await self.settle()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.worker.close()
        await self.writer.close()
        await self.redis.aclose()
        await self.settle()
        asyncio.get_running_loop().set_exception_handler(self._previous_handler)
        errors = [str(c.get("exception") or c.get("message")) for c in self.loop_errors]
        assert not errors, f"exceptions escaped the call's tasks: {errors}"

    async def events(self) -> list[dict[str, Any]]:
        """The call's events stream as stored."""
        await self.writer.flush(5.0)
        return await self.store.get_events(self.worker.call_sid)

    async def settle(self, rounds: int = 20) -> None:
        """Let the loop run what is ready (the worker's tasks and the events queued for it)."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end - 1e-9:
            step = min(self.step_ms / 1000, end - self.clock.now)
            self.clock.now += step
            self.clock.fire_due()
            self.model.tick()
            self.carrier.play(step * 1000)
            await self._echo()
            await self.settle()

    async def _echo(self) -> None:
        echoes, self.carrier.echoes = self.carrier.echoes, []
        for name in echoes:
            await self.worker.on_event(MarkPlayed(name))

    async def until(self, condition: Callable[[], bool], *, within: float = 30.0) -> None:
        """Advance the simulated clock until ``condition()`` (at most ``within`` seconds)."""
        end = self.clock.now + within
        while not condition():
            assert self.clock.now < end, "condition not met in simulated time"
            await self.advance(self.step_ms / 1000)
