"""Softphone against a stand-in server on 127.0.0.1 that checks Twilio's wire format exactly.

The stand-in validates what the softphone sends (signatures per protocols.md A.4, message
shapes per A.2) and scripts what a voice agent would send back (A.3). Everything it finds wrong
is collected in ``state.errors`` and asserted in the test (assertions inside server handlers
would be swallowed by the ASGI server).
"""

from __future__ import annotations

import asyncio
import base64
import math
import socket
import struct
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from twilio.request_validator import RequestValidator

from service.audio.g711 import pcm16_to_ulaw
from service.peers.twilio import Softphone, SoftphoneError, parse_dtmf_schedule, parse_twiml
from service.peers.twilio.media import (
    InvalidServerMessage,
    ServerClear,
    ServerMark,
    ServerMedia,
    TwilioStreamWriter,
    parse_server_message,
)

pytestmark = pytest.mark.network  # real sockets on loopback (or a real Redis)

TOKEN = "test-auth-token"
PUBLIC = "https://example.test"
STREAM_URL = "wss://example.test/twilio/media"
TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
    f'<Stream url="{STREAM_URL}"><Parameter name="token" value="abc"/></Stream>'
    "</Connect><Say>Sorry</Say></Response>"
)


def tone_ulaw(ms: int, hz: float = 440.0) -> bytes:
    n = ms * 8
    pcm = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / 8000))) for i in range(n)
    )
    return pcm16_to_ulaw(pcm)


# ---------------------------------------------------------------------------- stand-in server
@dataclass
class Conn:
    ws: WebSocket
    state: State
    stream_sid: str = ""
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    async def send(self, obj: dict[str, Any]) -> float:
        await self.ws.send_text(orjson.dumps(obj).decode())
        return self.now()

    async def media(self, ulaw: bytes) -> float:
        payload = base64.b64encode(ulaw).decode()
        return await self.send(
            {"event": "media", "streamSid": self.stream_sid, "media": {"payload": payload}}
        )

    async def mark(self, name: str) -> float:
        return await self.send(
            {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}
        )

    async def clear(self) -> float:
        return await self.send({"event": "clear", "streamSid": self.stream_sid})

    def marks(self) -> list[tuple[float, str]]:
        return [(t, m["mark"]["name"]) for t, m in self.received if m["event"] == "mark"]

    async def wait_mark(self, name: str, within: float = 3.0) -> float:
        async with asyncio.timeout(within):
            while True:
                for t, got in self.marks():
                    if got == name:
                        return t
                self.arrived.clear()
                await self.arrived.wait()


Scenario = Callable[[Conn], Awaitable[None]]


@dataclass
class State:
    scenario: Scenario | None = None
    errors: list[str] = field(default_factory=list)
    webhooks: list[dict[str, str]] = field(default_factory=list)
    statuses: list[dict[str, str]] = field(default_factory=list)
    upgrade_headers: dict[str, str] = field(default_factory=dict)
    conn: Conn | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.errors.append(what)


def build_app(state: State) -> Starlette:
    validator = RequestValidator(TOKEN)

    async def voice(request: Request) -> Response:
        form = await request.form()
        sig = request.headers.get("x-twilio-signature", "")
        if not validator.validate(PUBLIC + request.url.path, form, sig):  # A.4
            return Response(status_code=403)
        state.check(
            request.headers["content-type"] == "application/x-www-form-urlencoded",
            "webhook content type",
        )
        state.webhooks.append({k: str(v) for k, v in form.items()})
        return Response(TWIML, media_type="text/xml")

    async def status(request: Request) -> Response:
        form = await request.form()
        sig = request.headers.get("x-twilio-signature", "")
        if not validator.validate(PUBLIC + request.url.path, form, sig):
            return Response(status_code=403)
        state.statuses.append({k: str(v) for k, v in form.items()})
        return Response(status_code=204)

    async def media(ws: WebSocket) -> None:
        state.upgrade_headers = dict(ws.headers)
        # A.4: the upgrade is signed over the wss:// URL from the TwiML, empty params.
        if not validator.validate(STREAM_URL, {}, ws.headers.get("x-twilio-signature", "")):
            await ws.close(code=1008)  # before accept → HTTP 403 handshake
            return
        await ws.accept()
        conn = Conn(ws, state)
        state.conn = conn
        try:
            first = await ws.receive()
            state.check("text" in first, "connected must be a text frame")
            connected = orjson.loads(first["text"])
            state.check(
                connected == {"event": "connected", "protocol": "Call", "version": "1.0.0"},
                f"connected shape: {connected}",
            )
            start = orjson.loads((await ws.receive())["text"])
            conn.stream_sid = start.get("streamSid", "")
            conn.received.append((conn.now(), start))
            reader = asyncio.create_task(read_all(conn))
            if state.scenario is not None:
                await state.scenario(conn)
            await reader
        finally:
            state.done.set()

    async def read_all(conn: Conn) -> None:
        while True:
            msg = await conn.ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            state.check("text" in msg and msg.get("text") is not None, "binary frame from phone")
            conn.received.append((conn.now(), orjson.loads(msg["text"])))
            conn.arrived.set()

    return Starlette(
        routes=[
            Route("/twilio/voice", voice, methods=["POST"]),
            Route("/twilio/status", status, methods=["POST"]),
            WebSocketRoute("/twilio/media", media),
        ]
    )


