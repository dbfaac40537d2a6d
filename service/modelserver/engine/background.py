"""Running engine work off the event loop: a streaming producer kept a bounded distance
ahead of its reader, and a wake-up callback so the sans-I/O session learns when to tick.

The session never blocks: it polls (:meth:`Prefetch.poll`, ``Future.done``) and the server
sleeps until a message, a pacing deadline, or a ``wake()`` from here.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import structlog

__all__ = ["END", "PENDING", "Prefetch", "Waker"]

log = structlog.get_logger(__name__)

T = TypeVar("T")
Waker = Callable[[], None]


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


PENDING = _Marker("PENDING")  # nothing yet: come back after a wake-up
END = _Marker("END")  # the producer finished (or failed: see Prefetch.error)


class Prefetch(Generic[T]):
    """Consume ``produce()`` on its own daemon thread, at most ``ahead`` items ahead.

    Why ``ahead`` is small: for speech, synthesis should stay just ahead of what was sent,
    so a barge-in (``close``) leaves the rest of the reply unsynthesized — no CPU spent on
    words nobody hears. Memory: at most ``ahead`` items plus the one being produced.
    A dedicated thread (not a pool) because the producer waits on its reader for as long as
    the reply plays; a pool slot held that long would starve transcription.
    """

    def __init__(
        self,
        produce: Callable[[], Iterator[T]],
        wake: Waker,
        ahead: int = 1,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._produce = produce
        self._on_close = on_close  # aborts the item in progress (e.g. StopSignal.stop)
        self._wake = wake
        self._ahead = max(1, ahead)
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._done = False
        self._closed = False
        self.error: BaseException | None = None
        self.produced = 0  # items the producer made (tests: a barge-in stops synthesis)
        self.ended_at: float | None = None  # time.monotonic() when the producer stopped
        self._thread = threading.Thread(target=self._work, name="local-engine-prefetch")
        self._thread.daemon = True
        self._thread.start()

    def _work(self) -> None:
        source: Iterator[T] | None = None
        try:
            source = self._produce()
            while True:
                with self._cond:
                    while len(self._items) >= self._ahead and not self._closed:
                        self._cond.wait()
                    if self._closed:
                        break
                item = next(source, END)  # produced outside the lock: this is the slow part
                if item is END:
                    break
                with self._cond:
                    if self._closed:
                        break
                    self._items.append(item)  # type: ignore[arg-type]
                    self.produced += 1
                self._wake()
        except Exception as exc:
            self.error = exc
            log.exception("realtime_local.engine.producer_failed")
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # a generator's finally (e.g. releasing the TTS model) runs now
            with self._cond:
                self._done = True
                self.ended_at = time.monotonic()
                self._cond.notify_all()
            self._wake()

    def poll(self) -> T | _Marker:
        """The next item, :data:`PENDING`, or :data:`END`."""
        with self._cond:
            if self._items:
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            return END if self._done else PENDING

    def ready(self) -> bool:
        """True when :meth:`poll` would not return :data:`PENDING`."""
        with self._cond:
            return bool(self._items) or self._done

    def close(self) -> None:
        """Stop producing and drop what was buffered; ``on_close`` aborts the item in
        progress (without it, production stops after that item)."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()
        if self._on_close is not None:
            self._on_close()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the producer thread to end (tests); True if it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()
