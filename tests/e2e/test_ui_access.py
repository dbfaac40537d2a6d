"""The dashboard's doors in real Chromium and over plain HTTP: login, session, CSRF, CSP."""

from __future__ import annotations

import time

import httpx

from service.ui.auth import COOKIE
from tests.support.browser import chromium, logged_in, screenshot

TOKEN = "operator-token-0123456789"
GUARDED_GETS = (
    "/ui",
    "/ui/live",
    "/ui/calls",
    "/ui/calls/CA123",
    "/ui/calls/CA123/feed",
    "/ui/latency",
    "/phone",
)


async def test_every_route_needs_a_session(make_service) -> None:
    service = await make_service(api_tokens=TOKEN)
    async with httpx.AsyncClient(base_url=service.base_url) as http:
        for path in GUARDED_GETS:
            reply = await http.get(path)
            assert reply.status_code in (303, 401), path
            assert "Content-Security-Policy" in reply.headers, path
        assert (await http.get("/ui")).headers["location"] == "/ui/login"
        # The bearer token alone does not open the pages: they need the cookie.
        reply = await http.get("/ui/live", headers={"Authorization": f"Bearer {TOKEN}"})
        assert reply.status_code == 401
        # A forged or expired cookie is refused like none.
        http.cookies.set(COOKIE, "e30.AAAA")
        assert (await http.get("/ui/latency")).status_code == 401


async def test_wrong_token_refused_after_a_delay(make_service) -> None:
    service = await make_service(api_tokens=TOKEN, ui_login_delay_seconds=0.5)
    origin = {"Origin": service.base_url}
    async with httpx.AsyncClient(base_url=service.base_url) as http:
        began = time.monotonic()
        reply = await http.post("/ui/login", data={"token": "guess"}, headers=origin)
        assert reply.status_code == 401 and time.monotonic() - began >= 0.5
        assert COOKIE not in reply.cookies
        # A login posted from another site is refused outright (login CSRF).
        reply = await http.post(
            "/ui/login", data={"token": TOKEN}, headers={"Origin": "http://evil.example"}
        )
        assert reply.status_code == 403
        reply = await http.post("/ui/login", data={"token": TOKEN}, headers=origin)
        assert reply.status_code == 303
        cookie = reply.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert (await http.get("/ui/latency")).status_code == 200


async def test_logout_needs_the_csrf_token(make_service) -> None:
    service = await make_service(api_tokens=TOKEN)
    origin = {"Origin": service.base_url}
    async with httpx.AsyncClient(base_url=service.base_url) as http:
        await http.post("/ui/login", data={"token": TOKEN}, headers=origin)
        page = (await http.get("/ui")).text
        csrf = page.split('name="csrf" content="', 1)[1].split('"', 1)[0]
        assert (await http.post("/ui/logout", headers=origin)).status_code == 403
        bad = await http.post("/ui/logout", data={"csrf": "x" + csrf}, headers=origin)
        assert bad.status_code == 403
        good = await http.post("/ui/logout", data={"csrf": csrf}, headers=origin)
        assert good.status_code == 303
        http.cookies.clear()
        assert (await http.get("/ui/latency")).status_code == 401


async def test_session_expires(make_service) -> None:
    service = await make_service(api_tokens=TOKEN)
    gate_signer_ttl = service.services.settings.ui_session_ttl_seconds
    async with httpx.AsyncClient(base_url=service.base_url) as http:
        reply = await http.post(
            "/ui/login", data={"token": TOKEN}, headers={"Origin": service.base_url}
        )
        assert f"max-age={gate_signer_ttl}" in reply.headers["set-cookie"].lower()


async def test_login_in_chromium_with_a_strict_csp(make_service) -> None:
    service = await make_service(api_tokens=TOKEN)
    async with chromium() as browser:
        context = await browser.new_context(base_url=service.base_url)
        page = await context.new_page()
        reply = await page.goto("/ui")
        assert reply is not None and page.url.endswith("/ui/login")
        csp = reply.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        await page.fill("#token", "wrong")
        await page.click("#login")
        assert await page.text_content("#login-error") == "Wrong token."
        await context.close()
        context, page = await logged_in(browser, service.base_url, TOKEN)
        problems: list[str] = []  # console errors (a CSP refusal shows here) after login
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        await page.wait_for_selector("#feed-state:text('live')")
        cookies = await context.cookies()
        session = next(c for c in cookies if c["name"] == COOKIE)
        assert session["httpOnly"] and session["sameSite"] == "Strict"
        assert await page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read it
        await page.wait_for_selector("#latency tbody tr")
        await screenshot(page, "dashboard-empty")
        assert problems == []


