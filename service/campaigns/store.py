"""Campaign state in Redis: every key and every atomic step (Lua) of a campaign.

Keys (``P`` = ``REDIS_KEY_PREFIX``, ``C`` = ``P campaign:{id}``, braces literal: a hash tag)::

    P campaigns             set    campaign ids
    P campaigns:active      set    ids a dispatcher should look at (running or paused)
    C                       hash   rules (profile, from, concurrency, interval_ms, windows,
                                   retry, default_tz, ring_s) + state + counters
    C:ids                   list   contact ids in upload order (export order)
    C:c:{contact_id}        hash   phone, zones, variables, state, result, attempts,
                                   call_sids, answered_by, duration_s, outcome, last_error
    C:due                   zset   waiting contacts → earliest dial time (ms)
    C:leases                zset   claimed, not yet dialed → lease expiry (ms)
    C:live                  zset   dialed, no final status yet → safety expiry (ms)
    C:pace, P pace:account  string GCRA "theoretical arrival time" (ms)
    C:errors                hash   rejected upload rows (JSON) by contact id, for results
    P dnc                   set    E.164 numbers never to dial

Why Lua and sorted sets, not streams: a contact may be dialed only when it is due (its window
is open, its retry delay is over), the campaign is running, fewer than ``concurrency`` of the
campaign's calls are live and both pace buckets have room. That is one decision over five
keys, and it must be atomic across replicas — a script does it in one round trip. Streams with
consumer groups hand out entries as soon as they arrive and re-deliver on idle time, which
fits neither "due at 09:00 in Chicago" nor "only if a live slot is free"; we would still need
the sorted set and the checks. Leases are the sorted set ``C:leases``: a claim expires after
``lease_ms`` and the next claim (by any process) puts the contact back to ``due`` — a killed
dispatcher's contacts are dialed once, by someone else. Invariants every script keeps:
a contact id is in at most one of ``due``/``leases``/``done``; ``live ⊇ leases``.

Memory: one hash per contact (~300 B + variables) plus ~60 B per sorted-set member; measured
in ``bench/campaign_dispatch.py``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis

from service.campaigns.contacts import Contact

__all__ = ["CampaignKeys", "CampaignStore", "Claim", "now_ms"]

COUNTERS = (
    "total", "dialed", "answered", "voicemail_left", "machine", "fax", "busy", "no_answer",
    "failed", "canceled", "dnc", "invalid", "never_open", "done", "backoffs",
    "lease_expired",
)  # fmt: skip

ADD_CONTACT = """
-- KEYS: campaign, contact, due, ids   ARGV: contact_id, due_ms, field/value pairs...
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[2], 'state', 'waiting', 'attempts', 0)
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('RPUSH', KEYS[4], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'total', 1)
return 1
"""

CLAIM = """
-- KEYS: campaign, due, leases, live, pace_campaign, pace_account, active, dnc
-- ARGV: now_ms, lease_ms, account_interval_ms, contact_key_prefix, campaign_id
-- Returns {kind, value} or, for a claim, {'claim', id, on_dnc 0|1, contact fields...}:
-- the contact's data and the do-not-call check ride on the claim (one round trip).
local now = tonumber(ARGV[1])
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'running' then return {'state', state or 'missing'} end
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, cid in ipairs(expired) do
  -- A dispatcher died between claim and dial: the contact was never dialed by it.
  redis.call('ZREM', KEYS[3], cid)
  redis.call('ZREM', KEYS[4], cid)
  redis.call('ZADD', KEYS[2], now, cid)
  redis.call('HSET', ARGV[4] .. cid, 'state', 'waiting')
  redis.call('HINCRBY', KEYS[1], 'lease_expired', 1)
end
-- Live calls whose final status never came (lost callback) stop counting after their
-- safety expiry (ring + time limit + margin).
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local head = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #head == 0 then
  if redis.call('ZCARD', KEYS[4]) == 0 then
    redis.call('HSET', KEYS[1], 'state', 'done', 'finished_at_ms', now)
    redis.call('SREM', KEYS[7], ARGV[5])
    return {'done', '0'}
  end
  return {'idle', '0'}
