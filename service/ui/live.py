"""Server-sent events for the dashboard, read from Redis so every replica's calls show.

Two feeds, each an async generator of SSE frames (``text/event-stream``):

* ``live_calls``: the live-calls table. It blocks (``XREAD BLOCK``) on the call index's feed
  stream (calls starting and ending anywhere) and on each live call's events and tool-audit
  streams, and sends the whole table (``event: calls``) whenever it changed — at most one
  frame per ``BLOCK_MS`` — and a comment line as heartbeat every ``HEARTBEAT_S``.
* ``call_feed``: one call's events and tool-audit entries from the first (``event: event`` /
  ``event: tool``), then live, until the call's ``ended`` event (``event: end``).

Bounds: a process serves at most ``UI_MAX_STREAMS`` feeds at once (the route answers 503
past it); a feed closes itself after ``max_age_s`` (the browser's EventSource reconnects);
a live-table feed follows at most ``MAX_LIVE_CALLS`` calls' streams. On Redis Cluster the
multi-key XREAD would need every stream in one slot: this targets a single Redis (or the
embedded one), which is how the service is deployed today.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

import orjson
import structlog

from service.ui.board import LiveBoard
from service.ui.views import public_event, public_tool_entry

if TYPE_CHECKING:
    from service.services import Services

__all__ = ["StreamSlots", "call_feed", "live_calls", "sse"]

log = structlog.get_logger(__name__)

BLOCK_MS = 500
HEARTBEAT_S = 15.0
MAX_LIVE_CALLS = 200
FIRST_READ = 1000  # entries read per stream when a call is first seen (streams are capped)


def sse(event: str, data: object, *, event_id: str = "") -> bytes:
    """One SSE frame (WHATWG HTML 9.2.6): JSON data on one line, so no escaping needed."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


HEARTBEAT = b": ping\n\n"


class StreamSlots:
    """A counting limit on concurrent feeds in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def take(self) -> bool:
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def give(self) -> None:
        self.open = max(0, self.open - 1)


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _entry(fields: Mapping[object, object]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in fields.items()}


async def live_calls(services: Services, max_age_s: float) -> AsyncIterator[bytes]:
    store, redis = services.store, services.redis
    index = store.index
    assert index is not None, "the call index is built with the services"
    board = LiveBoard(mask=services.settings.ui_mask_numbers)
    tools_suffix = ":tools"
    positions: dict[str, str] = {index.feed_key: await index.feed_last_id()}
    deadline = time.monotonic() + max_age_s
    last_sent: bytes = b""
    last_beat = time.monotonic()

    async def refresh() -> None:
        sids = await index.active(int(time.time() * 1000), limit=MAX_LIVE_CALLS)
        board.keep_only(sids)
        for key in [k for k in positions if k != index.feed_key]:
            sid = key.split("{", 1)[1].split("}", 1)[0]
            if sid not in board.rows:
                del positions[key]
        for sid in sids:
            fields = await store.get_call(sid)
            if not fields or fields.get("ended_at"):
                board.rows.pop(sid, None)
                continue
            board.apply_hash(sid, fields)
            events_key, tools_key = store.keys.events(sid), store.keys.call(sid) + tools_suffix
            if events_key not in positions:  # first sight: read what it already holds
                for key in (events_key, tools_key):
                    entries = await redis.xrange(key, count=FIRST_READ)
                    for _entry_id, raw in entries:
                        _apply(board, sid, key, _entry(raw))
                    positions[key] = _text(entries[-1][0]) if entries else "0-0"

    def _apply(board: LiveBoard, sid: str, key: str, entry: dict[str, str]) -> None:
        if key.endswith(tools_suffix):
            board.apply_tool(sid, entry)
        else:
            board.apply_event(sid, entry)

    await refresh()
    while time.monotonic() < deadline:
        frame = sse("calls", {"calls": board.snapshot(), "at": time.time()})
        if frame != last_sent:
            last_sent, last_beat = frame, time.monotonic()
            yield frame
        elif time.monotonic() - last_beat > HEARTBEAT_S:
            last_beat = time.monotonic()
            yield HEARTBEAT
        replies = await redis.xread(positions, block=BLOCK_MS, count=100)
        index_changed = False
        for key, entries in replies or []:
            name = _text(key)
            for entry_id, raw in entries:
                positions[name] = _text(entry_id)
                if name == index.feed_key:
                    index_changed = True
                    continue
                sid = name.split("{", 1)[1].split("}", 1)[0]
                _apply(board, sid, name, _entry(raw))
        if index_changed:
            await refresh()


async def call_feed(services: Services, call_sid: str, max_age_s: float) -> AsyncIterator[bytes]:
    store, redis = services.store, services.redis
    mask = services.settings.ui_mask_numbers
    events_key, tools_key = store.keys.events(call_sid), store.keys.call(call_sid) + ":tools"
    positions = {events_key: "0-0", tools_key: "0-0"}
    deadline = time.monotonic() + max_age_s
    last_beat = time.monotonic()
    yield sse("reset", {"call_sid": call_sid})
    while time.monotonic() < deadline:
        replies = await redis.xread(positions, block=BLOCK_MS, count=200)
        ended = False
        for key, entries in replies or []:
            name = _text(key)
            for entry_id, raw in entries:
                entry_id_text = _text(entry_id)
                positions[name] = entry_id_text
                entry = {**_entry(raw), "id": entry_id_text}
                if name == tools_key:
                    yield sse("tool", public_tool_entry(entry, mask=mask))
                else:
                    ended = ended or entry.get("type") == "ended"
                    yield sse("event", public_event(entry, mask=mask))
                last_beat = time.monotonic()
        if ended:
            # The tool audit's last entries (spoken/interrupted) may land just after the end.
            await asyncio.sleep(0.2)
            for entry_id, raw in await redis.xrange(tools_key, min=f"({positions[tools_key]}"):
                entry = {**_entry(raw), "id": _text(entry_id)}
                yield sse("tool", public_tool_entry(entry, mask=mask))
            call = await store.get_call(call_sid)
            yield sse("end", {"end_reason": call.get("end_reason", "")})
            return
        if time.monotonic() - last_beat > HEARTBEAT_S:
            last_beat = time.monotonic()
            yield HEARTBEAT
