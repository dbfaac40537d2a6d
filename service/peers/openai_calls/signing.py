"""Standard Webhooks signing, as OpenAI signs its webhooks (protocols.md C.2).

``webhook-signature: v1,<base64 HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")>``
where the key is the base64 part of a ``whsec_…`` secret (else the secret's bytes).
Written from the description, not from the SDK's verifier, so that each checks the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["sign_webhook", "webhook_headers"]


def _key(secret: str) -> bytes:
    return base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()


def sign_webhook(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = webhook_id.encode() + b"." + str(timestamp).encode() + b"." + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": "OpenAI/1.0 (+https://platform.openai.com/docs/webhooks)",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_webhook(secret, webhook_id, timestamp, body),
    }