@pytest.fixture
async def server() -> AsyncIterator[tuple[State, str]]:
    state = State()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        build_app(state), log_level="warning", ws="websockets-sansio", lifespan="off"
    )
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve(sockets=[sock]))
    async with asyncio.timeout(5):
        while not srv.started:  # noqa: ASYNC110 - uvicorn exposes only a flag
            await asyncio.sleep(0.01)
    yield state, f"http://127.0.0.1:{port}"
    srv.should_exit = True
    async with asyncio.timeout(5):
        await task
    sock.close()


def phone(base: str, **kw: Any) -> Softphone:
    return Softphone(base, auth_token=TOKEN, public_url=PUBLIC, **kw)


# ---------------------------------------------------------------------------- tests
async def test_full_call_shapes_marks_clear_and_recording(
    server: tuple[State, str], tmp_path: Path
) -> None:
    state, base = server
    sent_at: dict[str, float] = {}

    async def scenario(conn: Conn) -> None:
        await conn.media(tone_ulaw(1000))  # 1 s of audio in one message (A.3: any size)
        sent_at["m1"] = await conn.mark("m1")
        await conn.wait_mark("m1")
        await asyncio.sleep(0.2)
        await conn.media(tone_ulaw(1000))
        sent_at["m2"] = await conn.mark("m2")
        await asyncio.sleep(0.2)  # ~200 ms of the second second plays, then barge-in
        sent_at["clear"] = await conn.clear()

    state.scenario = scenario
    record = tmp_path / "heard.wav"
    sp = phone(base, seconds=2.0, record=record, status_callback=True)
    summary = await sp.run()
    async with asyncio.timeout(3):
        await state.done.wait()
    assert state.errors == []
    conn = state.conn
    assert conn is not None

    # Webhook (A.5): Twilio's inbound params, signed.
    (hook,) = state.webhooks
    assert hook["CallSid"] == sp.call_sid and sp.call_sid.startswith("CA")
    assert len(sp.call_sid) == 34 and len(hook["AccountSid"]) == 34
    assert hook["CallStatus"] == "ringing" and hook["Direction"] == "inbound"
    assert hook["ApiVersion"] == "2010-04-01"
    assert hook["Caller"] == hook["From"] and hook["Called"] == hook["To"]
    # The upgrade did not offer permessage-deflate.
    assert "sec-websocket-extensions" not in state.upgrade_headers

    # start (A.2)
    msgs = [m for _, m in conn.received]
    start = msgs[0]
    assert start == {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": sp.stream_sid,
        "start": {
            "accountSid": sp.account_sid,
            "streamSid": sp.stream_sid,
            "callSid": sp.call_sid,
            "tracks": ["inbound"],
            "customParameters": {"token": "abc"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    }
    # Sequence numbers: strings, consecutive from "1", on every message after connected.
    assert [m["sequenceNumber"] for m in msgs] == [str(i) for i in range(1, len(msgs) + 1)]
    assert all(m["streamSid"] == sp.stream_sid for m in msgs)

    media = [m for m in msgs if m["event"] == "media"]
    assert len(media) == summary.frames_sent == 100  # 2 s of 20 ms frames
    for i, m in enumerate(media):
        assert set(m) == {"event", "sequenceNumber", "streamSid", "media"}
        assert set(m["media"]) == {"track", "chunk", "timestamp", "payload"}
        assert m["media"]["track"] == "inbound"
        assert m["media"]["chunk"] == str(i + 1)
        assert m["media"]["timestamp"] == str(20 * i)
        assert base64.b64decode(m["media"]["payload"]) == b"\xff" * 160  # silence
    # Real-time pacing: 100 frames spread over ~2 s, not a burst.
    t_media = [t for t, m in conn.received if m["event"] == "media"]
    assert 1.85 < t_media[-1] - t_media[0] < 2.1

    # Marks (A.3): m1 echoed when played (~1 s after it was queued), m2 at once on clear.
    marks = dict((name, t) for t, name in conn.marks())
    assert set(marks) == {"m1", "m2"}
    assert 0.95 < marks["m1"] - sent_at["m1"] < 1.15
    assert 0 <= marks["m2"] - sent_at["clear"] < 0.1
    echo = next(m for m in msgs if m["event"] == "mark")
    assert set(echo) == {"event", "sequenceNumber", "streamSid", "mark"}

    stop = msgs[-1]
    assert stop == {
        "event": "stop",
        "sequenceNumber": str(len(msgs)),
        "streamSid": sp.stream_sid,
        "stop": {"accountSid": sp.account_sid, "callSid": sp.call_sid},
    }

    # Summary.
    assert summary.closed_by == "softphone" and summary.close_code == 1000
    assert summary.fallback_would_run is False
    assert [str(v) for v in summary.fallback_verbs] == ["<Say> Sorry"]
    assert summary.twiml_parameters == {"token": "abc"}
    assert summary.frames_received == 2 and summary.ms_received == 2000
    assert summary.marks_received == 2 and summary.marks_echoed == 2 and summary.clears == 1
    assert summary.invalid_messages == 0
    m1, m2 = summary.marks
    assert (m1.name, m1.played_ms_at_echo, m1.cleared) == ("m1", 1000.0, False)
    assert m2.name == "m2" and m2.cleared is True
    assert 1140 <= summary.ms_played <= 1300  # 1 s + ~200 ms before the clear
    assert summary.ms_played + summary.ms_dropped_by_clear == 2000
    assert summary.marks_pending_at_end == []
    assert summary.status_callback_code == 204
    assert "softphone hung up" in summary.to_table()

    # Status callback (A.5).
    (status,) = state.statuses
    assert status["CallStatus"] == "completed" and status["SequenceNumber"] == "0"
    assert status["CallbackSource"] == "call-progress-events"
    assert status["CallSid"] == sp.call_sid and int(status["CallDuration"]) >= 2

    # Recording: true timeline (silence padded) and exactly the audio played.
    with wave.open(str(record), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        frames = w.getnframes()
        pcm = w.readframes(frames)
    assert 100 * 160 <= frames <= 102 * 160
    assert frames % 160 == 0
    samples = struct.unpack(f"<{frames}h", pcm)
    loud_frames = sum(
        1 for k in range(0, frames, 160) if max(abs(s) for s in samples[k : k + 160]) > 1000
    )
    assert abs(loud_frames * 20 - summary.ms_played) <= 40


async def test_server_closes_first_fallback_would_run(server: tuple[State, str]) -> None:
    state, base = server

    async def scenario(conn: Conn) -> None:
        await conn.media(tone_ulaw(2000))
        await conn.mark("never")
        await asyncio.sleep(0.4)
        await conn.ws.close(code=1000, reason="agent done")

    state.scenario = scenario
    sp = phone(base, seconds=3.0)
    summary = await sp.run()
    assert state.errors == []
    assert summary.closed_by == "server"
    assert (summary.close_code, summary.close_reason) == (1000, "agent done")
    assert summary.fallback_would_run is True
    assert summary.duration_s < 1.5
    assert summary.marks_pending_at_end == ["never"]
    assert 300 <= summary.ms_played <= 500
    assert state.conn is not None
    assert all(m["event"] != "stop" for _, m in state.conn.received)  # socket already gone
    table = summary.to_table()
    assert "stream ended by server" in table and "<Say> Sorry" in table


async def test_invalid_messages_hooks_dtmf_and_speak(server: tuple[State, str]) -> None:
    state, base = server

    async def scenario(conn: Conn) -> None:
        await conn.ws.send_bytes(orjson.dumps({"event": "clear", "streamSid": conn.stream_sid}))
        await conn.send({"event": "hello", "streamSid": conn.stream_sid})
        await conn.send({"event": "media", "media": {"payload": "//8="}})  # no streamSid
        await conn.send(
            {"event": "media", "streamSid": conn.stream_sid, "media": {"payload": "!!notb64"}}
        )
        await conn.send({"event": "mark", "streamSid": "MZwrong", "mark": {"name": "x"}})
        await conn.mark("instant")  # nothing buffered → echoed at once (A.3)

    state.scenario = scenario
    seen: list[dict[str, Any]] = []

    async def hook(msg: dict[str, Any]) -> None:
        seen.append(msg)

    sp = phone(base, seconds=1.0, dtmf=[(0.1, "1#")], on_server_message=hook)
    run = asyncio.create_task(sp.run())
    await sp.wait_for(lambda p: p.playback.marks_echoed >= 1, timeout=2)
    record = await sp.wait_for_mark("instant", timeout=1)
    assert record.played_ms_at_echo == 0.0 and not record.cleared
    await sp.wait_for(lambda p: p.dtmf_sent == 2, timeout=1)
    sp.speak(b"\x00\x10" * 800)  # 100 ms of PCM16 @ 8 kHz, sent in place of silence
    await sp.send_dtmf("9")
    summary = await run

    assert state.errors == []
    assert summary.invalid_messages == 5
    assert summary.invalid_reasons == {
        "binary frame": 1,
        "unknown event": 1,
        "missing streamSid": 1,
        "bad base64": 1,
        "wrong streamSid": 1,
    }
    assert [m.get("event") for m in seen] == ["hello", "media", "media", "mark", "mark"]
    assert summary.dtmf_sent == 3
    assert state.conn is not None
    msgs = [m for _, m in state.conn.received]
    dtmf = [m for m in msgs if m["event"] == "dtmf"]
    assert [d["dtmf"] for d in dtmf] == [
        {"track": "inbound_track", "digit": "1"},
        {"track": "inbound_track", "digit": "#"},
        {"track": "inbound_track", "digit": "9"},
    ]
    assert all(set(d) == {"event", "sequenceNumber", "streamSid", "dtmf"} for d in dtmf)
    spoken = [
        m
        for m in msgs
        if m["event"] == "media" and base64.b64decode(m["media"]["payload"]) != b"\xff" * 160
    ]
    assert len(spoken) == 5  # 100 ms = 5 frames
    assert [m["sequenceNumber"] for m in msgs] == [str(i) for i in range(1, len(msgs) + 1)]


async def test_wav_input_sets_call_length(server: tuple[State, str], tmp_path: Path) -> None:
    state, base = server
    wav_path = tmp_path / "caller.wav"
    with wave.open(str(wav_path), "wb") as w:  # 16 kHz stereo, 0.5 s
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(
            b"".join(
                struct.pack("<hh", v, v)
                for v in (int(9000 * math.sin(2 * math.pi * 300 * i / 16000)) for i in range(8000))
            )
        )
    summary = await phone(base, audio=wav_path).run()
    assert state.errors == []
    assert summary.frames_sent == 25
    assert state.conn is not None
    payloads = [
        base64.b64decode(m["media"]["payload"])
        for _, m in state.conn.received
        if m["event"] == "media"
    ]
    assert len(payloads) == 25 and all(len(p) == 160 for p in payloads)
    assert sum(p != b"\xff" * 160 for p in payloads) >= 24


async def test_status_callbacks_out_of_order(server: tuple[State, str]) -> None:
    state, base = server
    sp = phone(base, seconds=0.2)
    await sp.run()
    assert (await sp.post_status("completed", 3, call_duration=1)).status_code == 204
    assert (await sp.post_status("ringing", 1)).status_code == 204
    assert [s["SequenceNumber"] for s in state.statuses] == ["3", "1"]
    assert state.statuses[0]["CallDuration"] == "1"
    assert state.statuses[1]["CallStatus"] == "ringing"


async def test_wrong_token_is_rejected_by_webhook(server: tuple[State, str]) -> None:
    _, base = server
    sp = Softphone(base, auth_token="wrong", public_url=PUBLIC, seconds=0.2)
    with pytest.raises(SoftphoneError, match="HTTP 403"):
        await sp.run()


async def test_ws_upgrade_rejected_without_signature(server: tuple[State, str]) -> None:
    state, base = server
    sp = phone(base, seconds=0.2)
    await sp.dial()
    sp._validator = None  # webhook was signed; now drop the upgrade signature
    with pytest.raises(SoftphoneError, match="31920"):
        await sp.connect()
    assert state.conn is None


# ---------------------------------------------------------------------------- sans-I/O parts
def test_parse_twiml_relative_url_and_warnings() -> None:
    plan = parse_twiml(
        '<Response><Connect><Stream url="/media?x=1">'
        '<Parameter name="a" value="1"/><Parameter name="b" value="2"/></Stream></Connect>'
        "<Say>One</Say><Hangup/></Response>",
        public_url="https://pub.example/app",
    )
    assert plan.stream_url == "wss://pub.example/media?x=1"
    assert plan.parameters == {"a": "1", "b": "2"}
    assert [v.name for v in plan.fallback_verbs] == ["Say", "Hangup"]
    assert any("query string" in w for w in plan.warnings)

    with pytest.raises(SoftphoneError, match="unidirectional"):
        parse_twiml(
            '<Response><Start><Stream url="wss://x/y"/></Start></Response>', public_url=PUBLIC
        )
    with pytest.raises(SoftphoneError, match="not XML"):
        parse_twiml("<Response>", public_url=PUBLIC)


def test_parse_server_message_classification() -> None:
    sid = "MZ" + "0" * 32
    assert isinstance(parse_server_message(b"{}", sid), InvalidServerMessage)
    assert parse_server_message("nope", sid) == InvalidServerMessage("not json")
    assert parse_server_message("[]", sid) == InvalidServerMessage("not a json object")
    media = parse_server_message(
        orjson.dumps({"event": "media", "streamSid": sid, "media": {"payload": "AAEC"}}).decode(),
        sid,
    )
    assert isinstance(media, ServerMedia) and media.ulaw == b"\x00\x01\x02"
    mark = parse_server_message(f'{{"event":"mark","streamSid":"{sid}","mark":{{"name":"n"}}}}')
    assert isinstance(mark, ServerMark) and mark.name == "n"
    bad_mark = parse_server_message(f'{{"event":"mark","streamSid":"{sid}","mark":{{}}}}')
    assert isinstance(bad_mark, InvalidServerMessage) and bad_mark.reason == "mark without name"
    assert isinstance(parse_server_message(f'{{"event":"clear","streamSid":"{sid}"}}'), ServerClear)


def test_writer_shapes() -> None:
    w = TwilioStreamWriter(stream_sid="MZ1", account_sid="AC1", call_sid="CA1")
    assert orjson.loads(w.connected()) == {
        "event": "connected",
        "protocol": "Call",
        "version": "1.0.0",
    }
    assert orjson.loads(w.start({}))["sequenceNumber"] == "1"
    m = orjson.loads(w.media(b"\xff" * 160, 0))
    assert m["sequenceNumber"] == "2" and m["media"]["chunk"] == "1"
    assert len(m["media"]["payload"]) == 216  # A.2: 160 bytes → 216 base64 chars
    assert orjson.loads(w.mark("x")) == {
        "event": "mark",
        "sequenceNumber": "3",
        "streamSid": "MZ1",
        "mark": {"name": "x"},
    }


def test_dtmf_schedule_parser() -> None:
    assert parse_dtmf_schedule("4:9, 1.5:12#") == [(1.5, "12#"), (4.0, "9")]
    with pytest.raises(ValueError):
        parse_dtmf_schedule("1:x")


async def test_scripted_phases_hangup_and_hook_errors(server: tuple[State, str]) -> None:
    state, base = server

    async def scenario(conn: Conn) -> None:
        await conn.media(tone_ulaw(100))
        await conn.mark("short")

    state.scenario = scenario

    async def hook(msg: dict[str, Any]) -> None:
        if msg["event"] == "mark":
            raise RuntimeError("scripted check failed")

    sp = phone(base, seconds=5.0, on_server_message=hook)
    plan = await sp.dial()
    assert plan.stream_url == STREAM_URL
    await sp.connect()
    await sp.wait_for_agent_audio(100, timeout=1)
    with pytest.raises(RuntimeError, match="scripted check failed"):
        await sp.finished()  # the hook's failure ends the call and surfaces here
    summary = sp.summary()
    assert summary.closed_by == "softphone"
    assert summary.duration_s < 1.0
    assert state.conn is not None
    async with asyncio.timeout(3):
        await state.done.wait()
    assert state.conn.received[-1][1]["event"] == "stop"

    # Plain hangup() of a long call.
    sp2 = phone(base, seconds=30.0)
    await sp2.dial()
    await sp2.connect()
    await asyncio.sleep(0.1)
    sp2.hangup()
    summary2 = await sp2.finished()
    assert summary2.closed_by == "softphone" and summary2.duration_s < 1.0
    assert 4 <= summary2.frames_sent <= 7
    with pytest.raises(TimeoutError):
        await sp2.wait_for(lambda p: p.dtmf_sent > 0, timeout=1)  # call over: fails fast


async def test_ws_open_is_bounded_by_connect_timeout(server: tuple[State, str]) -> None:
    _, base = server
    # A listener that accepts TCP but never answers the upgrade.
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        sp = phone(
            base,
            seconds=5.0,
            connect_timeout=0.3,
            connect_url=lambda stream_url: f"ws://127.0.0.1:{port}/twilio/media",
        )
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(SoftphoneError, match="31901"):
            await sp.run()
        assert loop.time() - t0 < 1.5
    finally:
        silent.close()
