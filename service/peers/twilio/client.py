"""Softphone: a client that behaves like Twilio toward our server (protocols.md A).

One :class:`Softphone` is one inbound phone call:

1. POST the voice webhook with Twilio's inbound-call parameters, signed (A.4, A.5).
2. Parse the TwiML: ``<Connect><Stream url>`` + ``<Parameter>``s, and the fallback verbs after
   ``</Connect>`` (A.1).
3. Open the WebSocket (upgrade signed over the ``wss://`` URL as written in the TwiML, A.4),
   send ``connected`` + ``start`` (A.2).
4. Stream caller audio in real time (20 ms μ-law frames) while receiving ``media``/``mark``/
   ``clear`` (A.3) into a :class:`~service.peers.twilio.playback.PlaybackBuffer` that is drained at
   real-time speed, echoing marks when played or cleared.
5. Hang up: ``stop`` + close — or notice the server closed first (the fallback TwiML would run).
6. Optionally POST the ``completed`` status callback (A.5).

Everything is per-instance (no globals) so a load generator can run hundreds in one process
and share one ``httpx.AsyncClient``. Every wait is bounded: HTTP and WebSocket-open timeouts,
and the call ends after ``seconds`` at the latest.

Memory per call: the caller audio to send (a WAV is decoded up front: 8 KB per second of audio,
plus whatever :meth:`Softphone.speak` queues), the playback queue (bounded by
``max_buffered_ms``), one mark record per server mark (capped, see ``playback.py``), and a
bounded invalid-message counter. The recording streams to disk.
"""

from __future__ import annotations

import asyncio
import math
import time
import wave
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import structlog
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.protocol import State

from service.audio.g711 import ULAW_SILENCE, pcm16_to_ulaw, ulaw_to_pcm16
from service.audio.wav import clip_to_8k, load_wav_as_ulaw
from service.peers.twilio.media import (
    FRAME_BYTES,
    FRAME_MS,
    InvalidServerMessage,
    ServerClear,
    ServerMark,
    ServerMedia,
    TwilioStreamWriter,
    new_sid,
    parse_server_message,
)
from service.peers.twilio.playback import BYTES_PER_MS, MarkRecord, PlaybackBuffer
from service.peers.twilio.summary import CallSummary
from service.peers.twilio.twiml import (
    SoftphoneError,
    TwimlPlan,
    TwimlVerb,
    default_connect_url,
    parse_twiml,
)

__all__ = [
    "CallSummary",
    "Softphone",
    "SoftphoneError",
    "TwimlPlan",
    "TwimlVerb",
    "load_wav_as_ulaw",
    "parse_dtmf_schedule",
    "parse_twiml",
    "place_call",
]

log = structlog.get_logger(__name__)

FRAME_S = FRAME_MS / 1000
_SILENCE_FRAME = bytes([ULAW_SILENCE]) * FRAME_BYTES
_DTMF_DIGITS = frozenset("0123456789*#ABCD")
_MAX_INVALID_REASONS = 32  # distinct reason labels kept; labels are fixed strings anyway


def parse_dtmf_schedule(spec: str) -> list[tuple[float, str]]:
    """CLI helper: ``"1.5:12#,4:9"`` → ``[(1.5, "12#"), (4.0, "9")]``.

    Times are seconds from stream start.
    """
    schedule: list[tuple[float, str]] = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        at, _, digits = item.partition(":")
        if not digits or set(digits) - _DTMF_DIGITS:
            raise ValueError(f"bad DTMF schedule item {item!r}; expected SECONDS:DIGITS")
        schedule.append((float(at), digits))
    return sorted(schedule)


# ---------------------------------------------------------------------------- the softphone
ServerMessageHook = Callable[[dict[str, Any]], Awaitable[None]]


