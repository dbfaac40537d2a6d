"""The speech engine: shared models and worker pools (:class:`SpeechEngine`, one per server)
and each connection's share of it (:class:`EngineSession`, one per session, holding that
call's brain, its recent input audio and its transcription jobs).

Threads: transcription runs on a small pool (``stt_workers``, CPU-bound; Whisper already
uses every core), decisions on another (``brain_workers``; an LLM request mostly waits on
the network), and each reply's synthesis on its own thread (:class:`.background.Prefetch`).
Two pools, because a decision waits for its turn's transcript: in one pool, decisions could
occupy every worker while the transcriptions they wait for sit in the queue.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import structlog

from service.audio.vad import EnergyVad, VadParams
from service.modelserver.engine.background import Prefetch, Waker
from service.modelserver.engine.base import (
    Brain,
    BrainRequest,
    Decision,
    ReplyStream,
    SlotTranscriber,
    SpeechChunk,
    StopSignal,
    StreamingVoice,
    Transcriber,
    sentences,
)
from service.modelserver.engine.slots import Heard, Slot, slot_asked

__all__ = ["AudioRing", "EngineSession", "SpeechEngine"]

log = structlog.get_logger(__name__)

TRANSCRIPT_TIMEOUT_S = 30.0


class SpeechEngine:
    """Models and pools shared by every session of a server.

    ``vad``: "silero" (default) or "energy". ``early_stt_ms``: once the caller has paused
    this long, transcription starts on what was said so far; if the pause becomes the end
    of the turn (``silence_duration_ms``, 500 ms by default) the transcript is ready sooner
    by the difference. None turns it off.
    """

    def __init__(
        self,
        *,
        transcriber: Transcriber,
        voice: StreamingVoice,
        brain_factory: Callable[[], Brain],
        vad: str = "silero",
        early_stt_ms: int | None = 200,
        max_turn_s: float = 30.0,
        stt_workers: int = 1,
        brain_workers: int = 4,
    ) -> None:
        self.transcriber = transcriber
        self.voice = voice
        self.brain_factory = brain_factory
        self.vad = vad
        self.early_stt_ms = early_stt_ms
        self.max_turn_s = max_turn_s
        self._stt = ThreadPoolExecutor(stt_workers, thread_name_prefix="local-stt")
        self._brain = ThreadPoolExecutor(brain_workers, thread_name_prefix="local-brain")

    def attach(self) -> EngineSession:
        """A new session's share: its own brain and audio memory."""
        return EngineSession(self, self.brain_factory())

    def make_vad(self, rate: int, params: VadParams | None, start_ms: float) -> EnergyVad:
        if self.vad == "silero":
            from service.modelserver.engine.silero import SileroVad

            return SileroVad(rate, params, start_ms=start_ms)
        return EnergyVad(rate, params, start_ms=start_ms)

    def warm(self) -> None:
        """Load every model now (a first call would otherwise wait ~2 s for them)."""
        for part in (self.transcriber, self.voice):
            warm = getattr(part, "warm", None)
            if warm is not None:
                warm()
        if self.vad == "silero":
            self.make_vad(16_000, None, 0.0)

    def close(self) -> None:
        self._stt.shutdown(wait=False, cancel_futures=True)
        self._brain.shutdown(wait=False, cancel_futures=True)


class AudioRing:
    """The last ``seconds`` of input PCM16 at ``rate``, addressed by the input clock (ms).
    Memory: at most ``rate * seconds * 2`` bytes (30 s at 24 kHz: 1.4 MB)."""

    def __init__(self, rate: int, origin_ms: float, seconds: float) -> None:
        self.rate = rate
        self.origin_ms = origin_ms
        self.limit = int(rate * seconds) * 2
        self.data = bytearray()
        self.dropped = 0  # bytes trimmed from the front

    def append(self, pcm: bytes) -> None:
        self.data += pcm
        excess = len(self.data) - self.limit
        if excess > 0:
            excess += excess % 2
            del self.data[:excess]
            self.dropped += excess

    def slice(self, start_ms: float, end_ms: float) -> bytes:
        def index(ms: float) -> int:
            byte = int((ms - self.origin_ms) * self.rate / 1000) * 2 - self.dropped
            return min(len(self.data), max(0, byte))

        return bytes(self.data[index(start_ms) : index(end_ms)])