end
if tonumber(head[2]) > now then return {'wait', head[2]} end
if redis.call('ZCARD', KEYS[4]) >= tonumber(redis.call('HGET', KEYS[1], 'concurrency')) then
  return {'full', '0'}
end
-- Pace: GCRA with no burst, so two dials are always >= one interval apart (per campaign
-- and per account); over any half-open 1 s window at most floor(cps) (+1 if fractional).
local interval = tonumber(redis.call('HGET', KEYS[1], 'interval_ms'))
local tat_c = tonumber(redis.call('GET', KEYS[5]) or '0')
local tat_a = tonumber(redis.call('GET', KEYS[6]) or '0')
local ready = math.max(tat_c, tat_a)
if ready > now then return {'pace', tostring(ready)} end
redis.call('SET', KEYS[5], tostring(now + interval), 'PX', math.ceil(interval) + 1000)
local acc = tonumber(ARGV[3])
redis.call('SET', KEYS[6], tostring(now + acc), 'PX', math.ceil(acc) + 1000)
local cid = head[1]
redis.call('ZREM', KEYS[2], cid)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), cid)
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[2]), cid)
redis.call('HSET', ARGV[4] .. cid, 'state', 'dialing')
local fields = redis.call('HGETALL', ARGV[4] .. cid)
local phone = redis.call('HGET', ARGV[4] .. cid, 'phone') or ''
local reply = {'claim', cid, tostring(redis.call('SISMEMBER', KEYS[8], phone))}
for _, v in ipairs(fields) do reply[#reply + 1] = v end
return reply
"""

DIALED = """
-- KEYS: campaign, contact, leases, live   ARGV: contact_id, call_sid, live_until_ms, now_ms
if redis.call('ZSCORE', KEYS[3], ARGV[1]) == false then return 0 end  -- lease lost
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
local sids = redis.call('HGET', KEYS[2], 'call_sids')
if sids and sids ~= '' then sids = sids .. ' ' .. ARGV[2] else sids = ARGV[2] end
redis.call('HSET', KEYS[2], 'state', 'calling', 'call_sid', ARGV[2], 'call_sids', sids,
  'last_dial_ms', ARGV[4])
redis.call('HINCRBY', KEYS[2], 'attempts', 1)
redis.call('HINCRBY', KEYS[1], 'dialed', 1)
return 1
"""

RELEASE = """
-- Not dialed (window closed, back-off): back to due; no attempt counted.
-- KEYS: campaign, contact, due, leases, live   ARGV: contact_id, due_ms, reason, counter
if redis.call('ZSCORE', KEYS[4], ARGV[1]) == false then return 0 end
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], 'state', 'waiting', 'next_at_ms', ARGV[2], 'last_error', ARGV[3])
if ARGV[4] ~= '' then redis.call('HINCRBY', KEYS[1], ARGV[4], 1) end
return 1
"""

FINISH = """
-- An attempt ended (or the contact is skipped). KEYS: campaign, contact, due, leases, live
-- ARGV: contact_id, call_sid ('' = not dialed: must hold the lease), result, retry_at_ms
--       ('' = done), then field/value pairs for the contact
local cid = ARGV[1]
if ARGV[2] ~= '' then
  if redis.call('HGET', KEYS[2], 'call_sid') ~= ARGV[2] then return 0 end
  if redis.call('HGET', KEYS[2], 'state') ~= 'calling' then return 0 end
elseif redis.call('ZSCORE', KEYS[4], cid) == false then
  return 0
end
redis.call('ZREM', KEYS[4], cid)
redis.call('ZREM', KEYS[5], cid)
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[2], 'result', ARGV[3])
redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[2], 'state', 'waiting', 'next_at_ms', ARGV[4])
  redis.call('ZADD', KEYS[3], ARGV[4], cid)
else
  redis.call('HSET', KEYS[2], 'state', 'done')
  redis.call('HINCRBY', KEYS[1], 'done', 1)
