"""The durable tool-call audit: every step of every tool call, in Redis Streams.

Streams (``P`` is the ``REDIS_KEY_PREFIX`` setting)::

    P call:{CallSid}:tools    one call's tool calls, oldest first; shares the call's hash tag,
                              so it sits in the same Redis Cluster slot as the call's hash
    P audit:tools             every call's tool calls, oldest first, capped (see below)

Entry fields (all strings; the reader adds the stream id as ``id``)::

    at        ISO 8601 UTC time the step happened (not when it reached Redis)
    call_sid  Twilio CallSid
    call_id   the model's function-call id (one tool call = several entries with this id)
    name      tool name
    state     requested | started | finished | spoken | interrupted | cancelled
    …         per state, as the call worker passes them: ``arguments`` (requested);
              ``status`` ok/error/timeout/invalid_arguments/cancelled, ``result`` or ``error``,
              ``duration_ms`` (finished); ``heard_ms``, ``sent_ms`` (spoken / interrupted).
              Dicts and lists are stored as JSON, bools as true/false, None is left out.

Delivery
--------
:meth:`ToolAudit.record` never blocks and never waits on Redis: it hands one op to the shared
:class:`~service.store.writer.StoreWriter`, the same FIFO the call state uses. That op queues
one XADD to each stream (plus the TTL), so the entry goes to both streams or, if the op is
refused because the writer's queue is full, to neither. A Redis outage only delays entries:
the writer retries the head op in order until Redis is back (see writer.py). Delivery is
at-least-once: if the connection dies after Redis applied a batch but before its replies
arrived, the batch is sent again and an entry can appear twice, with a later stream id and
*identical* fields (``at`` included, as values are captured at record time). The readers
here drop such repeats. (Not a MULTI: the two streams live in different Cluster slots.)

Bounds and expiry
-----------------
* Per-call stream: ``XADD MAXLEN ~ call_maxlen`` (default 1000, ~1000 + 100 entries kept,
  since approximate trimming removes whole 100-entry nodes). TTL as the call's own keys
  (``service.store.calls``): a live safety TTL of ``live_ttl_seconds`` set with
  ``EXPIRE NX`` while the call runs, then ``call_ttl_seconds`` from :meth:`ToolAudit.call_ended`
  (the call worker calls it with the call's end), re-applied by any later write from this
  process.
* Global stream: ``XADD MAXLEN ~ global_maxlen`` (``AUDIT_MAXLEN``, default 100 000), no TTL;
  the oldest entries go first. Measured on Redis 7.0 (``tests/test_store_audit.py`` guards
  it): a realistic mix of requested/started/finished/spoken entries with short arguments and
  results averages ~200 bytes an entry in the stream, so the default cap holds ~20 MB.
  Each field value is cut to ``max_value_chars`` (default 2000), so a worst-case stream with
  every field at the cap is bounded by about ``global_maxlen × fields × max_value_chars``
  (measured: a finished entry with a result at the cap takes ~2.8 KB, so ~280 MB at
  100 000) — keep tool results short, or lower ``AUDIT_MAXLEN`` if they are large.
* Python side: nothing is held here beyond the writer's bounded queue (an audit op is a few
  hundred bytes plus its field values) and the ended-sid memory (``ended_memory`` sids,
  ~100 bytes each, 10 000 ≈ 1 MB).

Redaction is the caller's job (the worker passes redacted values). ``sensitive`` is a safety
net: those keys (case-insensitive) are replaced by ``"[redacted]"`` at any depth in dict/list
field values, in string values that hold a JSON object or array (the model's raw
``arguments``), and as top-level field names.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from service.store.calls import utc_now_iso
from service.store.keys import CallKeys
from service.store.writer import StoreOp, StoreWriter

log = structlog.get_logger(__name__)

REDACTED = "[redacted]"
RESERVED_FIELDS = frozenset({"at", "call_sid", "call_id", "name", "state"})
"""Set by :meth:`ToolAudit.record`; they win over same-named ``fields``."""

_JSON_OPTS = orjson.OPT_NON_STR_KEYS


class ToolAudit:
    """Writes tool-call audit entries through the shared writer; reads them back."""

    def __init__(
        self,
        writer: StoreWriter,
        *,
        prefix: str = "",
        call_ttl_seconds: int,
        live_ttl_seconds: int = 86_400,
        global_maxlen: int = 100_000,
        call_maxlen: int = 1000,
        max_value_chars: int = 2000,
        ended_memory: int = 10_000,
    ) -> None:
        if call_ttl_seconds < 1 or live_ttl_seconds < 1:
            raise ValueError("TTLs must be positive")
        if global_maxlen < 1 or call_maxlen < 1 or max_value_chars < 16:
            raise ValueError(
                "global_maxlen and call_maxlen must be positive, max_value_chars at least 16"
            )
        self.keys = CallKeys(prefix)  # validates the prefix (no braces) like the call keys
        self.global_key = f"{prefix}audit:tools"
        self._writer = writer
        self._ttl = call_ttl_seconds
        self._live_ttl = live_ttl_seconds
        self._global_maxlen = global_maxlen
        self._call_maxlen = call_maxlen
        self._max_chars = max_value_chars
        # Same bounded LRU as CallStore: sids whose end this process saw, so later writes
        # re-apply the short TTL instead of only the live safety TTL.
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._ended_memory = ended_memory

    @property
    def writer(self) -> StoreWriter:
        return self._writer

    def call_key(self, call_sid: str) -> str:
        """The call's tool stream: the call hash key + ``:tools`` (same hash tag)."""
        return self.keys.call(call_sid) + ":tools"

    # -- writes (non-blocking) ------------------------------------------------------------

    def record(
        self,
        call_sid: str,
        call_id: str,
        name: str,
        state: str,
        *,
        sensitive: Iterable[str] = (),
        **fields: object,
    ) -> bool:
        """Queue one audit entry for both streams. Never blocks; False if the writer
        refused it (queue full or closing). Field values are flattened to strings here,
        at record time, so a later mutation of a passed dict cannot change the entry."""
        key = self.call_key(call_sid)  # raises ValueError for an empty/braced sid
        secret = frozenset(s.lower() for s in sensitive)
        entry: dict[str, str] = {}
        for field, value in fields.items():
            if value is None or field in RESERVED_FIELDS:
                continue
            if field.lower() in secret:
                entry[field] = REDACTED
                continue
            entry[field] = self._flat(value, secret)
        entry.update(at=utc_now_iso(), call_sid=call_sid, call_id=call_id, name=name, state=state)
        ended = call_sid in self._ended

        def build(pipe: Pipeline) -> None:
            pipe.xadd(key, entry, maxlen=self._call_maxlen, approximate=True)
            pipe.xadd(self.global_key, entry, maxlen=self._global_maxlen, approximate=True)
            self._expire(pipe, key, ended=ended)

        return self._writer.submit(StoreOp.batched(f"audit:{state}", build, call_sid=call_sid))

    def call_ended(self, call_sid: str) -> bool:
        """Start the ``call_ttl_seconds`` countdown on the call's tool stream (as
        ``CallStore.call_ended`` does for the call's hash and events). Non-blocking."""
        key = self.call_key(call_sid)
        self._ended[call_sid] = None
        self._ended.move_to_end(call_sid)
        while len(self._ended) > self._ended_memory:
            self._ended.popitem(last=False)

        def build(pipe: Pipeline) -> None:
            self._expire(pipe, key, ended=True)

        return self._writer.submit(StoreOp.batched("audit:ended", build, call_sid=call_sid))

    # -- reads ----------------------------------------------------------------------------

    async def call_entries(self, redis: Redis, call_sid: str) -> list[dict[str, str]]:
        """One call's entries, oldest first, each with its stream id under ``"id"``."""
        return _unique(await redis.xrange(self.call_key(call_sid)))

    async def recent(self, redis: Redis, count: int = 50) -> list[dict[str, str]]:
        """The last ``count`` entries across all calls, oldest first (like ``tail``)."""
        entries = await redis.xrevrange(self.global_key, count=count)
        return _unique(list(reversed(entries)))

    # -- internals ------------------------------------------------------------------------

    def _expire(self, pipe: Pipeline, key: str, *, ended: bool) -> None:
        # The calls.py rule: NX while live so a write never shortens or extends the safety
        # TTL; the short TTL once the call is known to have ended.
        if ended:
            pipe.expire(key, self._ttl)
        else:
            pipe.expire(key, self._live_ttl, nx=True)

    def _flat(self, value: object, secret: frozenset[str]) -> str:
        if isinstance(value, str):
            text = _redact_json_text(value, secret) if secret else value
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, bytes):
            text = value.decode("utf-8", "replace")
        elif isinstance(value, Mapping | list | tuple):
            text = _dumps(_redact(value, secret) if secret else value)
        else:
            text = str(value)
        if len(text) > self._max_chars:
            # Bounded entries keep the global stream's memory bound meaningful.
            cut = len(text) - self._max_chars
            text = f"{text[: self._max_chars]}…[{cut} chars cut]"
        return text


