"""The dispatcher: claim a due contact atomically, check it, dial it. One per process.

Any number of processes run it against the same Redis; the claim script (``store.CLAIM``)
makes every decision that must hold across them (due, running, concurrency, pace, leases).
What is left here needs the contact's data and the clock: its calling window (a contact
claimed at 19:59:50 whose ring could run past 20:00 goes back to wait for tomorrow), the
do-not-call list (checked right before the dial), and the REST call itself. Dials run as
tasks (at most ``max_in_flight``), so a slow REST reply never holds back the pace.

Errors that placed no call (429/20429, 5xx, network) put the contact back after a back-off
without counting an attempt, and pause this process's dialing for that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from redis.exceptions import RedisError

from service.campaigns.campaigns import Campaigns
from service.campaigns.outbound import OutboundError, OutboundRequest
from service.campaigns.rules import CampaignRules
from service.campaigns.store import CampaignStore, Claim
from service.campaigns.windows import next_open, window_allows
from service.telephony.events import CarrierError

__all__ = ["Dispatcher"]

log = structlog.get_logger(__name__)
IDLE_POLL_S = 0.25  # nothing due, or the concurrency cap is reached: look again after this
LIVE_MARGIN_S = 120
MAX_OUTAGE_WAIT_S = 5.0  # a live slot frees after ring + time limit + this without a final status


class Dispatcher:
    def __init__(
        self,
        campaigns: Campaigns,
        *,
        account_cps: float,
        lease_s: float,
        ring_s: float,
        time_limit_s: float,
        max_in_flight: int = 50,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.campaigns = campaigns
        self.store: CampaignStore = campaigns.store
        self.account_interval_ms = 1000.0 / account_cps
        self.lease_ms = int(lease_s * 1000)
        self.ring_s = ring_s
        self.live_ms = int((ring_s + time_limit_s + LIVE_MARGIN_S) * 1000)
        self.clock = clock
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._backoff_until = 0.0
        self._failures = 0
        self.decisions = 0  # claim scripts run (bench)
        self._task: asyncio.Task[None] | None = None

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # Dials under way finish (a placed call must be recorded); bounded by REST timeout.
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=15)

    async def run(self) -> None:
        outage = 0  # consecutive failed passes: Redis down → back off up to MAX_OUTAGE_WAIT_S
        while True:
            try:
                delay = await self.step()
                if outage:
                    log.info("campaign dispatcher: Redis is back", failed_passes=outage)
                outage = 0
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                # One line, no traceback: rendering one per second would cost the live calls
                # of this process CPU while Redis is down.
                if outage == 0:
                    log.warning("campaign dispatcher: Redis unavailable", error=str(exc))
                outage += 1
                delay = min(MAX_OUTAGE_WAIT_S, 0.5 * 2**outage)
            except Exception:
                log.exception("campaign dispatcher step failed")
                delay = MAX_OUTAGE_WAIT_S
            await asyncio.sleep(delay)

    async def step(self) -> float:
        """One pass over active campaigns; returns how long to sleep before the next."""
        wait_s = 1.0
        if self.clock() < self._backoff_until:
            return min(wait_s, self._backoff_until - self.clock())
        for campaign_id in await self.store.active_ids():
            wait_s = min(wait_s, await self._campaign_step(campaign_id))
        return max(0.001, wait_s)

    async def _campaign_step(self, campaign_id: str) -> float:
        rules: CampaignRules | None = None
        while True:
            now = self.now_ms()
            await self._slots.acquire()
            try:
                claim = await self.store.claim(
                    campaign_id,
                    now,
                    lease_ms=self.lease_ms,
                    account_interval_ms=self.account_interval_ms,
                )
            except BaseException:
                self._slots.release()
                raise
            self.decisions += 1
            if claim.kind != "claim":
                self._slots.release()
                return _sleep_for(claim, now)
            rules = rules or await self.campaigns.rules(campaign_id)
            task = asyncio.create_task(self._dial(campaign_id, rules, claim))
            self._in_flight.add(task)
            task.add_done_callback(self._dial_done)

    def _dial_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("campaign dial failed", error=repr(task.exception()))

    async def _dial(self, campaign_id: str, rules: CampaignRules, claim: Claim) -> None:
        contact_id, contact = claim.contact_id, claim.contact
        zones = tuple(contact.get("zones", rules.default_timezone).split())
        now = datetime.fromtimestamp(self.clock(), UTC)
        if not window_allows(rules.windows, zones, now, self.ring_s):
            opens = next_open(rules.windows, zones, now, self.ring_s)
            if opens is None:
                await self._skip(campaign_id, contact_id, "never_open")
                return
            await self.store.release(
                campaign_id, contact_id, int(opens.timestamp() * 1000), "outside calling window"
            )
            return
        if claim.on_dnc:  # checked by the claim itself, right before this dial
            await self._skip(campaign_id, contact_id, "dnc")
            log.info("contact on do-not-call list: skipped", contact_id=contact_id)
            return
        request = OutboundRequest(
            to=contact.get("phone", ""),
            from_=rules.from_number,
            profile=rules.profile,
            variables=_variables(contact.get("variables", "{}")),
            campaign_id=campaign_id,
            contact_id=contact_id,
        )
        try:
            placed = await self.campaigns.outbound.place(request)
        except OutboundError as exc:
            await self._skip(campaign_id, contact_id, "invalid", error=str(exc))
            return
        except CarrierError as exc:
            if exc.retryable:
                self._failures += 1
                backoff = rules.retry.backoff_s(self._failures)
                self._backoff_until = self.clock() + backoff
                due = self.now_ms() + int(backoff * 1000)
                await self.store.release(campaign_id, contact_id, due, str(exc), "backoffs")
                log.warning("dial deferred (carrier busy or unreachable)", backoff_s=backoff,
                            error=str(exc))  # fmt: skip
                return
            await self._skip(campaign_id, contact_id, "failed", error=str(exc))
            return
        self._failures = 0
        now_ms = self.now_ms()
        if not await self.store.dialed(
            campaign_id, contact_id, placed.call_sid, now_ms, now_ms + self.live_ms
        ):
            # The lease ran out while the REST call was under way (lease_s must exceed the
            # REST timeout): another process may dial this contact too. Loud on purpose.
            log.error("lease lost during dial", contact_id=contact_id, call_sid=placed.call_sid)

    async def _skip(self, campaign_id: str, contact_id: str, result: str, error: str = "") -> None:
        await self.store.finish(
            campaign_id, contact_id, call_sid="", result=result, retry_at=None,
            fields={"last_error": error} if error else None,
        )  # fmt: skip


def _sleep_for(claim: Claim, now: int) -> float:
    if claim.kind in ("wait", "pace"):
        return max(0.001, min(1.0, (claim.at_ms - now) / 1000))
    return IDLE_POLL_S


def _variables(raw: str) -> dict[str, str]:
    import orjson

    try:
        value = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