class Softphone:
    """One Twilio-like inbound call against ``base_url`` (see the module docstring).

    Typical use is ``summary = await Softphone(url, seconds=2).run()``. Scripted tests can
    instead drive the phases themselves — ``await sp.dial()``, ``await sp.connect()``, then
    :meth:`speak`, :meth:`send_dtmf`, :meth:`wait_for`, and finally :meth:`hangup` +
    ``await sp.finished()`` — or run :meth:`run` in a task and interact with it concurrently.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth_token: str | None = None,
        public_url: str | None = None,
        connect_url: str | Callable[[str], str] | None = None,
        account_sid: str | None = None,
        from_number: str = "+15005550006",
        to_number: str = "+15005550001",
        audio: str | Path | None = None,
        seconds: float | None = None,
        record: str | Path | None = None,
        dtmf: Sequence[tuple[float, str]] = (),
        on_server_message: ServerMessageHook | None = None,
        status_callback: bool = False,
        http_client: httpx.AsyncClient | None = None,
        http_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        close_timeout: float = 2.0,
        max_buffered_ms: float = 600_000,
        voice_path: str = "/twilio/voice",
        status_path: str = "/twilio/status",
        direction: str = "inbound",
        call_sid: str | None = None,
    ) -> None:
        """
        Args:
            base_url: where the server really listens, e.g. ``http://127.0.0.1:8080``.
            auth_token: sign webhooks and the WS upgrade (A.4); unsigned when None.
            public_url: the URL the server believes is its public base (signatures are over
                it, A.4); defaults to ``base_url``.
            connect_url: WS URL to really dial, or a function of the TwiML Stream url;
                default :func:`default_connect_url`.
            audio: a 16-bit WAV to speak as the caller (resampled to 8 kHz μ-law).
            seconds: hard call length. If None, the call ends when ``audio`` has been sent.
            record: write what the caller "heard" (played agent audio + silence gaps) to this
                8 kHz 16-bit mono WAV.
            dtmf: ``[(at_seconds_from_stream_start, digits), ...]``.
            on_server_message: awaited with each JSON object the server sends, after the
                softphone handled it. It runs inline in the receive loop: keep it quick.
            status_callback: POST the ``completed`` status callback after the call (A.5).
            http_client: share one client across many softphones (load tests).
            direction: ``inbound``, or ``outbound-api`` for a call placed through the REST
                API (the REST stand-in answers as the callee).
            call_sid: the CallSid to use (the REST stand-in's); a new one when None.
        """
        if seconds is None and audio is None:
            raise ValueError("give `seconds`, `audio`, or both (the call must end)")
        self.base_url = base_url.rstrip("/")
        self.public_url = (public_url or base_url).rstrip("/")
        self.auth_token = auth_token
        self._validator = RequestValidator(auth_token) if auth_token else None
        self._connect_url = connect_url
        self.account_sid = account_sid or new_sid("AC")
        self.call_sid = call_sid or new_sid("CA")
        self.direction = direction
        self.stream_sid = new_sid("MZ")
        self.from_number = from_number
        self.to_number = to_number
        self.seconds = seconds
        self.record_path = Path(record) if record is not None else None
        self.dtmf_schedule = sorted(dtmf)
        for _, digits in self.dtmf_schedule:
            if set(digits) - _DTMF_DIGITS:
                raise ValueError(f"not DTMF digits: {digits!r}")
        self.on_server_message = on_server_message
        self.status_callback = status_callback
        self.http_timeout = http_timeout
        self.connect_timeout = connect_timeout
        self.close_timeout = close_timeout
        self.voice_path = voice_path
        self.status_path = status_path
        self._http = http_client
        self._own_http = http_client is None

        self.writer = TwilioStreamWriter(
            stream_sid=self.stream_sid, account_sid=self.account_sid, call_sid=self.call_sid
        )
        self.playback = PlaybackBuffer(max_buffered_ms=max_buffered_ms)
        # Caller audio waiting to be sent in place of silence (μ-law). bytearray: deleting
        # from the front is amortised O(1) in CPython.
        self._outbox = bytearray(load_wav_as_ulaw(audio) if audio is not None else b"")
        self._audio_ends_call = seconds is None

        self.plan: TwimlPlan | None = None
        self._ws: ClientConnection | None = None
        self._t0: float | None = None  # loop.time() of stream start (after `start` was sent)
        self._answered_at: float | None = None
        self._ticks = 0  # playback ticks done (20 ms each)
        self._record: wave.Wave_write | None = None
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._hangup = asyncio.Event()
        self._stopping = False  # we are hanging up: a close now is ours, not the server's
        self._finished = asyncio.Event()
        self._shutdown_started = False
        self._changed = asyncio.Event()
        self._summary: CallSummary | None = None

        # Counters.
        self.frames_sent = 0
        self.frames_received = 0
        self.bytes_received = 0
        self.marks_received = 0
        self.dtmf_sent = 0
        self.invalid_messages = 0
        self.invalid_reasons: Counter[str] = Counter()
        self.closed_by: Literal["softphone", "server"] | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.status_callback_code: int | None = None

    # ------------------------------------------------------------------ whole call
    async def run(self) -> CallSummary:
        """Dial, stream until ``seconds`` / end of audio / server close, hang up, summarise."""
        try:
            await self.dial()
            await self.connect()
            await self.finished()
        finally:
            await self._shutdown()
        return self.summary()

    def _call_parameters(self, status: str) -> dict[str, str]:
        """The parameters Twilio sends with every request about the call (A.5)."""
        return {
            "CallSid": self.call_sid,
            "AccountSid": self.account_sid,
            "From": self.from_number,
            "To": self.to_number,
            "Caller": self.from_number,
            "Called": self.to_number,
            "CallStatus": status,
            "Direction": self.direction,
            "ApiVersion": "2010-04-01",
        }

    async def dial(self) -> TwimlPlan:
        """POST the voice webhook as Twilio does for an inbound call (A.5) and parse the TwiML."""
        # A.5: the inbound webhook arrives with CallStatus ringing.
        # A.5: the inbound webhook arrives with CallStatus ringing; an answered outbound-api
        # call's with in-progress.
        params = self._call_parameters("ringing" if self.direction == "inbound" else "in-progress")
        resp = await self._post(self.voice_path, params)
        if resp.status_code != 200:
            raise SoftphoneError(f"voice webhook returned HTTP {resp.status_code} (Twilio 11200)")
        self.plan = parse_twiml(resp.content, public_url=self.public_url)
        ctype = resp.headers.get("content-type", "")
        if "xml" not in ctype:
            self.plan.warnings.append(f"TwiML served as {ctype!r}, expected text/xml")
        self._answered_at = time.monotonic()
        log.debug("softphone.dialed", call_sid=self.call_sid, stream_url=self.plan.stream_url)
        return self.plan

    async def connect(self) -> None:
        """Open the stream WebSocket, send ``connected`` + ``start``, start the call's tasks."""
        if self.plan is None:
            raise RuntimeError("dial() first")
        stream_url = self.plan.stream_url
        if callable(self._connect_url):
            url = self._connect_url(stream_url)
        else:
            url = self._connect_url or default_connect_url(self.base_url, stream_url)
        headers: dict[str, str] = {}
        if self._validator is not None:
            # A.4: upgrade signed over the wss:// URL as written in the TwiML, empty params.
            headers["X-Twilio-Signature"] = self._validator.compute_signature(stream_url, {})
        try:
            self._ws = await connect(
                url,
                additional_headers=headers,
                compression=None,  # base64 μ-law barely compresses; deflate only costs CPU
                open_timeout=self.connect_timeout,
                close_timeout=self.close_timeout,
                ping_interval=None,  # Twilio's keepalive behaviour is undocumented; send none
                max_queue=64,  # bounded receive buffer (frames), backpressure beyond that
            )
        except InvalidStatus as exc:
            code = exc.response.status_code
            raise SoftphoneError(f"WS handshake got HTTP {code}, not 101 (Twilio 31920)") from exc
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            raise SoftphoneError(f"WS connect to {url} failed: {exc!r} (Twilio 31901)") from exc

        await self._ws.send(TwilioStreamWriter.connected(), text=True)  # A.2
        await self._ws.send(self.writer.start(self.plan.parameters), text=True)  # A.2
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        if self.record_path is not None:
            self._record = wave.open(str(self.record_path), "wb")
            self._record.setnchannels(1)
            self._record.setsampwidth(2)
            self._record.setframerate(8000)
        self._tasks = {
            "send": asyncio.create_task(self._send_loop()),
            "receive": asyncio.create_task(self._receive_loop()),
            "playback": asyncio.create_task(self._playback_loop()),
            "hangup": asyncio.create_task(self._hangup.wait()),
        }
        if self.dtmf_schedule:
            self._tasks["dtmf"] = asyncio.create_task(self._dtmf_loop())
        log.debug("softphone.connected", call_sid=self.call_sid, url=url)

    async def finished(self) -> CallSummary:
        """Wait until the call ends (``seconds``, end of audio, hangup(), or server close)."""
        if self._finished.is_set():
            return self.summary()
        if not self._tasks:
            raise RuntimeError("connect() first")
        enders = [self._tasks["send"], self._tasks["receive"], self._tasks["hangup"]]
        # The send loop ends by itself after `seconds`; the extra margin is only a safety net.
        limit = None if self.seconds is None else self.seconds + self.close_timeout + 5
        await asyncio.wait(enders, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        await self._shutdown()
        # Surface failures of our own tasks or of the on_server_message hook.
        for task in self._tasks.values():
            if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
                raise exc
        return self.summary()

    def hangup(self) -> None:
        """End the call now (the caller hangs up): ``stop`` + close, like Twilio (A.2)."""
        self._hangup.set()

    # ------------------------------------------------------------------ caller actions
    def speak(
        self,
        audio: bytes,
        *,
        encoding: Literal["pcm16", "ulaw"] = "pcm16",
        sample_rate: int = 8000,
    ) -> float:
        """Queue caller audio, sent in real time in place of silence after anything queued.

        ``pcm16`` is little-endian mono at ``sample_rate`` (resampled to 8 kHz). Returns the
        ms queued. Memory: the queue is bounded only by what the caller passes (8 KB/s).
        """
        if encoding == "pcm16":
            audio = pcm16_to_ulaw(clip_to_8k(audio[: len(audio) & ~1], sample_rate))
        self._outbox += audio
        return len(audio) / BYTES_PER_MS

    @property
    def caller_ms_pending(self) -> float:
        """Caller audio queued but not yet sent."""
        return len(self._outbox) / BYTES_PER_MS

    async def send_dtmf(self, digits: str) -> None:
        """One ``dtmf`` message per digit (A.2)."""
        if set(digits) - _DTMF_DIGITS:
            raise ValueError(f"not DTMF digits: {digits!r}")
        for digit in digits:
            if await self._send(self.writer.dtmf(digit)):
                self.dtmf_sent += 1
        self._notify()

    # ------------------------------------------------------------------ observation
    @property
    def elapsed(self) -> float:
        """Seconds since stream start (0 before connect)."""
        if self._t0 is None:
            return 0.0
        return asyncio.get_running_loop().time() - self._t0

    # A mandatory ``timeout`` argument (rather than the caller's own asyncio.timeout) is on
    # purpose: every wait in a scripted call must be bounded.
    async def wait_for(
        self,
        predicate: Callable[[Softphone], bool],
        timeout: float,  # noqa: ASYNC109
    ) -> None:
        """Wait until ``predicate(self)`` is true; re-checked on every state change.

        Raises ``TimeoutError`` after ``timeout`` s. Also returns (if the predicate holds) or
        raises once the call has ended and nothing can change any more.
        """
        async with asyncio.timeout(timeout):
            while not predicate(self):
                if self._finished.is_set():
                    raise TimeoutError("call ended before the condition held")
                await self._changed.wait()

    async def wait_for_mark(self, name: str, timeout: float) -> MarkRecord:  # noqa: ASYNC109
        """Wait until the server's mark ``name`` has been echoed; return its record."""

        def echoed(sp: Softphone) -> bool:
            return any(
                m.name == name and m.played_ms_at_echo is not None for m in sp.playback.mark_records
            )

        await self.wait_for(echoed, timeout)
        return next(m for m in self.playback.mark_records if m.name == name)

    async def wait_for_agent_audio(self, ms: float, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until at least ``ms`` of agent audio has been received."""
        await self.wait_for(lambda sp: sp.bytes_received >= ms * BYTES_PER_MS, timeout)

    def summary(self) -> CallSummary:
        """A snapshot (final once the call has ended)."""
        if self._summary is not None:
            return self._summary
        plan = self.plan
        fallback = list(plan.fallback_verbs) if plan else []
        end = time.monotonic() if self._answered_at is not None else 0.0
        return CallSummary(
            call_sid=self.call_sid,
            stream_sid=self.stream_sid,
            frames_sent=self.frames_sent,
            ms_sent=self.frames_sent * FRAME_MS,
            frames_received=self.frames_received,
            ms_received=self.bytes_received / BYTES_PER_MS,
            ms_played=self.playback.played_ms,
            ms_dropped_by_clear=self.playback.cleared_ms,
            ms_overflow=self.playback.overflow_bytes / BYTES_PER_MS,
            marks_received=self.marks_received,
            marks_echoed=self.playback.marks_echoed,
            clears=self.playback.clears,
            dtmf_sent=self.dtmf_sent,
            invalid_messages=self.invalid_messages,
            invalid_reasons=dict(self.invalid_reasons),
            closed_by=self.closed_by,
            close_code=self.close_code,
            close_reason=self.close_reason,
            fallback_verbs=fallback,
            fallback_would_run=self.closed_by == "server" and bool(fallback),
            twiml_parameters=dict(plan.parameters) if plan else {},
            twiml_warnings=list(plan.warnings) if plan else [],
            marks=list(self.playback.mark_records),
            marks_pending_at_end=self.playback.pending_mark_names,
            duration_s=end - self._answered_at if self._answered_at is not None else 0.0,
            status_callback_code=self.status_callback_code,
        )

    # ------------------------------------------------------------------ status callback
    async def post_status(
        self,
        status: str = "completed",
        sequence_number: int = 0,
        *,
        call_duration: int | None = None,
    ) -> httpx.Response:
        """POST a call-progress status callback (A.5). Callable out of order on purpose."""
        if call_duration is None and self._answered_at is not None:
            call_duration = math.ceil(time.monotonic() - self._answered_at)
        params = {
            **self._call_parameters(status),
            "SequenceNumber": str(sequence_number),  # A.5: from 0; may arrive out of order
            "Timestamp": format_datetime(datetime.now(UTC)),  # A.5: RFC 2822
            "CallbackSource": "call-progress-events",
        }
        if call_duration is not None:
            params["CallDuration"] = str(call_duration)
        return await self._post(self.status_path, params)

    # ------------------------------------------------------------------ internals
    async def _post(self, path: str, params: dict[str, str]) -> httpx.Response:
        headers = {"User-Agent": "TwilioProxy/1.1"}
        if self._validator is not None:
            # A.4: signature over the URL the server believes Twilio requested + sorted params.
            url_public = self.public_url + path
            headers["X-Twilio-Signature"] = self._validator.compute_signature(url_public, params)
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.http_timeout)
        try:
            return await self._http.post(
                self.base_url + path, data=params, headers=headers, timeout=self.http_timeout
            )
        except httpx.HTTPError as exc:
            raise SoftphoneError(f"POST {path} failed: {exc!r}") from exc

    async def _send(self, message: bytes) -> bool:
        """Send one text frame; False if the socket is already gone.

        No lock: for a single-frame message ``websockets`` writes to the transport before its
        first suspension point, so frames leave in the order their sequence numbers were
        assigned (build + send with no ``await`` in between).
        """
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(message, text=True)  # A.6: text frames only
        except ConnectionClosed:
            return False
        return True

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _send_loop(self) -> None:
        """Caller audio → ``media`` every 20 ms on an absolute clock (A.2).

        Frame i carries audio [20i, 20i+20) ms and leaves at t0 + 20(i+1) ms, when it would
        have been fully captured. Deadlines are computed from t0, so lateness never accumulates
        (a stall is followed by a catch-up burst, as a network hiccup would produce).
        """
        assert self._t0 is not None
        loop = asyncio.get_running_loop()
        n_max = None if self.seconds is None else round(self.seconds * 1000) // FRAME_MS
        i = 0
        while n_max is None or i < n_max:
            if self._audio_ends_call and not self._outbox:
                break  # no `seconds`: the call lasts as long as the WAV
            delay = self._t0 + (i + 1) * FRAME_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._outbox:
                frame = bytes(self._outbox[:FRAME_BYTES]).ljust(FRAME_BYTES, b"\xff")
                del self._outbox[:FRAME_BYTES]
            else:
                frame = _SILENCE_FRAME
            # A.2: timestamp = ms since stream start; chunk counted by the writer.
            if not await self._send(self.writer.media(frame, i * FRAME_MS)):
                # The server closed the socket: let the receive loop record how, so the call
                # is not mistaken for one we hung up.
                await asyncio.wait([self._tasks["receive"]], timeout=self.close_timeout + 1)
                return
            self.frames_sent += 1
            i += 1

    async def _receive_loop(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            async for frame in ws:
                if self._stopping:
                    continue  # after our `stop` nothing more is played or echoed
                await self._handle(frame)
        except ConnectionClosed:
            pass  # abnormal close (no close frame): still "the socket went away"
        if not self._stopping:
            # A.3/31921: the server closed the socket; for <Connect> the TwiML resumes.
            self.closed_by = "server"
            self.close_code, self.close_reason = ws.close_code, ws.close_reason
            log.info(
                "softphone.closed_by_server",
                call_sid=self.call_sid,
                code=self.close_code,
                reason=self.close_reason,
            )
        self._notify()

    async def _handle(self, frame: str | bytes) -> None:
        msg = parse_server_message(frame, self.stream_sid)
        if isinstance(msg, ServerMedia):
            self.frames_received += 1
            self.bytes_received += len(msg.ulaw)
            self.playback.enqueue_audio(msg.ulaw)  # A.3: queued, played in order
        elif isinstance(msg, ServerMark):
            self.marks_received += 1
            for name in self.playback.enqueue_mark(msg.name):  # A.3: due now if queue empty
                await self._send(self.writer.mark(name))
        elif isinstance(msg, ServerClear):
            # A.3: flush buffered audio, echo every pending mark right away.
            for name in self.playback.clear():
                await self._send(self.writer.mark(name))
        else:
            self._count_invalid(msg)
        self._notify()
        raw = msg.raw
        if self.on_server_message is not None and raw is not None:
            await self.on_server_message(raw)

    def _count_invalid(self, msg: InvalidServerMessage) -> None:
        self.invalid_messages += 1
        if msg.reason in self.invalid_reasons or len(self.invalid_reasons) < _MAX_INVALID_REASONS:
            self.invalid_reasons[msg.reason] += 1
        log.debug("softphone.invalid_message", call_sid=self.call_sid, reason=msg.reason)

    async def _playback_loop(self) -> None:
        """Drain the playback queue at real time: 160 bytes per 20 ms tick, absolute clock."""
        assert self._t0 is not None
        loop = asyncio.get_running_loop()
        while True:
            delay = self._t0 + (self._ticks + 1) * FRAME_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._play_until(loop.time())

    async def _play_until(self, now: float) -> None:
        assert self._t0 is not None
        # Ticks whose end time has passed; the epsilon absorbs float error at exact deadlines.
        due = int((now - self._t0) / FRAME_S + 1e-6)
        changed = False
        while self._ticks < due:
            audio, marks = self.playback.advance(FRAME_BYTES)
            self._ticks += 1
            if self._record is not None:
                # Pad with silence so the recording keeps a true timeline.
                self._record.writeframesraw(
                    ulaw_to_pcm16(audio + _SILENCE_FRAME[: FRAME_BYTES - len(audio)])
                )
            for name in marks:
                await self._send(self.writer.mark(name))  # A.3: echoed when playback reaches it
            changed = changed or bool(audio or marks)
        if changed:
            self._notify()

    async def _dtmf_loop(self) -> None:
        assert self._t0 is not None
        loop = asyncio.get_running_loop()
        for at, digits in self.dtmf_schedule:
            delay = self._t0 + at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.send_dtmf(digits)

    async def _shutdown(self) -> None:
        """Idempotent teardown: stop tasks, send ``stop`` + close if we end the call."""
        if self._shutdown_started:
            await self._finished.wait()
            return
        self._shutdown_started = True
        loop = asyncio.get_running_loop()
        end = loop.time()
        for name in ("send", "playback", "dtmf", "hangup"):
            task = self._tasks.get(name)
            if task is not None and not task.done():
                task.cancel()
        await asyncio.gather(
            *(t for n, t in self._tasks.items() if n != "receive"), return_exceptions=True
        )
        ws = self._ws
        receive = self._tasks.get("receive")
        if ws is not None and self.closed_by is None and ws.state is not State.OPEN:
            # The server is closing/has closed and the receive loop has not noticed yet.
            if receive is not None:
                await asyncio.wait([receive], timeout=self.close_timeout + 1)
        if ws is not None and self.closed_by is None:
            if self._t0 is not None:
                # Play up to the hang-up instant so the record and echoes are exact.
                await self._play_until(end)
            self._stopping = True
            self.closed_by = "softphone"
            await self._send(self.writer.stop())  # A.2 `stop`: the call ended
            await ws.close()  # bounded by close_timeout
            self.close_code, self.close_reason = ws.close_code, ws.close_reason
        if receive is not None and not receive.done():
            # Its exceptions (e.g. from on_server_message) are re-raised by finished().
            await asyncio.wait([receive], timeout=self.close_timeout + 1)
            if not receive.done():
                receive.cancel()
                await asyncio.gather(receive, return_exceptions=True)
        if self._record is not None:
            self._record.close()  # patches the WAV header with the final length
            self._record = None
        try:
            if self.status_callback and self._answered_at is not None:
                # A.5: only `completed` is subscribed by default, so it is callback number 0.
                resp = await self.post_status("completed", 0)
                self.status_callback_code = resp.status_code
        except SoftphoneError as exc:
            log.warning("softphone.status_callback_failed", call_sid=self.call_sid, error=str(exc))
        finally:
            if self._own_http and self._http is not None:
                await self._http.aclose()
                self._http = None
            self._summary = self.summary()
            self._finished.set()
            self._notify()
            log.info(
                "softphone.call_ended",
                call_sid=self.call_sid,
                closed_by=self.closed_by,
                ms_played=self.playback.played_ms,
                invalid=self.invalid_messages,
            )


async def place_call(base_url: str, **kwargs: Any) -> CallSummary:
    """One call, start to finish: ``Softphone(base_url, **kwargs).run()``."""
    return await Softphone(base_url, **kwargs).run()
