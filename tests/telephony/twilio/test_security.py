"""Signature and stream-token rules (protocols.md A.4)."""

from __future__ import annotations

from twilio.request_validator import RequestValidator

from service.telephony.twilio.security import SignatureChecker, StreamTokens

KNOWN_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
KNOWN_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}
KNOWN_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_twilio_known_answer_vector() -> None:
    checker = SignatureChecker("12345", enforced=True)
    assert RequestValidator("12345").compute_signature(KNOWN_URL, KNOWN_PARAMS) == KNOWN_SIGNATURE
    assert checker.webhook_ok(KNOWN_URL, KNOWN_PARAMS, KNOWN_SIGNATURE)


def test_tampered_webhook_is_refused() -> None:
    checker = SignatureChecker("12345", enforced=True)
    assert not checker.webhook_ok(KNOWN_URL, {**KNOWN_PARAMS, "Digits": "1235"}, KNOWN_SIGNATURE)
    assert not checker.webhook_ok(
        KNOWN_URL.replace("foo=1", "foo=2"), KNOWN_PARAMS, KNOWN_SIGNATURE
    )
    assert not checker.webhook_ok(KNOWN_URL, KNOWN_PARAMS, "")
    assert not SignatureChecker("54321", enforced=True).webhook_ok(
        KNOWN_URL, KNOWN_PARAMS, KNOWN_SIGNATURE
    )


def test_upgrade_is_signed_over_the_wss_url_with_empty_params() -> None:
    checker = SignatureChecker("secret-token", enforced=True)
    url = "wss://agent.example.com/twilio/media"
    signature = RequestValidator("secret-token").compute_signature(url, {})
    assert checker.upgrade_ok(url, signature)
    assert not checker.upgrade_ok("https://agent.example.com/twilio/media", signature)


def test_checks_off_without_a_token_or_when_disabled() -> None:
    assert SignatureChecker("", enforced=True).webhook_ok(KNOWN_URL, KNOWN_PARAMS, "")
    assert SignatureChecker("12345", enforced=False).webhook_ok(KNOWN_URL, KNOWN_PARAMS, "bad")


def test_stream_token_is_bound_to_its_call() -> None:
    tokens = StreamTokens("k" * 32, ttl_seconds=60)
    token = tokens.mint("CA1", now=1000)
    assert tokens.check("CA1", token, now=1010) is None
    assert tokens.check("CA2", token, now=1010) == "token does not match this call"
    assert tokens.check("CA1", token, now=1061) == "token expired"
    assert tokens.check("CA1", "garbage", now=1010) == "malformed token"
    assert tokens.mint("CA1") != tokens.mint("CA1")  # fresh per call
    # A worker with another key (a forged token) is refused.
    assert StreamTokens("z" * 32).check("CA1", token, now=1010) is not None


def test_expiry_cannot_be_extended() -> None:
    tokens = StreamTokens("k" * 32, ttl_seconds=60)
    nonce, expiry, mac = tokens.mint("CA1", now=1000).split(".")
    forged = f"{nonce}.{int(expiry) + 10_000}.{mac}"
    assert tokens.check("CA1", forged, now=1100) == "token does not match this call"


def test_expiry_digits_int_cannot_read_are_malformed_not_an_exception() -> None:
    tokens = StreamTokens("k")
    for expiry in ("²", "①", "9" * 5000, "٨٠٠٠", ""):
        assert tokens.check("CA1", f"nonce.{expiry}.mac") == "malformed token"
    assert tokens.check("CA1", "x" * 5000) == "malformed token"