def _dumps(value: object) -> str:
    try:
        return orjson.dumps(value, default=str, option=_JSON_OPTS).decode()
    except TypeError:  # e.g. a tuple key, or nesting past orjson's depth limit
        return str(value)


def _redact(value: Any, secret: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        return {
            k: REDACTED if str(k).lower() in secret else _redact(v, secret)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v, secret) for v in value]
    return value


def _redact_json_text(text: str, secret: frozenset[str]) -> str:
    """Redact inside a string that holds a JSON object/array; other strings pass as is
    (text that is not valid JSON cannot be redacted by key, so it is left alone)."""
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return text
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    redacted = _redact(parsed, secret)
    return text if redacted == parsed else _dumps(redacted)


def _text(value: object) -> str:
    # Reads work on clients with or without decode_responses.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _unique(entries: list[Any]) -> list[dict[str, str]]:
    """Stream entries as dicts (+ ``id``), dropping at-least-once repeats: a resent entry
    has exactly the same fields (``at`` to the millisecond) as the first copy."""
    seen: set[tuple[tuple[str, str], ...]] = set()
    out: list[dict[str, str]] = []
    for entry_id, raw in entries:
        fields = {_text(k): _text(v) for k, v in raw.items()}
        fingerprint = tuple(sorted(fields.items()))
        if fingerprint in seen:
            continue
        seen.add(fingerprint)
        out.append({**fields, "id": _text(entry_id)})
    return out