end
return 1
"""


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Claim:
    """What a claim attempt got: ``claim`` (``contact_id``, its ``contact`` fields and
    whether its number is on the do-not-call list), or why not: ``wait``/``pace`` (until
    ``at_ms``), ``full``, ``idle`` (calls still live), ``done``, ``state``."""

    kind: str
    contact_id: str = ""
    at_ms: int = 0
    contact: Mapping[str, str] = field(default_factory=dict)
    on_dnc: bool = False


class CampaignKeys:
    def __init__(self, prefix: str, campaign_id: str) -> None:
        # {id} is a Cluster hash tag: a script's campaign keys share one slot. The account
        # pace key and the active set do not: campaigns need one Redis (or Sentinel).
        base = f"{prefix}campaign:{{{campaign_id}}}"
        self.campaign = base
        self.ids = f"{base}:ids"
        self.due = f"{base}:due"
        self.leases = f"{base}:leases"
        self.live = f"{base}:live"
        self.contact_prefix = f"{base}:c:"
        self.pace = f"{base}:pace"
        self.errors = f"{base}:errors"

    def contact(self, contact_id: str) -> str:
        return self.contact_prefix + contact_id


class CampaignStore:
    """Async access to campaigns; every state change is one Lua script (atomic)."""

    def __init__(self, redis: Redis, prefix: str = "") -> None:
        self.redis = redis
        self.prefix = prefix
        self.active = f"{prefix}campaigns:active"
        self.all = f"{prefix}campaigns"
        self.dnc = f"{prefix}dnc"
        self.account_pace = f"{prefix}pace:account"
        self._add = redis.register_script(ADD_CONTACT)
        self._claim = redis.register_script(CLAIM)
        self._dialed = redis.register_script(DIALED)
        self._release = redis.register_script(RELEASE)
        self._finish = redis.register_script(FINISH)

    def keys(self, campaign_id: str) -> CampaignKeys:
        return CampaignKeys(self.prefix, campaign_id)

    # -- campaigns ------------------------------------------------------------------------

    async def create(self, campaign_id: str, rules: Mapping[str, object]) -> bool:
        """Store a new campaign (state ``running``); False if the id exists."""
        keys = self.keys(campaign_id)
        fields = {k: _field(v) for k, v in rules.items()}
        fields.update({"state": "running", "created_at_ms": str(now_ms())})
        fields.update({name: "0" for name in COUNTERS})
        if not await self.redis.hsetnx(keys.campaign, "id", campaign_id):
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.campaign, mapping=fields)
            pipe.sadd(self.all, campaign_id)
            pipe.sadd(self.active, campaign_id)
            await pipe.execute()
        return True

    async def get(self, campaign_id: str) -> dict[str, str]:
        return _text_map(await self.redis.hgetall(self.keys(campaign_id).campaign))

    async def set_state(self, campaign_id: str, state: str, *, only_from: Sequence[str]) -> bool:
        """Move to ``state`` if the campaign is in one of ``only_from`` (WATCH/MULTI)."""
        key = self.keys(campaign_id).campaign
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            current = _text(await pipe.hget(key, "state"))
            if current not in only_from:
                return False
            pipe.multi()
            pipe.hset(key, "state", state)
            if state == "canceled":
                pipe.srem(self.active, campaign_id)
            await pipe.execute()
        return True

    async def active_ids(self) -> list[str]:
        return sorted(_text(v) for v in await self.redis.smembers(self.active))

    async def live_count(self, campaign_id: str) -> int:
        return int(await self.redis.zcard(self.keys(campaign_id).live))

    # -- contacts -------------------------------------------------------------------------

    async def add_contacts(
        self, campaign_id: str, contacts: Sequence[Contact], due_ms: Sequence[int]
    ) -> int:
        """Add contacts not seen before (``contact_id`` is the idempotency key); returns
        how many were new. One pipeline of scripts per 500 contacts."""
        keys = self.keys(campaign_id)
        added = 0
        for start in range(0, len(contacts), 500):
            async with self.redis.pipeline(transaction=False) as pipe:
                for contact, due in zip(
                    contacts[start : start + 500], due_ms[start : start + 500], strict=True
                ):
                    args: list[Any] = [contact.contact_id, due]
                    args += ["phone", contact.phone, "zones", " ".join(contact.zones)]
                    args += ["variables", orjson.dumps(dict(contact.variables)).decode()]
                    await self._add(
                        keys=[keys.campaign, keys.contact(contact.contact_id), keys.due, keys.ids],
                        args=args,
                        client=pipe,
                    )
                added += sum(int(r) for r in await pipe.execute())
        return added

    async def contact(self, campaign_id: str, contact_id: str) -> dict[str, str]:
        return _text_map(await self.redis.hgetall(self.keys(campaign_id).contact(contact_id)))

    async def contact_ids(self, campaign_id: str) -> list[str]:
        return [_text(v) for v in await self.redis.lrange(self.keys(campaign_id).ids, 0, -1)]

    # -- the dial cycle -------------------------------------------------------------------

    async def claim(
        self, campaign_id: str, now: int, *, lease_ms: int, account_interval_ms: float
    ) -> Claim:
        keys = self.keys(campaign_id)
        reply = await self._claim(
            keys=[
                keys.campaign, keys.due, keys.leases, keys.live, keys.pace, self.account_pace,
                self.active, self.dnc,
            ],
            args=[now, lease_ms, account_interval_ms, keys.contact_prefix, campaign_id],
        )  # fmt: skip
        kind, value = _text(reply[0]), _text(reply[1])
        if kind == "claim":
            flat = [_text(v) for v in reply[3:]]
            contact = dict(zip(flat[::2], flat[1::2], strict=True))
            return Claim(kind, value, contact=contact, on_dnc=_text(reply[2]) == "1")
        return Claim(kind, at_ms=int(float(value)) if value.replace(".", "").isdigit() else 0)

    async def dialed(
        self, campaign_id: str, contact_id: str, call_sid: str, now: int, live_until: int
    ) -> bool:
        keys = self.keys(campaign_id)
        return bool(
            await self._dialed(
                keys=[keys.campaign, keys.contact(contact_id), keys.leases, keys.live],
                args=[contact_id, call_sid, live_until, now],
            )
        )

    async def release(
        self, campaign_id: str, contact_id: str, due: int, reason: str, counter: str = ""
    ) -> bool:
        keys = self.keys(campaign_id)
        return bool(
            await self._release(
                keys=[keys.campaign, keys.contact(contact_id), keys.due, keys.leases, keys.live],
                args=[contact_id, due, reason, counter],
            )
        )

    async def finish(
        self,
        campaign_id: str,
        contact_id: str,
        *,
        call_sid: str,
        result: str,
        retry_at: int | None,
        fields: Mapping[str, object] | None = None,
    ) -> bool:
        """Record an attempt's result; retry at ``retry_at`` or mark the contact done.
        With ``call_sid`` it applies only to the contact's current call (a late or
        duplicate final callback is a no-op); without, only while this process holds the
        contact's lease."""
        keys = self.keys(campaign_id)
        args: list[Any] = [contact_id, call_sid, result, "" if retry_at is None else retry_at]
        for name, value in (fields or {}).items():
            args += [name, _field(value)]
        return bool(
            await self._finish(
                keys=[keys.campaign, keys.contact(contact_id), keys.due, keys.leases, keys.live],
                args=args,
            )
        )

    async def record_errors(self, campaign_id: str, errors: Sequence[Mapping[str, object]]) -> None:
        """Rejected upload rows, kept for the results (never dialed). Keyed by contact id
        (or row number): the same bad row uploaded twice is one rejected row."""
        if not errors:
            return
        mapping = {
            str(e.get("contact_id") or f"row {e.get('row')}"): orjson.dumps(dict(e)).decode()
            for e in errors
        }
        await self.redis.hset(self.keys(campaign_id).errors, mapping=mapping)

    async def errors(self, campaign_id: str) -> list[dict[str, Any]]:
        raw = await self.redis.hvals(self.keys(campaign_id).errors)
        return [orjson.loads(item) for item in raw]

    async def rejected_count(self, campaign_id: str) -> int:
        return int(await self.redis.hlen(self.keys(campaign_id).errors))

    # -- do not call ----------------------------------------------------------------------

    async def add_dnc(self, numbers: Sequence[str]) -> int:
        return int(await self.redis.sadd(self.dnc, *numbers)) if numbers else 0

    async def on_dnc(self, number: str) -> bool:
        return bool(await self.redis.sismember(self.dnc, number))


def _field(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | list | tuple):
        return orjson.dumps(value).decode()
    return str(value)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value) if value is not None else ""


def _text_map(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}
