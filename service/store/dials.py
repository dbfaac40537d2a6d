"""What an outbound call was placed with, for the voice webhook that answers it.

``P dial:{dial_id}`` hash: ``profile``, ``variables`` (JSON), ``campaign_id``, ``contact_id``.
The dial id travels in the voice webhook's URL (``/twilio/voice?dial=…``, signed by Twilio as
part of the URL); the webhook turns the record into ``<Parameter>``s, so the call carries its
profile and variables to whichever replica takes its media stream. Expires after ``ttl``.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from redis.asyncio import Redis

__all__ = ["DialRecords"]


class DialRecords:
    def __init__(self, redis: Redis, prefix: str = "", ttl_seconds: int = 86_400) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = ttl_seconds

    def key(self, dial_id: str) -> str:
        return f"{self._prefix}dial:{dial_id}"

    async def save(
        self,
        dial_id: str,
        *,
        profile: str,
        variables: Mapping[str, str],
        campaign_id: str = "",
        contact_id: str = "",
    ) -> None:
        mapping = {
            "profile": profile,
            "variables": orjson.dumps(dict(variables)).decode(),
            "campaign_id": campaign_id,
            "contact_id": contact_id,
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.key(dial_id), mapping=mapping)
            pipe.expire(self.key(dial_id), self._ttl)
            await pipe.execute()

    async def load(self, dial_id: str) -> dict[str, object] | None:
        """The record, ``variables`` decoded; None if unknown or expired."""
        raw = await self._redis.hgetall(self.key(dial_id))
        if not raw:
            return None
        record: dict[str, object] = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        try:
            record["variables"] = orjson.loads(str(record.get("variables") or "{}"))
        except orjson.JSONDecodeError:
            record["variables"] = {}
        return record
