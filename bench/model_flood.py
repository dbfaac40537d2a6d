"""Bench: what one call flooded with huge model events costs the other calls (issue 11, item 5).

Run: ``.venv/bin/python bench/model_flood.py [--tree label=path ...] [--calls 4]``
(default: this tree only; about 20 s per row). To compare with another version of the service,
export it (``git archive <rev> | tar -x -C /tmp/base``) and pass ``--tree base=/tmp/base
--tree branch=.``.

Each row runs in a fresh process whose imports come from that row's tree: the service
(uvicorn, embedded Redis), the local realtime server (scripted: a 12 s greeting paced at real
time in 100 ms deltas) and ``--calls`` + 1 softphones, all on one event loop, as the calls of
one service process share one. Once every greeting is flowing, the model sends one call a huge
event every ``FLOOD_EVERY_S`` for ``FLOOD_S``. Measured meanwhile:

* the other calls' agent audio, from the model's send of each delta to the softphone's receipt
  of the media frame carrying it (the k-th delta of a session is the k-th media frame of its
  call): p50 / p99 / max ms and sample count;
* ``stall`` the event loop's worst wake-up lateness (a 5 ms ticker), wall time: what the
  other calls felt, machine load included;
* ``held`` the CPU time (``time.thread_time``) of the longest single step of the event loop
  (one callback: no other call can run meanwhile), max and p99.9 over the flood window: the
  part of a stall that is the service's own work, and the least sensitive to other load on
  the machine.

Rows (flood kinds): ``none`` (the baseline); ``issue`` the sizes of the fault injection (a
1.9 MB audio delta, a 2.5 MB agent transcript and a 1 MB error message, in turn); ``max`` the
same three kinds just under the new 1 MiB model message limit (what the service still takes).
``pushed`` counts the huge events the flooded connection took; ``flooded call`` says how it
ended. The machine is shared and noisy: compare rows within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import subprocess
import sys
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, os.environ.get("FLOOD_TREE") or str(Path(__file__).resolve().parent.parent))

from service.logging import configure_logging
from service.modelserver.script import Script, Turn
from service.modelserver.server import LocalRealtimeServer
from service.peers.twilio import Softphone
from service.serving import RunningService, free_port
from service.settings import Settings

GREETING_MS = 12_000
FLOOD_AFTER_S = 2.0
FLOOD_S = 7.0
FLOOD_EVERY_S = 0.25  # huge events, not a denial of service: 4 a second
CALL_S = 13.0
LOOP_TICK_S = 0.005
TOKEN = "bench-token-0123456789abcdef"


def _delta(chars: int) -> bytes:
    pcm = b"\x00\x08" * (chars * 3 // 8)  # base64: 4 characters per 3 bytes
    return orjson.dumps(
        {
            "type": "response.output_audio.delta",
            "response_id": "resp_flood",
            "item_id": "item_flood",
            "output_index": 0,
            "content_index": 0,
            "delta": base64.b64encode(pcm).decode(),
        }
    )


def _transcript(chars: int) -> bytes:
    return orjson.dumps(
        {
            "type": "response.output_audio_transcript.done",
            "response_id": "resp_flood",
            "item_id": "item_flood",
            "output_index": 0,
            "content_index": 0,
            "transcript": "word " * (chars // 5),
        }
    )


def _error(chars: int) -> bytes:
    error = {"type": "server_error", "code": "flood", "message": "m" * chars}
    return orjson.dumps({"type": "error", "error": error})


LIMIT = 1 << 20
FLOODS: dict[str, list[bytes]] = {
    "none": [],
    "issue": [_delta(1_900_000), _transcript(2_500_000), _error(1_000_000)],
    "max": [_delta(LIMIT - 400), _transcript(LIMIT - 400), _error(LIMIT - 400)],
}


class TimedServer(LocalRealtimeServer):
    """The local server, noting when each audio delta left, per connection."""

    def __init__(self, script: Script) -> None:
        super().__init__(script, strict=False)
        self.sent_at: dict[int, deque[float]] = defaultdict(deque)

    async def _send(self, ws: Any, events: list[dict[str, Any]]) -> None:
        for event in events:
            if event.get("type") == "response.output_audio.delta":
                self.sent_at[id(ws)].append(time.perf_counter())
            await ws.send(orjson.dumps(event).decode())


@dataclass
class Row:
    tree: str
    flood: str
    latencies_ms: list[float] = field(default_factory=list)
    pushed: int = 0
    flooded_end: str = "-"
    lag_ms: float = 0.0
    held_max_ms: float = 0.0
    held_p999_ms: float = 0.0
    error: str | None = None

    def result(self) -> dict[str, Any]:
        return {
            "latencies_ms": self.latencies_ms,
            "pushed": self.pushed,
            "flooded_end": self.flooded_end,
            "lag_ms": self.lag_ms,
            "held_max_ms": self.held_max_ms,
            "held_p999_ms": self.held_p999_ms,
            "error": self.error,
        }


class StepTimer:
    """CPU time of every event-loop step (``Handle._run``) while ``on``: bench instrumentation."""

    def __init__(self) -> None:
        self.on = False
        self.steps_ms: list[float] = []
        original = asyncio.events.Handle._run
        timer = self

        def timed(handle: asyncio.events.Handle) -> None:
            if not timer.on:
                original(handle)
                return
            start = time.thread_time()
            original(handle)
            timer.steps_ms.append((time.thread_time() - start) * 1000)
            if os.environ.get("FLOOD_DEBUG") and timer.steps_ms[-1] > 20:
                task = getattr(getattr(handle, "_callback", None), "__self__", None)
                coro = task.get_coro() if isinstance(task, asyncio.Task) else None
                where = getattr(coro, "__qualname__", repr(handle))
                print(f"{timer.steps_ms[-1]:.1f} ms: {where}", file=sys.stderr)

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]


STEPS = StepTimer()


async def _watch_loop(row: Row, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(LOOP_TICK_S)
        row.lag_ms = max(row.lag_ms, (loop.time() - before - LOOP_TICK_S) * 1000)


async def _flood(model: TimedServer, session: Any, frames: list[bytes], row: Row) -> None:
    deadline = time.monotonic() + FLOOD_S
    if not frames:
        await asyncio.sleep(FLOOD_S)  # the baseline: the same window, nothing sent
    while frames and time.monotonic() < deadline:
        try:
            # (not push_raw: it must work against older trees' servers too)
            await model._connections[session.id].send(frames[row.pushed % len(frames)])
        except Exception:
            return  # the service closed this model connection (over its message limit)
        row.pushed += 1
        await asyncio.sleep(FLOOD_EVERY_S)


async def drive(row: Row, calls: int) -> None:
    script = Script(greeting=Turn(text="Hello", duration_ms=GREETING_MS), pace=1.0, chunk_ms=100)
    model = TimedServer(script)
    await model.start()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = Settings(  # type: ignore[call-arg]
        public_url=base_url,
        twilio_auth_token=TOKEN,
        realtime_backend="local",
        local_realtime_url=model.url,
        redis_url="",
    )
    stop = asyncio.Event()
    try:
        async with RunningService(settings, port):
            phones: list[tuple[Softphone, Any, int]] = []  # (phone, model session, its socket)
            arrivals: dict[int, list[float]] = defaultdict(list)
            for index in range(calls + 1):

                async def arrived(message: dict[str, Any], index: int = index) -> None:
                    if message.get("event") == "media":
                        arrivals[index].append(time.perf_counter())

                phone = Softphone(
                    base_url, auth_token=TOKEN, seconds=CALL_S, on_server_message=arrived
                )
                await phone.dial()  # pre-warms this call's model session: the next to connect
                session = await model.wait_for_session(index + 1, timeout=10)
                await phone.connect()
                phones.append((phone, session, id(model._connections[session.id])))
            await asyncio.sleep(FLOOD_AFTER_S)
            watcher = asyncio.create_task(_watch_loop(row, stop))
            STEPS.on = True
            await _flood(model, phones[-1][1], FLOODS[row.flood], row)
            STEPS.on = False
            stop.set()
            await watcher
            row.held_max_ms = max(STEPS.steps_ms, default=0.0)
            row.held_p999_ms = _q(STEPS.steps_ms, 0.999)
            summaries = await asyncio.gather(*(phone.finished() for phone, _, _ in phones))
            row.flooded_end = f"closed by {summaries[-1].closed_by}"
            for index, (_phone, _session, socket_id) in enumerate(phones[:-1]):
                sent = list(model.sent_at[socket_id])
                for sent_at, got_at in zip(sent, arrivals[index], strict=False):
                    row.latencies_ms.append((got_at - sent_at) * 1000)
    finally:
        await model.stop()


def run_row(label: str, tree: Path, flood: str, calls: int) -> Row:
    """One row in a fresh process that imports ``tree``'s service."""
    command = [sys.executable, __file__, "--row", flood, "--calls", str(calls)]
    env = {**os.environ, "FLOOD_TREE": str(tree), "PYTHONPATH": str(tree)}
    row = Row(label, flood)
    try:
        done = subprocess.run(command, env=env, capture_output=True, timeout=120, cwd=tree)
        lines = done.stdout.splitlines()
        if not lines:
            raise RuntimeError(f"row process exited {done.returncode}: {done.stderr[-300:]!r}")
        result = orjson.loads(lines[-1])
    except Exception as exc:
        row.error = f"{type(exc).__name__}: {exc}"
        return row
    for key, value in result.items():
        setattr(row, key, value)
    return row


