"""structlog set-up: JSON in production, console in development, secrets never printed.

Per-call context (call_sid, stream_sid, …) is bound with ``structlog.contextvars`` by the call's
own task, so every line a call logs carries it without passing loggers around.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

import structlog

__all__ = ["configure_logging", "redact_secrets"]

REDACTED = "[redacted]"
# Field names whose values are credentials whatever they hold.
_SECRET_KEY = re.compile(
    r"(token|secret|password|api[_-]?key|authorization|signature|auth)", re.IGNORECASE
)


# Credentials inside free text, e.g. the HTTP header dumps that uvicorn/websockets write at
# debug level ("< x-twilio-signature: …"), or a key in a URL query.
_SECRET_IN_TEXT = re.compile(
    r"(?i)((?:x-twilio-signature|authorization|api-key|x-api-key|cookie)\s*[:=]\s*)"
    r"(?:bearer\s+|basic\s+)?[^\s\"',;]+|([?&](?:key|token|api_key)=)[^&\s\"']+"
)


def _mask_text(text: str) -> str:
    return _SECRET_IN_TEXT.sub(lambda m: (m.group(1) or m.group(2)) + REDACTED, text)


class SecretRedactor:
    """A structlog processor: masks secret-named fields and any known secret value anywhere."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Short values would mask ordinary words; real credentials are long.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 8}, key=len, reverse=True)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return _mask_text(value)
        if isinstance(value, dict):
            return {k: self._field(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value

    def _field(self, key: Any, value: Any) -> Any:
        if isinstance(key, str) and _SECRET_KEY.search(key) and value not in (None, "", False):
            return REDACTED
        return self._clean(value)

    def __call__(self, _logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        return {k: self._field(k, v) for k, v in event_dict.items()}


_redactor = SecretRedactor()


def redact_secrets(*secrets: str) -> None:
    """Register credential values (API keys, tokens) to be masked wherever they show up."""
    _redactor.secrets = sorted(
        {*_redactor.secrets, *(s for s in secrets if s and len(s) >= 8)}, key=len, reverse=True
    )


def configure_logging(fmt: str = "console", level: str = "info") -> None:
    """Configure structlog and route the standard library's logging (uvicorn's too) through it."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redactor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        # Plain tracebacks: the rich ones print every local, credentials included.
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Access lines carry query strings and are one per request: keep them out of info, as
    # well as the HTTP client's and websockets' per-request/per-connection chatter.
    for name in ("uvicorn.access", "httpx", "httpcore", "websockets"):
        logging.getLogger(name).setLevel(logging.WARNING)
