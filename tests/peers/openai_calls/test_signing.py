"""The stand-in's signer and the openai SDK's verifier agree (protocols.md C.2)."""

from __future__ import annotations

import base64
import time

import openai
import pytest

from service.peers.openai_calls.signing import webhook_headers

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
BODY = b'{"type":"realtime.call.incoming"}'


def verify(headers: dict[str, str], secret: str = SECRET, body: bytes = BODY) -> None:
    client = openai.OpenAI(api_key="unused")
    client.webhooks.verify_signature(body, headers, secret=secret, tolerance=300)


def test_a_signed_delivery_verifies() -> None:
    verify(webhook_headers(SECRET, "wh_1", int(time.time()), BODY))


@pytest.mark.parametrize(
    "change",
    [
        {"secret": "whsec_" + base64.b64encode(b"another-secret-0123456789abcdef!").decode()},
        {"body": BODY + b" "},
    ],
)
def test_another_secret_or_body_does_not_verify(change: dict) -> None:
    with pytest.raises(openai.InvalidWebhookSignatureError):
        verify(webhook_headers(SECRET, "wh_1", int(time.time()), BODY), **change)
