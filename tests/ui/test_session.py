from __future__ import annotations

import pytest

from service.ui.session import SessionSigner, token_fingerprint

SECRET = b"s" * 32
TOKENS = ("alpha-token", "beta-token")


def signer() -> SessionSigner:
    return SessionSigner(SECRET, ttl_seconds=3600)


def test_a_fresh_session_verifies_until_it_expires() -> None:
    cookie, session = signer().issue("alpha-token", now=1000.0)
    assert signer().verify(cookie, 1000.0 + 3599, TOKENS) == session
    assert signer().verify(cookie, 1000.0 + 3600, TOKENS) is None


def test_the_cookie_carries_no_token() -> None:
    cookie, _ = signer().issue("alpha-token", now=0.0)
    assert "alpha" not in cookie
    import base64

    body = cookie.split(".")[0]
    assert b"alpha" not in base64.urlsafe_b64decode(body + "==")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),
        lambda c: "x" + c,
        lambda c: c.split(".")[0],
        lambda c: "",
        lambda c: "!!!.???",
    ],
)
def test_a_tampered_cookie_is_refused(tamper) -> None:
    cookie, _ = signer().issue("alpha-token", now=0.0)
    assert signer().verify(tamper(cookie), 1.0, TOKENS) is None


def test_another_secret_refuses_the_cookie() -> None:
    cookie, _ = signer().issue("alpha-token", now=0.0)
    assert SessionSigner(b"t" * 32, 3600).verify(cookie, 1.0, TOKENS) is None


def test_removing_the_token_ends_its_sessions() -> None:
    cookie, _ = signer().issue("alpha-token", now=0.0)
    assert signer().verify(cookie, 1.0, ("beta-token",)) is None
    assert token_fingerprint("alpha-token") != token_fingerprint("beta-token")


def test_csrf_token_is_bound_to_the_session() -> None:
    _, one = signer().issue("alpha-token", now=0.0)
    _, two = signer().issue("alpha-token", now=0.0)
    token = signer().csrf_token(one)
    assert signer().csrf_ok(one, token)
    assert not signer().csrf_ok(two, token)
    assert not signer().csrf_ok(one, "")
    assert not signer().csrf_ok(one, token + "x")


def test_weak_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        SessionSigner(b"short", 3600)
    with pytest.raises(ValueError):
        SessionSigner(SECRET, 10)
