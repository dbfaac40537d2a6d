"""A bounded, ordered, non-blocking background writer for Redis.

The audio path must never wait on Redis, so every state write is an op handed to
:meth:`StoreWriter.submit`, which is synchronous and O(1): it appends the op to an in-memory
FIFO and returns. One background task applies the ops.

Invariants
----------
* **Order.** Ops are applied in submission order. The head op (or head batch) is retried
  until it is applied; later ops wait behind it. So for one process, writes about a call
  land in the order they were made, even across a Redis outage.
* **Nothing is dropped for being retried.** A connection error, a timeout, or a transient
  server reply (READONLY during a failover, LOADING, TRYAGAIN, OOM) retries the head with
  jittered exponential backoff (``backoff_initial`` doubling to ``backoff_max``) for as long
  as it takes. Ops are lost only when the queue is full at submit time (counted in
  ``dropped``) or when :meth:`StoreWriter.close` runs out of time (reported).
* **A bad op cannot wedge the queue.** An op that fails with a non-transient error (e.g. a
  WRONGTYPE reply, or a builder that raises) is logged, counted in ``failed`` and skipped.
* **At-least-once.** Batches are sent as one non-transactional pipeline. If the connection
  dies after Redis applied part of a batch but before the replies arrived, the whole batch is
  sent again, so an op can apply twice. HSET/HSETNX/EXPIRE are idempotent; XADD is not — a
  retried batch can add an event twice (with a later stream id, same field values).

Memory bound
------------
At most ``max_pending`` ops are held. An op is a small frozen dataclass plus a closure over
a few short strings — about 1–1.5 KB each, measured with tracemalloc
(``tests/test_store_writer.py`` guards it) — so the default ``max_pending=10_000`` bounds the
backlog to roughly 10–15 MB per process. A call writes on notable moments (start, status,
barge-in, transcript, end), about one op a second, so 100 live calls ride out ~100 s of
outage; after that new ops are dropped (and counted) rather than memory growing without limit.

Threading: :meth:`submit` must be called from the event loop's thread (it touches an
``asyncio.Event``).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

log = structlog.get_logger(__name__)

PipelineBuilder = Callable[[Pipeline], None]
"""Queues an op's commands on a shared non-transactional pipeline (no awaiting)."""

ExclusiveRunner = Callable[[Redis], Awaitable[object]]
"""Runs an op on its own (e.g. a WATCH/MULTI transaction); may await the client."""

# Errors that mean "Redis cannot take writes right now", not "this op is wrong": the head op
# is retried on these. The builtin ConnectionError/TimeoutError cover raw socket errors that
# redis-py may let through (asyncio.TimeoutError is the builtin TimeoutError since 3.11).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # also BusyLoadingError, AuthenticationError
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,  # failover: we are briefly talking to a replica
    redis_errors.TryAgainError,
    redis_errors.ClusterDownError,  # also MasterDownError
    # OOM (maxmemory + noeviction) refuses every write, so skipping ops would just fail all
    # of them; holding them keeps order and the bounded queue protects this process.
    redis_errors.OutOfMemoryError,
    ConnectionError,
    TimeoutError,
)


@dataclass(frozen=True, slots=True)
class StoreOp:
    """One write. Exactly one of ``build`` (batchable) or ``run`` (exclusive) is set.

    Values (timestamps included) are captured when the op is created, not when it is
    applied, so an op written after an outage still says when the thing happened.
    """

    name: str
    build: PipelineBuilder | None = None
    run: ExclusiveRunner | None = None
    call_sid: str = ""

    def __post_init__(self) -> None:
        if (self.build is None) == (self.run is None):
            raise ValueError("StoreOp needs exactly one of build= or run=")

    @classmethod
    def batched(cls, name: str, build: PipelineBuilder, *, call_sid: str = "") -> StoreOp:
        """An op whose commands can share a pipeline with its neighbours."""
        return cls(name=name, build=build, call_sid=call_sid)

    @classmethod
    def exclusive(cls, name: str, run: ExclusiveRunner, *, call_sid: str = "") -> StoreOp:
        """An op applied on its own, in order; it ends the batch before it."""
        return cls(name=name, run=run, call_sid=call_sid)


