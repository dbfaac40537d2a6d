"""The dashboard watching a real call in Chromium: the CLI softphone (Twilio's side) calls the
service, which talks to the local scripted model; the page must show it live."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from service.demo import DEMO_SCRIPT, converse
from tests.conftest import TEST_AUTH_TOKEN
from tests.support.browser import chromium, logged_in, screenshot
from tests.support.threaded_model import model_on_a_thread

TOKEN = "operator-token-0123456789"


async def test_live_call_appears_grows_and_leaves(make_service) -> None:
    # The model on its own thread, as it would be in its own process: its speech synthesis
    # must not stall the service's loop (tests/support/threaded_model.py).
    with model_on_a_thread(DEMO_SCRIPT) as model:
        await watch_a_live_call(make_service, model)


async def watch_a_live_call(make_service, model) -> None:
    service = await make_service(
        realtime_backend="local",
        local_realtime_url=model.url,
        api_tokens=TOKEN,
        input_transcription_model="whisper-1",
    )
    async with chromium() as browser:
        _context, dashboard = await logged_in(browser, service.base_url, TOKEN)
        await dashboard.wait_for_selector("#feed-state:text('live')")
        call = asyncio.create_task(converse(service, TEST_AUTH_TOKEN))
        began = time.monotonic()
        row = await dashboard.wait_for_selector("#live-calls tbody tr", timeout=5000)
        seen_at = time.time()
        dialled_s = time.monotonic() - began
        sid = await row.get_attribute("data-call-sid")
        assert sid and sid.startswith("CA")
        # From the call's start (its media up: the worker's started_at) to the row on screen.
        started_at = (await service.services.store.get_call(sid))["started_at"]
        started = datetime.fromisoformat(started_at.replace("Z", "+00:00")).timestamp()
        appeared_s = seen_at - started
        print(
            f"live call on the dashboard {appeared_s * 1000:.0f} ms after it started "
            f"({dialled_s * 1000:.0f} ms after the softphone dialled)"
        )
        cells = await row.query_selector_all("td")
        texts = [await c.text_content() for c in cells]
        assert texts[1:4] == ["twilio", "inbound", "hotline"]
        assert "•" in texts[4] and texts[4][-4:].isdigit()  # the caller's number, masked
        await screenshot(dashboard, "dashboard-live-call")

        call_page = await _context.new_page()
        await call_page.goto(f"/ui/calls/{sid}")
        await call_page.wait_for_selector("#transcript li.agent", timeout=10_000)
        result = await call
        # The barge-in shows on the dashboard row while the call still runs, or at least on
        # the call page's timeline with what was heard and sent.
        barge = await call_page.wait_for_selector(".timeline-barge_in", timeout=10_000)
        assert "heard" in (await barge.text_content() or "")
        await call_page.wait_for_selector("#call-state:text('ended')", timeout=10_000)
        await screenshot(call_page, "call-page")
        await dashboard.wait_for_selector(
            f"#live-calls tbody tr[data-call-sid='{sid}']", state="detached", timeout=5000
        )
        assert result.summary.call_sid == sid
        transcript = await call_page.text_content("#transcript")
        assert "agent:" in (transcript or "")
        assert TEST_AUTH_TOKEN not in await call_page.content()
    assert appeared_s < 1.0, appeared_s