async def test_recent_calls_search_and_pages(make_service) -> None:
    service = await make_service(api_tokens=TOKEN)
    store = service.services.store
    for n in range(30):
        sid = f"CA{n:032x}"
        profile = "sales" if n % 3 == 0 else "hotline"
        store.call_started(
            sid,
            direction="inbound",
            from_=f"+1555010{n:04d}",
            to="+15550100002",
            backend="none",
            profile=profile,
        )
        if n < 10:
            store.call_ended(sid, end_reason="agent_hangup")
    assert await service.services.writer.flush(timeout=5)
    origin = {"Origin": service.base_url}
    async with httpx.AsyncClient(base_url=service.base_url) as http:
        await http.post("/ui/login", data={"token": TOKEN}, headers=origin)
        first = (await http.get("/ui/calls")).text
        assert first.count("/ui/calls/CA") == 25 and "cursor=25" in first
        assert f"CA{29:032x}" in first  # newest first
        second = (await http.get("/ui/calls", params={"cursor": 25})).text
        assert second.count("/ui/calls/CA") == 5
        sales = (await http.get("/ui/calls", params={"q": "sales"})).text
        assert sales.count("/ui/calls/CA") == 10
        by_number = (await http.get("/ui/calls", params={"q": "+15550100017"})).text
        assert by_number.count("/ui/calls/CA") == 1 and "+1••••••0017" in by_number
        assert "+15550100017" not in by_number.replace('value="+15550100017"', "")
        ended = (await http.get("/ui/calls", params={"q": "agent_hangup"})).text
        assert ended.count("/ui/calls/CA") == 10
        # The call page and its record, masked; an unknown call is a 404 page.
        page = await http.get(f"/ui/calls/CA{17:032x}")
        assert page.status_code == 200 and "+1••••••0017" in page.text
        assert (await http.get("/ui/calls/CAnope")).status_code == 404


async def test_campaign_progress_and_pause_resume_with_csrf(make_service) -> None:
    service = await make_service(
        api_tokens=TOKEN, campaign_dispatcher=False, outbound_from_number="+13125550100"
    )
    origin = {"Origin": service.base_url}
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=service.base_url) as http:
        created = await http.post("/v1/campaigns", headers=bearer, json={"profile": "hotline"})
        assert created.status_code == 201, created.text
        campaign_id = created.json()["id"]
        rows = "contact_id,phone\nk1,+13125550101\nk2,+13125550102\n"
        await http.post(
            f"/v1/campaigns/{campaign_id}/contacts",
            headers={**bearer, "Content-Type": "text/csv"},
            content=rows.encode(),
        )
        await http.post("/ui/login", data={"token": TOKEN}, headers=origin)
        page = (await http.get("/ui/campaigns", params={"id": campaign_id})).text
        assert 'id="campaign-progress" max="2" value="0"' in page
        csrf = page.split('name="csrf" content="', 1)[1].split('"', 1)[0]
        pause = f"/ui/campaigns/{campaign_id}/pause"
        assert (await http.post(pause, headers=origin)).status_code == 403
        assert (await http.post(pause, data={"csrf": csrf})).status_code == 403  # no Origin
        assert (await http.post(pause, data={"csrf": csrf}, headers=origin)).status_code == 303
        page = (await http.get("/ui/campaigns", params={"id": campaign_id})).text
        assert 'id="campaign-state" class="badge">paused<' in page
        resume = f"/ui/campaigns/{campaign_id}/resume"
        assert (await http.post(resume, data={"csrf": csrf}, headers=origin)).status_code == 303
        assert "No campaign" in (await http.get("/ui/campaigns", params={"id": "nope"})).text
