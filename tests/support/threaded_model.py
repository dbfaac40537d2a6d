"""The local Realtime server on its own thread and event loop.

A browser test's page runs on its own clock; when the model server shares the test's loop,
its reply synthesis stalls the service's socket reads for hundreds of ms and the page's mark
echoes arrive late, which no deployment would see (the model is another process). On its own
thread the server's blocking work only costs the GIL's switch interval (5 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from service.modelserver.script import Script
from service.modelserver.server import LocalRealtimeServer


@contextlib.contextmanager
def model_on_a_thread(script: Script, **options: object) -> Iterator[LocalRealtimeServer]:
    """``options``: LocalRealtimeServer's keyword arguments, as given."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, LocalRealtimeServer] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            holder["server"] = LocalRealtimeServer(script, **options)  # type: ignore[arg-type]
            await holder["server"].start()
            ready.set()

        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, name="local-model", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the local model server did not start within 10 s")
    server = holder["server"]
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
