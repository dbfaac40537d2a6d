"""Real Chromium for the browser tests: Debian's ``chromium`` driven by Playwright for Python.

Playwright's own browser download is not used (``executable_path`` points at the system
browser, installed by ``.ci/run``). Fake media: a WAV file plays as the microphone, and the
permission prompt is answered yes. Screenshots go to ``SCREENSHOTS`` (linked from the README).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from playwright.async_api import Browser, BrowserContext, Page, async_playwright

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError("Debian's chromium is needed: apt-get install chromium (.ci/run does)")
    return path


@contextlib.asynccontextmanager
async def chromium(microphone_wav: Path | None = None) -> AsyncIterator[Browser]:
    """``microphone_wav``: an absolute path (Chromium resolves it from its own directory)."""
    args = [
        "--no-sandbox",  # tests run as root on CI machines, where the sandbox cannot start
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        "--autoplay-policy=no-user-gesture-required",
    ]
    if microphone_wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={microphone_wav}")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=args
        )
        try:
            yield browser
        finally:
            await browser.close()


async def logged_in(browser: Browser, base_url: str, token: str) -> tuple[BrowserContext, Page]:
    """A new browser context with an operator session, on the dashboard."""
    context = await browser.new_context(base_url=base_url)
    page = await context.new_page()
    await page.goto("/ui/login")
    await page.fill("#token", token)
    await page.click("#login")
    await page.wait_for_url("**/ui")
    return context, page


async def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
