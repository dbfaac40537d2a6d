"""One stream per token, across replicas, against a real Redis (issue 11, item 6)."""

from __future__ import annotations

import redis.asyncio as aioredis

from service.telephony.twilio.security import StreamTokens, TokenLedger
from tests.support.redis_server import RedisServer


async def test_a_token_is_redeemed_once_with_its_remaining_life(redis_client) -> None:
    tokens = StreamTokens("k", ttl_seconds=300)
    token = tokens.mint("CA1", now=1_000_000)
    ledger = TokenLedger(redis_client, prefix="t:")
    replica = TokenLedger(redis_client, prefix="t:")  # another process, same Redis
    assert await ledger.redeem(token, "CA1", now=1_000_010) is True
    assert await replica.redeem(token, "CA1", now=1_000_020) is False
    assert await ledger.redeem(tokens.mint("CA1"), "CA1") is True  # a fresh token is fine
    ttl = await redis_client.ttl(ledger.key(token))
    assert 290 + TokenLedger.SKEW_MARGIN_SECONDS - 5 <= ttl <= 290 + TokenLedger.SKEW_MARGIN_SECONDS
    assert await redis_client.get(ledger.key(token)) == "CA1"


async def test_redis_down_is_undecided_not_an_error(own_redis_server: RedisServer) -> None:
    own_redis_server.stop()
    client = aioredis.Redis.from_url(own_redis_server.url)
    try:
        ledger = TokenLedger(client, prefix="t:", timeout=0.5)
        assert await ledger.redeem("n.1.m", "CA1") is None  # the caller admits (fail-open)
    finally:
        await client.aclose()
