"""A campaign's rules: profile, caller id, concurrency, pace, windows, retries. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from service.campaigns.policy import RetryPolicy
from service.campaigns.windows import CallingWindow, parse_windows

__all__ = ["CampaignRules"]

ALWAYS = "Mon-Sun 00:00-24:00"


@dataclass(frozen=True)
class CampaignRules:
    profile: str
    from_number: str = ""
    name: str = ""
    concurrency: int = 5
    cps: float = 1.0
    windows: tuple[CallingWindow, ...] = field(default_factory=lambda: parse_windows(ALWAYS))
    default_timezone: str = "America/New_York"
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 1000:
            raise ValueError("concurrency must be between 1 and 1000")
        if not 0 < self.cps <= 100:
            raise ValueError("cps must be above 0 and at most 100")

    @property
    def interval_ms(self) -> float:
        return 1000.0 / self.cps

    def to_fields(self) -> dict[str, str]:
        return {
            "profile": self.profile,
            "from": self.from_number,
            "name": self.name,
            "concurrency": str(self.concurrency),
            "cps": repr(self.cps),
            "interval_ms": repr(self.interval_ms),
            "windows": "; ".join(str(w) for w in self.windows),
            "default_tz": self.default_timezone,
            "retry": orjson.dumps(self.retry.to_json()).decode(),
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> CampaignRules:
        return cls(
            profile=fields.get("profile", ""),
            from_number=fields.get("from", ""),
            name=fields.get("name", ""),
            concurrency=int(fields.get("concurrency", "5")),
            cps=float(fields.get("cps", "1")),
            windows=parse_windows(fields.get("windows") or ALWAYS),
            default_timezone=fields.get("default_tz") or "UTC",
            retry=RetryPolicy.from_json(orjson.loads(fields.get("retry") or "{}")),
        )

    @classmethod
    def from_request(cls, body: Mapping[str, object], default_tz: str) -> CampaignRules:
        """From an API/CLI request; ``ValueError`` naming the bad field."""
        windows = body.get("windows") or ALWAYS
        retry = body.get("retry") or {}
        if not isinstance(retry, Mapping):
            raise ValueError("retry must be an object")
        return cls(
            profile=str(body.get("profile") or ""),
            from_number=str(body.get("from") or ""),
            name=str(body.get("name") or ""),
            concurrency=int(body.get("concurrency", 5)),  # type: ignore[call-overload]
            cps=float(body.get("cps", 1.0)),  # type: ignore[arg-type]
            windows=parse_windows(windows),  # type: ignore[arg-type]
            default_timezone=str(body.get("timezone") or default_tz),
            retry=RetryPolicy.from_json(retry),
        )