class StoreWriter:
    """Applies :class:`StoreOp` s in order from one background task. See the module doc."""

    def __init__(
        self,
        redis: Redis,
        *,
        max_pending: int = 10_000,
        batch_size: int = 256,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
        drop_log_interval: float = 5.0,
    ) -> None:
        if max_pending < 1 or batch_size < 1:
            raise ValueError("max_pending and batch_size must be positive")
        self._redis = redis
        self._max_pending = max_pending
        self._batch_size = batch_size
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._drop_log_interval = drop_log_interval

        # A plain deque, not deque(maxlen=…): maxlen would silently evict the *oldest* op,
        # possibly the one being retried. We refuse the newest instead.
        self._queue: deque[StoreOp] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

        self._written = 0
        self._dropped = 0
        self._failed = 0
        self._retries = 0

        self._down_since: float | None = None
        self._retries_at_down = 0
        self._last_drop_log = -math.inf
        self._dropped_at_last_log = 0

    # -- counters -------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Ops submitted and not yet applied or failed (includes the batch in flight)."""
        return len(self._queue)

    @property
    def written(self) -> int:
        """Ops applied (monotonic)."""
        return self._written

    @property
    def dropped(self) -> int:
        """Ops refused by :meth:`submit`: queue full, or writer closing (monotonic)."""
        return self._dropped

    @property
    def failed(self) -> int:
        """Ops skipped after a non-transient error (monotonic)."""
        return self._failed

    @property
    def retries(self) -> int:
        """Attempts that hit a transient error and were retried (monotonic)."""
        return self._retries

    @property
    def redis_down(self) -> bool:
        """True while the head op is being retried after a transient error."""
        return self._down_since is not None

    def stats(self) -> dict[str, int | bool]:
        """All counters, for metrics and health endpoints."""
        return {
            "pending": self.pending,
            "written": self._written,
            "dropped": self._dropped,
            "failed": self._failed,
            "retries": self._retries,
            "redis_down": self.redis_down,
        }

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background task (needs a running event loop). Idempotent."""
        if self._task is None or self._task.done():
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="store-writer")

    def submit(self, op: StoreOp) -> bool:
        """Queue ``op``; never blocks, never raises. False if it was dropped."""
        if self._closing:
            self._note_drop(op, "closing")
            return False
        if len(self._queue) >= self._max_pending:
            self._note_drop(op, "queue_full")
            return False
        self._queue.append(op)
        self._idle.clear()
        self._wakeup.set()
        return True

    # The timeout is part of the contract (returns False, cancels nothing), not a wrapper.
    async def flush(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until the queue is empty (everything applied or failed). False on timeout."""
        if not self._queue:
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    # The timeout is a flush budget: after it the task is cancelled and the loss reported,
    # which an outer asyncio.timeout() could not do.
    async def close(self, timeout: float = 5.0) -> int:  # noqa: ASYNC109
        """Refuse new ops, flush pending ones for up to ``timeout`` s, stop the task.

        Returns how many ops were left unwritten (also logged).
        """
        self._closing = True
        self._wakeup.set()
        task = self._task
        if task is not None and not task.done():
            # wait() rather than wait_for(): it never cancels the task by itself and it
            # never swallows a cancellation aimed at close()'s caller.
            _done, still_running = await asyncio.wait({task}, timeout=timeout)
            if still_running:
                task.cancel()
                await asyncio.wait({task})
        left = len(self._queue)
        fields = {
            "unwritten": left,
            "written": self._written,
            "dropped": self._dropped,
            "failed": self._failed,
            "retries": self._retries,
        }
        if left:
            log.warning("store_writer_closed_with_unwritten_ops", **fields)
        else:
            log.info("store_writer_closed", **fields)
        return left

    # -- background task ------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self._backoff_initial
        while True:
            if not self._queue:
                self._idle.set()
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            try:
                await self._apply_head()
            except TRANSIENT_ERRORS as exc:
                self._retries += 1
                self._note_down(exc)
                # Jitter so many processes recovering from one outage don't stampede.
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self._backoff_max)
                continue
            except Exception:
                # A bug in this class, not in an op (ops' own errors are handled in
                # _apply_*). Skip the head op so the loop keeps making progress.
                log.exception("store_writer_internal_error", pending=len(self._queue))
                if self._queue:
                    self._resolve(self._queue[0], RuntimeError("store writer internal error"))
                continue
            delay = self._backoff_initial
            self._note_up()

    async def _apply_head(self) -> None:
        """Apply the head op, or the run of batchable ops at the head, then pop them."""
        head = self._queue[0]
        if head.run is not None:
            await self._apply_exclusive(head)
            return
        batch: list[StoreOp] = []
        # No await while iterating, so submit() cannot mutate the deque under us.
        for op in itertools.islice(self._queue, self._batch_size):
            if op.build is None:
                break
            batch.append(op)
        await self._apply_batch(batch)

    async def _apply_exclusive(self, op: StoreOp) -> None:
        assert op.run is not None
        try:
            await op.run(self._redis)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            self._resolve(op, exc)
            return
        self._resolve(op, None)

    async def _apply_batch(self, batch: list[StoreOp]) -> None:
        build_errors: list[Exception | None] = []
        spans: list[tuple[int, int]] = []
        async with self._redis.pipeline(transaction=False) as pipe:
            for op in batch:
                assert op.build is not None
                start = len(pipe.command_stack)
                error: Exception | None = None
                try:
                    op.build(pipe)
                except Exception as exc:
                    # Take back whatever the broken builder queued; the op is skipped.
                    del pipe.command_stack[start:]
                    error = exc
                build_errors.append(error)
                spans.append((start, len(pipe.command_stack)))
            try:
                results = await pipe.execute(raise_on_error=False) if pipe.command_stack else []
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:
                if len(batch) == 1:
                    self._resolve(batch[0], exc)
                    return
                poisoned = exc
            else:
                poisoned = None
        if poisoned is not None:
            # Something in the batch broke the whole pipeline (e.g. a value the encoder
            # rejects). Apply the ops one by one so only the culprit is skipped.
            log.warning("store_writer_batch_isolating", size=len(batch), error=repr(poisoned))
            for op in batch:
                await self._apply_batch([op])
            return
        # Transient replies (READONLY, OOM, …) arrive per command with raise_on_error=False.
        for result in results:
            if isinstance(result, TRANSIENT_ERRORS):
                raise result
        for op, error, (start, end) in zip(batch, build_errors, spans, strict=True):
            if error is None:
                error = next((r for r in results[start:end] if isinstance(r, Exception)), None)
            self._resolve(op, error)

    def _resolve(self, op: StoreOp, error: BaseException | None) -> None:
        """Pop ``op`` (always the head) as applied or failed."""
        popped = self._queue.popleft()
        assert popped is op, "store writer resolved an op out of order"
        if error is None:
            self._written += 1
        else:
            self._failed += 1
            log.error(
                "store_op_failed",
                op=op.name,
                call_sid=op.call_sid,
                error=repr(error),
                failed_total=self._failed,
            )
        if not self._queue:
            self._idle.set()

    # -- logging helpers ------------------------------------------------------------------

    def _note_down(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._retries_at_down = self._retries - 1
            log.warning(
                "redis_unavailable",
                error=repr(exc),
                backlog=len(self._queue),
                head_op=self._queue[0].name if self._queue else None,
            )

    def _note_up(self) -> None:
        if self._down_since is not None:
            log.info(
                "redis_recovered",
                outage_s=round(time.monotonic() - self._down_since, 3),
                backlog=len(self._queue),
                retries=self._retries - self._retries_at_down,
                dropped_total=self._dropped,
            )
            self._down_since = None

    def _note_drop(self, op: StoreOp, reason: str) -> None:
        self._dropped += 1
        # Rate-limited: a full queue during an outage can refuse thousands of ops a second.
        now = time.monotonic()
        if now - self._last_drop_log >= self._drop_log_interval:
            log.warning(
                "store_op_dropped",
                reason=reason,
                op=op.name,
                call_sid=op.call_sid,
                dropped_total=self._dropped,
                dropped_since_last_log=self._dropped - self._dropped_at_last_log,
                pending=len(self._queue),
                max_pending=self._max_pending,
            )
            self._last_drop_log = now
            self._dropped_at_last_log = self._dropped
