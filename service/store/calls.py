"""Per-call state and events in Redis.

Keys (built by :class:`service.store.keys.CallKeys`; ``P`` is ``REDIS_KEY_PREFIX``)::

    P call:{CallSid}          hash
        direction, from, to, account_sid, stream_sid, backend, profile (extra fields as given)
        status        carrier call status (Twilio vocabulary: queued, ringing, in-progress,
                      completed, busy, failed, no-answer, canceled)
        status_seq    SequenceNumber of the status callback that set ``status``
        status_at     when that callback was received
        started_at, ended_at   ISO 8601 UTC, millisecond precision, "Z" suffix
        end_reason    why the call ended, from our side (first reason given wins)

    P call:{CallSid}:events   stream, one entry per event
        type   started | status | ended | dtmf | error | barge_in | truncation | transcript …
        at     ISO 8601 UTC time the event happened (not when it reached Redis)
        …      event-specific flat string fields; the reader adds the stream id as ``id``

Bounds and expiry
-----------------
* The events stream is capped with ``XADD MAXLEN ~ events_maxlen`` (default 10 000).
  Trimming is approximate (whole radix-tree nodes, 100 entries by default), so a stream holds
  at most about ``events_maxlen + 100`` entries — a few MB at worst for one call; the oldest
  events go first.
* Before a call ends its keys carry a safety TTL of ``live_ttl_seconds`` (default 24 h, set
  with ``EXPIRE … NX`` so it never shortens or lengthens an existing TTL): a process that
  crashes mid-call cannot leak keys forever. Calls longer than that lose their keys.
* When a call ends (``call_ended`` or a terminal status callback) both keys get
  ``EXPIRE ttl_seconds``. Any later write to an ended call re-applies it: status callbacks
  read ``ended_at`` in their transaction; other writes from this process know the call ended
  from a bounded in-memory set (``ended_memory`` sids); writes from elsewhere fall back to the
  live safety TTL. Nothing lingers without a TTL.

Ordering and delivery
---------------------
Writes go through the :class:`~service.store.writer.StoreWriter` (non-blocking, ordered,
at-least-once; see there). Status callbacks and call end are optimistic WATCH/MULTI
transactions on the call hash (not Lua: the embedded fakeredis mode has no Lua), so the
``status_seq`` check and the hash update are atomic across processes.

Status moves forward only: a callback's status is applied when its sequence number is higher
than ``status_seq`` *and* it would not move a terminal status back to a non-terminal one (a
late "in-progress" after the call ended). Every callback is recorded as a ``status`` event
with ``applied`` true/false either way.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import orjson
import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from service.store.call_index import CallIndex
from service.store.keys import CallKeys
from service.store.writer import StoreOp, StoreWriter

log = structlog.get_logger(__name__)

TERMINAL_STATUSES: frozenset[str] = frozenset(
    {"completed", "busy", "failed", "no-answer", "canceled"}
)
"""Twilio call statuses after which nothing more happens on the call."""

_T = TypeVar("_T")


def utc_now_iso() -> str:
    """Now as ISO 8601 UTC with milliseconds, e.g. ``2025-01-31T12:00:00.123Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_field(value: object) -> str:
    """One Redis field value: bools as true/false, containers as JSON, the rest via str()."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Mapping | list | tuple):
        return orjson.dumps(value, default=str).decode()
    return str(value)


def flat_fields(fields: Mapping[str, object]) -> dict[str, str]:
    """Field values as strings; None means "not given" and is left out."""
    return {key: to_field(value) for key, value in fields.items() if value is not None}


def _text(value: object) -> str:
    # Reads work on clients with or without decode_responses.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class CallStore:
    """Call state hash + events stream per call. Writes never block; reads are async."""

    def __init__(
        self,
        redis: Redis,
        writer: StoreWriter,
        prefix: str = "",
        ttl_seconds: int = 3600,
        *,
        live_ttl_seconds: int = 86_400,
        events_maxlen: int = 10_000,
        ended_memory: int = 10_000,
        watch_attempts: int = 100,
        index: CallIndex | None = None,
    ) -> None:
        if ttl_seconds < 1 or live_ttl_seconds < 1:
            raise ValueError("TTLs must be positive")
        self.keys = CallKeys(prefix)
        self._redis = redis
        self._writer = writer
        self._ttl = ttl_seconds
        self._live_ttl = live_ttl_seconds
        self._maxlen = events_maxlen
        self._watch_attempts = watch_attempts
        # Sids whose end this process has submitted, so its later blind writes re-apply the
        # short TTL. Bounded LRU: ~100 bytes an entry, 10 000 entries ≈ 1 MB.
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._ended_memory = ended_memory
        self.index = index
        """The cross-replica list of calls (``call_index``), written at start and end."""
        self.watch_conflicts = 0
        """WATCH/MULTI attempts that lost a race and were retried (monotonic)."""

    @property
    def writer(self) -> StoreWriter:
        return self._writer

    # -- writes (non-blocking) ------------------------------------------------------------

    def call_started(
        self,
        call_sid: str,
        *,
        direction: str,
        from_: str,
        to: str,
        backend: str,
        **extra: object,
    ) -> bool:
        """Record the call's start (hash fields + a ``started`` event). False if dropped.

        ``extra`` holds the carrier's own fields (Twilio: ``stream_sid``, ``account_sid``) and
        anything else worth keeping; empty values are skipped.

        ``status`` is set to ``in-progress`` only if no status is stored yet (HSETNX): a
        status callback may have got there first.
        """
        at = utc_now_iso()
        details = {
            **flat_fields(extra),
            **flat_fields(
                {
                    "direction": direction,
                    "from": from_,
                    "to": to,
                    "backend": backend,
                }
            ),
        }
        mapping = {**details, "started_at": at}
        event = {**details, "type": "started", "at": at}
        call_key, events_key = self.keys.both(call_sid)
        ended = call_sid in self._ended

        def build(pipe: Pipeline) -> None:
            pipe.hset(call_key, mapping=mapping)
            pipe.hsetnx(call_key, "status", "in-progress")
            pipe.xadd(events_key, event, maxlen=self._maxlen, approximate=True)
            self._expire(pipe, call_sid, ended=ended)

        submitted = self._writer.submit(StoreOp.batched("call_started", build, call_sid=call_sid))
        if submitted and self.index is not None and not ended:
            self._writer.submit(self.index.started_op(call_sid, at))
        return submitted

    def update_call(self, call_sid: str, **fields: object) -> bool:
        """Set hash fields (None values skipped). Not for ``status``: use record_status."""
        mapping = flat_fields(fields)
        if not mapping:
            return True
        call_key = self.keys.call(call_sid)
        ended = call_sid in self._ended

        def build(pipe: Pipeline) -> None:
            pipe.hset(call_key, mapping=mapping)
            self._expire(pipe, call_sid, ended=ended)

        return self._writer.submit(StoreOp.batched("update_call", build, call_sid=call_sid))

    def append_event(self, call_sid: str, type_: str, **fields: object) -> bool:
        """Add one event to the call's stream. ``type`` and ``at`` are set here and win
        over same-named fields; ``id`` is reserved for the stream id on read."""
        event = {**flat_fields(fields), "type": type_, "at": utc_now_iso()}
        events_key = self.keys.events(call_sid)
        ended = call_sid in self._ended

        def build(pipe: Pipeline) -> None:
            pipe.xadd(events_key, event, maxlen=self._maxlen, approximate=True)
            self._expire(pipe, call_sid, ended=ended)

        return self._writer.submit(StoreOp.batched(f"event:{type_}", build, call_sid=call_sid))

    def call_ended(self, call_sid: str, *, end_reason: str, **extra: object) -> bool:
        """Mark the call ended and start the ``ttl_seconds`` countdown on its keys.

        Sets ``ended_at`` if unset, ``status=completed`` unless a terminal status is already
        stored, ``end_reason`` (+ ``extra`` hash fields) and adds an ``ended`` event. Only the
        first call_ended for a sid writes reason and event, so a retried or repeated end is
        harmless; every one re-applies the TTL.
        """
        at = utc_now_iso()
        extra_fields = flat_fields(extra)
        call_key, events_key = self.keys.both(call_sid)
        self._remember_ended(call_sid)

        def plan(pipe: Pipeline, current: Mapping[str, str | None]) -> None:
            updates: dict[str, str] = {}
            if not current["ended_at"]:
                updates["ended_at"] = at
            status = current["status"]
            if status not in TERMINAL_STATUSES:
                status = updates["status"] = "completed"
            if not current["end_reason"]:
                updates.update(extra_fields)
                updates["end_reason"] = end_reason
                event = {**extra_fields, "type": "ended", "at": at, "end_reason": end_reason}
                event["status"] = status or "completed"
                pipe.xadd(events_key, event, maxlen=self._maxlen, approximate=True)
            if updates:
                pipe.hset(call_key, mapping=updates)
            self._expire(pipe, call_sid, ended=True)

        async def run(redis: Redis) -> None:
            await self._watched(redis, call_sid, ("status", "ended_at", "end_reason"), plan)

        submitted = self._writer.submit(StoreOp.exclusive("call_ended", run, call_sid=call_sid))
        if self.index is not None:
            self._writer.submit(self.index.ended_op(call_sid))
        return submitted

    async def record_status(
        self,
        call_sid: str,
        *,
        status: str,
        sequence_number: int,
        fields: Mapping[str, object] | None = None,
    ) -> bool:
        """Record a carrier status callback, out-of-order safe. False if it was dropped.

        Called from the webhook handler. It goes through the writer like every other write
        (one WATCH/MULTI op) instead of awaiting Redis here, because:
        * the webhook answers at once whether Redis is up, slow or down — a slow reply makes
          Twilio time out and retry;
        * one path: no "try direct, fall back to the queue" duplicate when a direct attempt
          fails after Redis applied it;
        * the status lands in order with this process's other writes for the call.
        The op applies ``status`` (+ ``fields``) to the hash only if ``sequence_number``
        beats ``status_seq`` (see the module doc) and always appends a ``status`` event with
        ``sequence_number``, ``applied`` and ``fields``. A terminal status sets ``ended_at``
        if unset and the ended TTL. Use ``writer.flush()`` to wait for it.
        """
        at = utc_now_iso()
        extra = flat_fields(fields or {})
        call_key, events_key = self.keys.both(call_sid)
        terminal = status in TERMINAL_STATUSES

        def plan(pipe: Pipeline, current: Mapping[str, str | None]) -> bool:
            stored_seq = _int_or(current["status_seq"], -1)
            backwards = current["status"] in TERMINAL_STATUSES and not terminal
            applied = sequence_number > stored_seq and not backwards
            updates: dict[str, str] = {}
            if applied:
                updates.update(extra)
                updates.update(status=status, status_seq=str(sequence_number), status_at=at)
            already_ended = bool(current["ended_at"])
            if terminal and not already_ended:
                updates["ended_at"] = at
            if updates:
                pipe.hset(call_key, mapping=updates)
            event = {
                **extra,
                "type": "status",
                "at": at,
                "status": status,
                "sequence_number": str(sequence_number),
                "applied": to_field(applied),
            }
            pipe.xadd(events_key, event, maxlen=self._maxlen, approximate=True)
            self._expire(pipe, call_sid, ended=terminal or already_ended)
            return applied

        async def run(redis: Redis) -> bool:
            return await self._watched(redis, call_sid, ("status", "status_seq", "ended_at"), plan)

        return self._writer.submit(StoreOp.exclusive("record_status", run, call_sid=call_sid))

    # -- reads ----------------------------------------------------------------------------

    async def get_call(self, call_sid: str) -> dict[str, str]:
        """The call's hash ({} if unknown or expired)."""
        raw = await self._redis.hgetall(self.keys.call(call_sid))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def get_events(self, call_sid: str, *, count: int | None = None) -> list[dict[str, str]]:
        """The call's events, oldest first, each with its stream id under ``"id"``."""
        entries = await self._redis.xrange(self.keys.events(call_sid), count=count)
        return [
            {**{_text(k): _text(v) for k, v in fields.items()}, "id": _text(entry_id)}
            for entry_id, fields in entries
        ]

    # "Never raises" needs the timeout inside, so it stays a parameter.
    async def ping(self, timeout: float = 1.0) -> bool:  # noqa: ASYNC109
        """Health check: True if Redis answers within ``timeout`` s. Never raises."""
        try:
            async with asyncio.timeout(timeout):
                return bool(await self._redis.ping())
        except Exception:
            return False

    # -- internals ------------------------------------------------------------------------

    def _expire(self, pipe: Pipeline, call_sid: str, *, ended: bool) -> None:
        """Queue the TTL rule for both of the call's keys (see the module doc).

        Every write applies it to both keys, even the one it does not touch: two cheap
        EXPIREs in a pipeline buy the simple invariant "a write leaves both keys with a TTL".
        """
        for key in self.keys.both(call_sid):
            if ended:
                pipe.expire(key, self._ttl)
            else:
                pipe.expire(key, self._live_ttl, nx=True)

    def _remember_ended(self, call_sid: str) -> None:
        self._ended[call_sid] = None
        self._ended.move_to_end(call_sid)
        while len(self._ended) > self._ended_memory:
            self._ended.popitem(last=False)

    async def _watched(
        self,
        redis: Redis,
        call_sid: str,
        read: Sequence[str],
        plan: Callable[[Pipeline, Mapping[str, str | None]], _T],
    ) -> _T:
        """Optimistic transaction on the call hash: WATCH, read ``read`` fields, let
        ``plan`` queue commands on the MULTI, EXEC; start over if the hash changed."""
        call_key = self.keys.call(call_sid)
        async with redis.pipeline(transaction=True) as pipe:
            for _attempt in range(self._watch_attempts):
                try:
                    await pipe.watch(call_key)
                    values = await pipe.hmget(call_key, list(read))
                    current = {
                        name: None if value is None else _text(value)
                        for name, value in zip(read, values, strict=True)
                    }
                    pipe.multi()
                    result = plan(pipe, current)
                    await pipe.execute()
                    return result
                except WatchError:
                    # Another writer changed the hash between our read and EXEC; the
                    # pipeline has been reset, so read again and re-decide.
                    self.watch_conflicts += 1
                    continue
        raise WatchError(f"gave up after {self._watch_attempts} conflicting attempts")


def _int_or(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