def _q(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", action="append", default=[], help="label=path of a tree")
    parser.add_argument("--calls", type=int, default=4, help="calls besides the flooded one")
    parser.add_argument("--floods", default="none,issue,max")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: run one row here
    args = parser.parse_args()
    if args.row:
        configure_logging("console", "error")
        row = Row("", args.row)
        try:
            asyncio.run(drive(row, args.calls))
        except Exception as exc:  # reported in the row, not as a traceback
            row.error = f"{type(exc).__name__}: {exc}"
        sys.stdout.write(orjson.dumps(row.result()).decode() + "\n")
        return
    this_tree = str(Path(__file__).resolve().parent.parent)
    trees = [t.split("=", 1) for t in args.tree] or [["this", this_tree]]
    rows: list[Row] = []
    for label, path in trees:
        for flood in args.floods.split(","):
            rows.append(run_row(label, Path(path).resolve(), flood, args.calls))
            print(f"  done: {label} {flood}", file=sys.stderr)
    load = os.getloadavg()
    print(
        f"Load average when done: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
        f"({os.cpu_count()} CPUs; other work on the machine shows in every row)"
    )
    print(
        f"Other calls' agent audio, model send → caller receipt ({args.calls} calls beside the"
        f" flooded one; one huge event every {FLOOD_EVERY_S:g} s for {FLOOD_S:g} s)\n"
    )
    header = f"{'tree':<8} {'flood':<6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'n':>5}"
    header += f" {'stall ms':>8} {'held max/p99.9 ms':>17} {'pushed':>6}  {'flooded call':<20}"
    print(header)
    print("-" * len(header))
    for row in rows:
        lat = row.latencies_ms
        line = f"{row.tree:<8} {row.flood:<6} {_q(lat, 0.5):7.1f} {_q(lat, 0.99):7.1f}"
        line += f" {max(lat, default=float('nan')):7.1f} {len(lat):5d} {row.lag_ms:8.1f}"
        held = f"{row.held_max_ms:.1f}/{row.held_p999_ms:.1f}"
        line += f" {held:>17} {row.pushed:6d}  {row.flooded_end:<20}"
        print(line + (f"  ERROR {row.error}" if row.error else ""))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
