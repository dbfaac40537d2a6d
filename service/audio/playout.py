"""Sans-I/O playout queue: Twilio's outbound queue (protocols.md A.3), and the one a carrier
edge keeps when it puts audio on the wire itself (SIP).

The worker sends μ-law and marks; an edge that plays the audio (rather than a carrier doing it,
as Twilio does, protocols.md A.3) must keep the same promises: audio is played in order at real
time; a mark is echoed when playback reaches it, or at once if nothing is queued ahead of it;
a clear drops all queued audio and echoes every pending mark right away. This module is that
queue and nothing else: no clock, no sockets. The edge's pacer calls :meth:`PlayoutBuffer.advance`
once per packet it sends, so "played" means "put on the wire".

It lives in ``audio`` (the bottom layer) because both sides need it: the SIP edge
(``service.telephony.playout``) and the Twilio softphone peer (``service.peers.twilio.playback``),
which may not import the product's edges.

μ-law at 8 kHz is one byte per sample, so 8 bytes = 1 ms.

Memory per call: queued audio is bounded by ``max_buffered_ms`` (default 10 minutes = 4.8 MB);
audio beyond it is dropped and counted in ``overflow_bytes``. Pending marks are one small entry
each; per-mark records are capped at ``max_mark_records`` (oldest dropped first).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["BYTES_PER_MS", "MarkRecord", "PlayoutBuffer"]

BYTES_PER_MS = 8  # μ-law 8 kHz mono: 8000 bytes/s (protocols.md A.2 mediaFormat)


@dataclass(slots=True)
class MarkRecord:
    """What happened to one mark the server sent."""

    name: str
    enqueued_at_played_ms: float  # playback position when the mark arrived
    played_ms_at_echo: float | None = None  # playback position when echoed; None = pending
    cleared: bool = False  # echoed because of a ``clear``, i.e. NOT a proof of playback


class PlayoutBuffer:
    """One call's outbound queue: μ-law audio and marks, in arrival order.

    Invariant: the head of the queue is always audio (marks that become due are popped at
    once), so "nothing buffered ahead" is simply "queue empty".
    """

    def __init__(self, *, max_buffered_ms: float = 600_000, max_mark_records: int = 10_000) -> None:
        self.max_buffered_bytes = int(max_buffered_ms * BYTES_PER_MS)
        # Entries are bytes/memoryview (audio) or _Mark (a pending mark).
        self._queue: deque[memoryview | _Mark] = deque()
        self._head_offset = 0  # bytes already played from the head audio entry
        self.buffered_bytes = 0
        self.pending_marks = 0
        # Counters (monotonic).
        self.enqueued_bytes = 0
        self.played_bytes = 0
        self.cleared_bytes = 0
        self.overflow_bytes = 0
        self.marks_enqueued = 0
        self.marks_echoed = 0  # includes marks echoed because of clear
        self.marks_cleared = 0
        self.clears = 0
        self.mark_records: deque[MarkRecord] = deque(maxlen=max_mark_records)
        self.mark_records_dropped = 0

    # ------------------------------------------------------------------ properties
    @property
    def played_ms(self) -> float:
        return self.played_bytes / BYTES_PER_MS

    @property
    def buffered_ms(self) -> float:
        return self.buffered_bytes / BYTES_PER_MS

    @property
    def cleared_ms(self) -> float:
        return self.cleared_bytes / BYTES_PER_MS

    @property
    def pending_mark_names(self) -> list[str]:
        return [e.record.name for e in self._queue if isinstance(e, _Mark)]

    # ------------------------------------------------------------------ input
    def enqueue_audio(self, ulaw: bytes) -> int:
        """Queue μ-law bytes behind everything already queued (played in order).

        Returns the number of bytes accepted (less than ``len(ulaw)`` on overflow).
        """
        room = self.max_buffered_bytes - self.buffered_bytes
        accepted = ulaw if len(ulaw) <= room else ulaw[: max(room, 0)]
        self.overflow_bytes += len(ulaw) - len(accepted)
        if accepted:
            self._queue.append(memoryview(bytes(accepted)))
            self.buffered_bytes += len(accepted)
            self.enqueued_bytes += len(accepted)
        return len(accepted)

    def enqueue_mark(self, name: str) -> list[str]:
        """Queue a mark; returns ``[name]`` if it is due now (nothing buffered ahead)."""
        record = MarkRecord(name=name, enqueued_at_played_ms=self.played_ms)
        self._remember(record)
        self.marks_enqueued += 1
        if not self._queue:
            self._echo(record, cleared=False)
            return [name]
        self._queue.append(_Mark(record))
        self.pending_marks += 1
        return []

    # ------------------------------------------------------------------ time passes
    def advance(self, n_bytes: int) -> tuple[bytes, list[str]]:
        """Play up to ``n_bytes`` (8 bytes = 1 ms).

        Returns the audio actually played (shorter than ``n_bytes`` if the queue ran dry; the
        caller pads with silence) and the names of the marks reached, in order. A mark right
        after the last byte played is reached in this call, not the next one.
        """
        out = bytearray()
        reached: list[str] = []
        remaining = n_bytes
        while self._queue:
            head = self._queue[0]
            if isinstance(head, _Mark):
                self._queue.popleft()
                self.pending_marks -= 1
                self._echo(head.record, cleared=False)
                reached.append(head.record.name)
                continue
            if remaining <= 0:
                break
            available = len(head) - self._head_offset
            take = min(available, remaining)
            out += head[self._head_offset : self._head_offset + take]
            remaining -= take
            if take == available:
                self._queue.popleft()
                self._head_offset = 0
            else:
                self._head_offset += take
            self.buffered_bytes -= take
            self.played_bytes += take
        return bytes(out), reached

    def clear(self) -> list[str]:
        """Drop all buffered audio; return every pending mark, in order."""
        self.clears += 1
        self.cleared_bytes += self.buffered_bytes
        echoed: list[str] = []
        for entry in self._queue:
            if isinstance(entry, _Mark):
                self._echo(entry.record, cleared=True)
                self.marks_cleared += 1
                echoed.append(entry.record.name)
        self._queue.clear()
        self._head_offset = 0
        self.buffered_bytes = 0
        self.pending_marks = 0
        return echoed

    # ------------------------------------------------------------------ internals
    def _echo(self, record: MarkRecord, *, cleared: bool) -> None:
        record.played_ms_at_echo = self.played_ms
        record.cleared = cleared
        self.marks_echoed += 1

    def _remember(self, record: MarkRecord) -> None:
        if self.mark_records.maxlen is not None and len(self.mark_records) == (
            self.mark_records.maxlen
        ):
            self.mark_records_dropped += 1
        self.mark_records.append(record)


@dataclass(slots=True)
class _Mark:
    record: MarkRecord
