"""Bench: the local server's offline speech engine on this machine's CPU.

Run: ``.venv/bin/python bench/offline_engine.py`` (about two minutes; needs ``.[local]``).
``--no-early-stt`` runs the server with ``LOCAL_EARLY_STT_MS=off`` for comparison.

What it does: starts ``python -m service realtime-server`` with ``LOCAL_ENGINE=speech`` (the
built-in hotline brain, Whisper tiny.en, Piper, Silero), then places 5 calls of 4 spoken turns
each (25 turns) over a websocket as a phone would: μ-law 8 kHz, 20 ms messages sent in real
time. The caller's voice is Piper with its natural randomness on, so each call sounds a little
different. Function calls are answered with canned hotline outputs.

How to read the table:

* ``first audio``  wall time from the end of the caller's speech (the last speech sample
  sent) to the first ``response.output_audio.delta`` of the reply, p50/p99/max over all turns.
  It includes the VAD's ``silence_duration_ms`` (500 ms): a turn cannot end sooner.
* ``VAD stop``     end of speech → ``input_audio_buffer.speech_stopped``; the rest of the
  first-audio time is transcription + brain + synthesis of the first sentence.
* ``understood``   turns whose reply was the expected one (the STT heard the digits/words).
* ``STT RTF`` / ``TTS RTF``  processing time / audio duration, measured in this process on
  the same utterances/replies (median); ``TTS first``: time to the first sentence's audio.
* ``RSS``          the server process: after loading the models (idle) and the peak.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.audio.g711 import pcm16_to_ulaw
from service.loadtest.procs import Proc, free_port, rss_bytes, start, wait_tcp
from service.modelserver.engine.stt import WhisperTranscriber
from service.modelserver.engine.tts import PiperStreamingVoice

CALLS = 5
TURNS = [  # (what the caller says, a word the right reply contains)
    ("Hi, where is my order 4 2 1 7?", "zip"),
    ("9 4 1 0 7", "is that right"),  # heard digits are read back before they are checked
    ("Yes, that's right.", "moment"),
    ("Which carrier is it?", "ups"),
    ("When will it arrive?", "thursday"),
]
CANNED = {
    "verify_caller": {"verified": True, "order_number": "4217", "message": "Verified."},
    "lookup_order": {
        "found": True,
        "verified": True,
        "order_number": "4217",
        "status": "shipped",
        "carrier": "UPS",
        "eta_spoken": "Thursday, November 26",
        "items_summary": "Trail shoes (1)",
        "say": "Your order shipped with UPS and should arrive Thursday, November 26.",
    },
}
TOOLS = [
    {"type": "function", "name": name, "description": name, "parameters": {"type": "object"}}
    for name in ("verify_caller", "lookup_order", "transfer_call", "end_call")
]
LEAD_MS, TAIL_MS, FRAME_MS = 300, 1500, 20


class Turn:
    def __init__(self, text: str, expect: str, pcm: bytes) -> None:
        self.text, self.expect, self.pcm = text, expect, pcm
        self.speech_end = 0.0  # wall time the last speech sample was sent
        self.vad_stop = 0.0
        self.first_audio = 0.0
        self.reply = ""
        self.heard = ""  # what the server's STT made of the caller's turn


async def reader(ws: ClientConnection, inbox: asyncio.Queue[tuple[float, dict[str, Any]]]) -> None:
    async for message in ws:
        await inbox.put((time.perf_counter(), orjson.loads(message)))


async def one_call(url: str, turns: list[Turn]) -> None:
    async with connect(url, max_size=None) as ws:
        inbox: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()
        reading = asyncio.create_task(reader(ws, inbox))
        fmt = {"type": "audio/pcmu"}
        session = {
            "type": "realtime",
            "tools": TOOLS,
            "audio": {
                "input": {"format": fmt, "transcription": {"model": "whisper-1"}},
                "output": {"format": fmt},
            },
        }
        await ws.send(orjson.dumps({"type": "session.update", "session": session}).decode())
        for turn in turns:
            await speak(ws, turn)
            await follow(ws, inbox, turn)
        reading.cancel()


async def speak(ws: ClientConnection, turn: Turn) -> None:
    """Send lead silence + speech + tail silence in real time, 20 ms per message."""
    pcm = bytes(8 * LEAD_MS * 2) + turn.pcm + bytes(8 * TAIL_MS * 2)
    speech_end = (LEAD_MS * 8 + len(turn.pcm) // 2) * 2
    step = 8 * FRAME_MS * 2
    begin = time.perf_counter()
    for i, offset in enumerate(range(0, len(pcm), step)):
        delay = begin + i * FRAME_MS / 1000 - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        audio = base64.b64encode(pcm16_to_ulaw(pcm[offset : offset + step])).decode()
        await ws.send(orjson.dumps({"type": "input_audio_buffer.append", "audio": audio}).decode())
        if not turn.speech_end and offset + step >= speech_end:
            turn.speech_end = time.perf_counter()


async def follow(
    ws: ClientConnection, inbox: asyncio.Queue[tuple[float, dict[str, Any]]], turn: Turn
) -> None:
    """Read events until the turn's replies are done, answering function calls."""
    async with asyncio.timeout(30):
        while True:
            at, event = await inbox.get()
            kind = event["type"]
            if kind == "input_audio_buffer.speech_stopped" and not turn.vad_stop:
                turn.vad_stop = at
            elif kind == "response.output_audio.delta" and not turn.first_audio:
                turn.first_audio = at
            elif kind == "conversation.item.input_audio_transcription.completed":
                turn.heard += " " + event["transcript"]
            elif kind == "response.output_audio_transcript.done":
                turn.reply += " " + event["transcript"]
            elif kind == "response.done":
                calls = [o for o in event["response"]["output"] if o["type"] == "function_call"]
                if not calls:
                    return
                for call in calls:
                    output = orjson.dumps(CANNED.get(call["name"], {"ok": True})).decode()
                    item = {
                        "type": "function_call_output",
                        "call_id": call["call_id"],
                        "output": output,
                    }
                    await ws.send(
                        orjson.dumps({"type": "conversation.item.create", "item": item}).decode()
                    )
                await ws.send(orjson.dumps({"type": "response.create"}).decode())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def watch_rss(proc: Proc, peak: list[int], stop: threading.Event) -> None:
    while not stop.wait(0.05):
        peak[0] = max(peak[0], rss_bytes(proc.pid))