class EngineSession:
    """One session's use of the engine. Created and used on the event loop thread; work it
    starts runs on the engine's threads and reports back through ``wake``."""

    def __init__(self, engine: SpeechEngine, brain: Brain) -> None:
        self.engine = engine
        self.brain = brain
        self.wake: Waker = lambda: None  # the server's wake-up (set by the session)
        self._brain_lock = threading.Lock()  # a cancelled decision may still be running
        self.ring: AudioRing | None = None
        self.transcripts: dict[str, Future[Heard]] = {}  # item id → transcript (newest ~16)
        self._reported: set[str] = set()
        self._early: tuple[float, float, Future[Heard]] | None = None  # (start, end, job)
        # What the agent last said: a question for a number makes the next turn a slot.
        self.said = ""

    # -- input audio ------------------------------------------------------------------------
    def capture(self, pcm: bytes, rate: int, now_ms: float) -> None:
        """Keep the caller's audio (``now_ms``: input clock at the end of ``pcm``)."""
        if self.ring is None or self.ring.rate != rate:
            start = now_ms - len(pcm) / 2 * 1000.0 / rate
            self.ring = AudioRing(rate, start, self.engine.max_turn_s)
        self.ring.append(pcm)

    def _transcribe(self, start_ms: float, end_ms: float) -> Future[Heard]:
        ring = self.ring
        pcm = ring.slice(start_ms, end_ms) if ring else b""
        rate = ring.rate if ring else 16_000
        job = self.engine._stt.submit(self._hear, pcm, rate, slot_asked(self.said))
        job.add_done_callback(lambda _job: self.wake())
        return job

    def _hear(self, pcm: bytes, rate: int, slot: Slot | None) -> Heard:
        transcriber = self.engine.transcriber
        if isinstance(transcriber, SlotTranscriber):
            return transcriber.hear(pcm, rate, slot)
        return Heard(transcriber.transcribe(pcm, rate))

    def pause(self, start_ms: float, now_ms: float, silence_ms: int) -> None:
        """The caller has been quiet ``silence_ms`` within a turn that began at ``start_ms``:
        start transcribing early (once per pause)."""
        early = self.engine.early_stt_ms
        if early is None or silence_ms < early or self._early is not None:
            return
        self._early = (start_ms, now_ms, self._transcribe(start_ms, now_ms))

    def resumed(self) -> None:
        """Speech went on after a pause: an early transcript would miss words."""
        if self._early is not None:
            self._early[2].cancel()
            self._early = None

    def commit(self, item_id: str, start_ms: float, end_ms: float, speech_end_ms: float) -> None:
        """A user audio item was committed: transcribe it (or reuse the early job, if that
        one already covered all of the speech)."""
        early, self._early = self._early, None
        if early is not None and early[0] == start_ms and speech_end_ms <= early[1]:
            job = early[2]
        else:
            if early is not None:
                early[2].cancel()
            job = self._transcribe(start_ms, end_ms)
        self.transcripts[item_id] = job
        while len(self.transcripts) > 16:  # only recent turns are ever waited for
            oldest = next(iter(self.transcripts))
            self.transcripts.pop(oldest)
            self._reported.discard(oldest)

    def finished_transcripts(self) -> list[tuple[str, str | None]]:
        """(item id, transcript or None if it failed) for jobs done since last asked."""
        out = []
        for item_id, job in self.transcripts.items():
            if item_id not in self._reported and job.done():
                self._reported.add(item_id)
                failed = job.cancelled() or job.exception() is not None
                out.append((item_id, None if failed else job.result().text))
        return out

    # -- responses --------------------------------------------------------------------------
    def plan(self, request: BrainRequest) -> Future[Decision]:
        """Decide the response on the brain pool, once the transcripts it needs are in."""
        pending = {
            item["id"]: self.transcripts[item["id"]]
            for item in request.items
            if item["id"] in self.transcripts
        }
        job = self.engine._brain.submit(self._decide, request, pending)
        job.add_done_callback(lambda _job: self.wake())
        return job

    def _decide(self, request: BrainRequest, pending: dict[str, Future[Heard]]) -> Decision:
        heard: dict[str, str] = {}
        unsure: set[str] = set()
        for item_id, job in pending.items():
            try:
                result = job.result(timeout=TRANSCRIPT_TIMEOUT_S)
            except Exception as exc:  # cancelled or failed: the brain hears nothing
                log.warning("realtime_local.engine.transcript_missing", error=repr(exc))
                result = Heard("")
            heard[item_id] = result.text
            if not result.confident:
                unsure.add(item_id)
        items = tuple(_with_transcript(item, heard) for item in request.items)
        last = request.request.last_user_item
        if last is not None:
            last = _with_transcript(last, heard)
        asked = replace(request.request, last_user_item=last)
        request = replace(request, items=items, request=asked, unsure=frozenset(unsure))
        with self._brain_lock:
            return self.brain.decide(request)

    def speak(self, text: str | ReplyStream, rate: int) -> Prefetch[SpeechChunk]:
        """Synthesize ``text`` (or a reply still arriving, each sentence once it is
        complete) on a thread of its own; closing the result stops synthesis mid-sentence
        (:class:`StopSignal`)."""
        stop = StopSignal()
        if isinstance(text, str):
            self.said = text  # now: the caller may answer before synthesis ends
            texts: Iterator[str] = iter([text])
        else:
            self.said = ""
            texts = self._noted(sentences(text))
        return Prefetch(lambda: self._voice(texts, rate, stop), self.wake, on_close=stop.stop)

    def read(self, reply: ReplyStream) -> Future[str]:
        """All of a streamed reply's text, read on the brain pool (text-only responses)."""
        job = self.engine._brain.submit(lambda: "".join(reply))
        job.add_done_callback(lambda _job: self.wake())
        return job

    def _noted(self, texts: Iterator[str]) -> Iterator[str]:
        for text in texts:
            self.said = f"{self.said} {text}".strip()
            yield text

    def _voice(self, texts: Iterator[str], rate: int, stop: StopSignal) -> Iterator[SpeechChunk]:
        for text in texts:
            if stop.stopped:
                return
            yield from self.engine.voice.stream(text, rate, stop)

    def close(self) -> None:
        self.resumed()
        for job in self.transcripts.values():
            job.cancel()
        close = getattr(self.brain, "close", None)
        if close is not None:
            close()


def _with_transcript(item: dict[str, Any], heard: dict[str, str]) -> dict[str, Any]:
    if item.get("id") not in heard:
        return item
    item = copy.deepcopy(item)
    for part in item.get("content") or []:
        if part.get("type") == "input_audio":
            part["transcript"] = heard[item["id"]]
    return item
