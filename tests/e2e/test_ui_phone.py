"""The browser softphone (/phone) in real Chromium: the fake microphone plays a WAV asking
about an order; the page calls the agent over /phone/ws (the browser carrier edge), hears it,
shows both transcripts, and talks over the agent — truncation counts what the page played."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

from service.agent.hotline.orders import seed_orders
from service.demo import DemoHotlineScript
from service.modelserver.engine.tts import speak
from tests.support.browser import chromium, logged_in, screenshot
from tests.support.threaded_model import model_on_a_thread
from tests.support.waiting import eventually

TOKEN = "operator-token-0123456789"


def question_wav(path: Path, text: str, silence_s: float) -> Path:
    """Piper's voice at 16 kHz, then silence: the fake microphone loops the file, so the
    question comes again after ``silence_s`` — over the agent's answer, a barge-in."""
    pcm = speak(text, 16000) + b"\x00\x00" * int(16000 * silence_s)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm)
    return path


def mark_parts(name: str) -> tuple[int, str, int]:
    generation, item_id, ms = name.split(":")
    return int(generation), item_id, int(ms)


async def test_browser_call_to_the_hotline_with_barge_in(make_service, tmp_path) -> None:
    with model_on_a_thread(DemoHotlineScript()) as model:
        await browser_call_with_barge_in(make_service, model, tmp_path)


async def browser_call_with_barge_in(make_service, model, tmp_path) -> None:
    service = await make_service(
        realtime_backend="local",
        local_realtime_url=model.url,
        api_tokens=TOKEN,
        input_transcription_model="whisper-1",
    )
    await seed_orders(service.services.redis, service.services.settings.redis_key_prefix)
    wav = question_wav(tmp_path / "question.wav", "Hi, where is my order 4 2 1 7?", 6.0)
    async with chromium(microphone_wav=wav) as browser:
        _context, page = await logged_in(browser, service.base_url, TOKEN)
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        await page.goto("/phone")
        await page.select_option("#profile", "hotline")
        await page.click("#call")
        await page.wait_for_selector("#phone-state:text('in call')", timeout=10_000)
        # The reply, from the order lookup, names the carrier.
        await page.wait_for_selector("#transcript li.agent:has-text('UPS')", timeout=30_000)
        await page.click("#keypad button[data-digit='5']")
        # The question comes round again over the answer: the agent is interrupted.
        sid = await page.evaluate("window.phoneStats.callSid")
        store = service.services.store

        async def barge_ins() -> list[dict[str, str]]:
            events = await store.get_events(sid)
            return [e for e in events if e["type"] == "barge_in" and e["item_id"]]

        await eventually(barge_ins, within=30)
        await screenshot(page, "phone-page")
        await page.click("#hangup")
        await page.wait_for_selector("#phone-state:text('ended')", timeout=10_000)
        stats: dict[str, Any] = await page.evaluate("window.phoneStats")
    await service.services.writer.flush(timeout=5)
    call = await store.get_call(sid)
    assert call["carrier"] == "browser" and call["end_reason"] == "caller_hangup"
    events = await store.get_events(sid)
    assert any(e["type"] == "dtmf" and e["digit"] == "5" for e in events)
    assert stats["framesSent"] > 100 and stats["marksPlayed"] > 0
    # Truncation is what the page played of that item, to within one 20 ms frame (+ the
    # resampler's 3 ms): from the page's own clock at its marks and at the clear.
    barge_in = (await barge_ins())[0]
    item_id, heard_ms = barge_in["item_id"], int(barge_in["audio_end_ms"])
    assert 0 < heard_ms < int(barge_in["sent_ms"])
    played = [m for m in stats["marks"] if mark_parts(m["name"])[1] == item_id]
    first = next((m for m in played if not m["cleared"]), None)
    if first is None:
        # Cut inside its first chunk: the page never reached that chunk's mark, so the
        # truncation must lie within it.
        assert played and heard_ms <= mark_parts(played[0]["name"])[2], (heard_ms, played[:1])
        print(f"browser barge-in: truncated at {heard_ms} ms, inside the first chunk")
    else:
        item_start = first["atMs"] - mark_parts(first["name"])[2]
        clear = next(c for c in stats["clears"] if c["atMs"] >= first["atMs"])
        at_clear = clear["atMs"] - item_start
        # Never more than the page had played when the clear reached it (+ the resampler's
        # 3 ms): the model must not believe the operator heard words never played.
        assert heard_ms <= at_clear + 3, (heard_ms, clear)
        # The page plays on while the clear travels; on the shared clock, what it had played
        # when the service sent the clear is the truncation's target (printed: a measurement).
        estimate = at_clear - clear["transitMs"]
        print(
            f"browser barge-in: truncated at {heard_ms} ms; page at clear {at_clear:.0f} ms; "
            f"clear transit {clear['transitMs']:.0f} ms; page at send ≈ {estimate:.0f} ms "
            f"(diff {heard_ms - estimate:+.0f} ms)"
        )
    session = model.history[0]
    truncates = [e for e in session.received if e["type"] == "conversation.item.truncate"]
    assert (truncates[0]["item_id"], truncates[0]["audio_end_ms"]) == (item_id, heard_ms)
    assert problems == []


def turns_wav(path: Path, parts: list[tuple[str, float]], lead_s: float) -> Path:
    """Silence for the greeting, then each sentence followed by its pause, at 16 kHz."""
    pcm = b"\x00\x00" * int(16000 * lead_s)
    for text, pause_s in parts:
        pcm += speak(text, 16000) + b"\x00\x00" * int(16000 * pause_s)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm)
    return path


async def test_browser_call_to_the_offline_hotline(make_service, tmp_path) -> None:
    """No script: the offline engine hears the operator's microphone (Whisper), looks the
    order up through the tools, and answers (Piper); its transcript names the carrier."""
    from service.demo import HOTLINE_TURNS
    from service.modelserver.script import Script
    from tests.e2e.test_call_offline_engine import engine

    # Both numbers in one breath; the agent reads them back; the caller confirms (issue 18's
    # dialogue). The pause covers hearing, the read-back and its speech.
    question, confirmation = HOTLINE_TURNS
    wav = turns_wav(tmp_path / "hotline.wav", [(question, 11.0), (confirmation, 25.0)], lead_s=5.0)
    with model_on_a_thread(Script(), engine=engine()) as model:
        service = await make_service(
            realtime_backend="local",
            local_realtime_url=model.url,
            api_tokens=TOKEN,
            input_transcription_model="whisper-1",
        )
        await seed_orders(service.services.redis, service.services.settings.redis_key_prefix)
        async with chromium(microphone_wav=wav) as browser:
            _context, page = await logged_in(browser, service.base_url, TOKEN)
            await page.goto("/phone")
            await page.select_option("#profile", "hotline")
            await page.click("#call")
            await page.wait_for_selector("#transcript li.caller", timeout=30_000)
            agent = await page.wait_for_selector(
                "#transcript li.agent:has-text('UPS')", timeout=60_000
            )
            print("offline hotline said:", await agent.text_content())
            await screenshot(page, "phone-offline-hotline")
            await page.click("#hangup")
            await page.wait_for_selector("#phone-state:text('ended')", timeout=10_000)