def rtfs(utterances: list[bytes], replies: list[str]) -> tuple[float, float, float]:
    stt = WhisperTranscriber()
    stt.warm()
    stt_rtf = []
    for pcm in utterances:
        t = time.perf_counter()
        stt.transcribe(pcm, 8000)
        stt_rtf.append((time.perf_counter() - t) / (len(pcm) / 2 / 8000))
    voice = PiperStreamingVoice()
    voice.warm()
    tts_rtf, first = [], []
    for text in replies:
        t = time.perf_counter()
        audio, first_at = 0, 0.0
        for chunk in voice.stream(text, 8000):
            first_at = first_at or time.perf_counter() - t
            audio += len(chunk.pcm)
        tts_rtf.append((time.perf_counter() - t) / (audio / 2 / 8000))
        first.append(first_at)
    return statistics.median(stt_rtf), statistics.median(tts_rtf), statistics.median(first)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-early-stt", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    caller = PiperStreamingVoice()  # natural randomness on: every call sounds different
    calls = [
        [
            Turn(text, expect, b"".join(c.pcm for c in caller.stream(text, 8000)))
            for text, expect in TURNS
        ]
        for _ in range(CALLS)
    ]
    port = free_port()
    env = {"LOCAL_ENGINE": "speech", "LOG_LEVEL": "WARNING"}
    if args.no_early_stt:
        env["LOCAL_EARLY_STT_MS"] = "off"
    with tempfile.TemporaryDirectory() as logs:
        t = time.perf_counter()
        server = start("realtime", ["realtime-server", "--port", str(port)], env, Path(logs))
        try:
            wait_tcp(server, port, timeout=120)
            load_s = time.perf_counter() - t
            idle = rss_bytes(server.pid)
            peak, stop = [idle], threading.Event()
            watcher = threading.Thread(target=watch_rss, args=(server, peak, stop), daemon=True)
            watcher.start()
            url = f"ws://127.0.0.1:{port}/v1/realtime?model=local"
            for turns in calls:
                asyncio.run(one_call(url, turns))
            stop.set()
        finally:
            failure = server.stop()
    turns = [turn for call in calls for turn in call]
    latency = [t.first_audio - t.speech_end for t in turns if t.first_audio]
    vad = [t.vad_stop - t.speech_end for t in turns if t.vad_stop]
    understood = sum(t.expect in t.reply.lower() for t in turns)
    stt_rtf, tts_rtf, tts_first = rtfs([t.pcm for t in turns[:8]], [t.reply for t in turns[:8]])
    ms = lambda v: f"{v * 1000:.0f} ms"  # noqa: E731
    print(
        f"offline engine, {os.cpu_count()} cores, early STT {'off' if args.no_early_stt else 'on'}"
    )
    print("| metric | value |\n|---|---|")
    print(
        f"| first audio p50 / p99 / max | {ms(statistics.median(latency))} / "
        f"{ms(percentile(latency, 0.99))} / {ms(max(latency))} |"
    )
    print(f"| VAD stop p50 (incl. 500 ms silence) | {ms(statistics.median(vad))} |")
    n = len(turns)
    print(f"| turns with audio / understood | {len(latency)}/{n} / {understood}/{n} |")
    print(f"| STT RTF (Whisper tiny.en int8) | {stt_rtf:.3f} |")
    print(f"| TTS RTF (Piper joe-medium) / first sentence | {tts_rtf:.3f} / {ms(tts_first)} |")
    print(f"| server start incl. model load | {load_s:.1f} s |")
    print(f"| server RSS idle / peak | {idle / 2**20:.0f} MiB / {peak[0] / 2**20:.0f} MiB |")
    for turn in turns:
        if turn.expect not in turn.reply.lower():
            heard, reply = turn.heard.strip(), turn.reply.strip()
            print(f"  not understood: {turn.text!r} heard as {heard!r} -> {reply!r}")
    if failure:
        print(f"server: {failure}")
    return 0 if latency and not failure else 1


if __name__ == "__main__":
    sys.exit(main())
