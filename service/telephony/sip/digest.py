"""HTTP Digest for SIP (RFC 3261 §22, RFC 2617 qop=auth, RFC 8760 SHA-256), both sides.

Server side: :class:`DigestChallenger` issues stateless nonces (an HMAC of their issue time,
so nothing is stored per call) and checks ``Authorization`` answers. Client side:
:func:`answer_challenge` builds the ``Authorization`` for a ``WWW-Authenticate``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time

__all__ = ["DigestChallenger", "answer_challenge", "parse_digest"]

NONCE_LIFETIME_SECONDS = 300
_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def parse_digest(value: str) -> dict[str, str]:
    """``Digest realm="x", nonce="y", qop=auth`` → ``{"realm": "x", ...}`` (keys lower-case)."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    params: dict[str, str] = {}
    for part in _split_params(rest):
        key, eq, raw = part.partition("=")
        if eq:
            params[key.strip().lower()] = raw.strip().strip('"')
    return params


def _split_params(text: str) -> list[str]:
    parts, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def _h(algorithm: str, text: str) -> str:
    return _HASHES[algorithm](text.encode()).hexdigest()


def digest_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str = "",
    nc: str = "",
    cnonce: str = "",
) -> str:
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    if qop:
        return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{ha2}")


class DigestChallenger:
    def __init__(self, username: str, password: str, *, realm: str = "voice-agent") -> None:
        self.username = username
        self.password = password
        self.realm = realm
        self._key = os.urandom(16)

    def challenge(self, now: float | None = None, algorithm: str = "MD5") -> str:
        issued = str(int(now if now is not None else time.time()))
        mac = hmac.new(self._key, issued.encode(), hashlib.sha256).hexdigest()[:16]
        return (
            f'Digest realm="{self.realm}", nonce="{issued}.{mac}", '
            f'algorithm={algorithm}, qop="auth"'
        )

    def check(self, authorization: str, method: str, now: float | None = None) -> bool:
        params = parse_digest(authorization)
        nonce = params.get("nonce", "")
        issued, _, mac = nonce.partition(".")
        now = now if now is not None else time.time()
        expected = hmac.new(self._key, issued.encode(), hashlib.sha256).hexdigest()[:16]
        if not issued.isdigit() or not hmac.compare_digest(mac, expected):
            return False
        if now - int(issued) > NONCE_LIFETIME_SECONDS:
            return False
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm not in _HASHES or params.get("username") != self.username:
            return False
        wanted = digest_response(
            algorithm=algorithm,
            username=self.username,
            realm=self.realm,
            password=self.password,
            method=method,
            uri=params.get("uri", ""),
            nonce=nonce,
            qop=params.get("qop", ""),
            nc=params.get("nc", ""),
            cnonce=params.get("cnonce", ""),
        )
        return hmac.compare_digest(wanted, params.get("response", ""))


def answer_challenge(
    challenge: str, *, username: str, password: str, method: str, uri: str, cnonce: str = ""
) -> str:
    """The ``Authorization`` value answering ``challenge`` (nc=1, qop=auth when offered)."""
    params = parse_digest(challenge)
    algorithm = params.get("algorithm", "MD5").upper()
    qop = "auth" if "auth" in params.get("qop", "").split(",") else ""
    cnonce = cnonce or os.urandom(8).hex()
    nc = "00000001"
    response = digest_response(
        algorithm=algorithm,
        username=username,
        realm=params.get("realm", ""),
        password=password,
        method=method,
        uri=uri,
        nonce=params.get("nonce", ""),
        qop=qop,
        nc=nc if qop else "",
        cnonce=cnonce if qop else "",
    )
    value = (
        f'Digest username="{username}", realm="{params.get("realm", "")}", '
        f'nonce="{params.get("nonce", "")}", uri="{uri}", response="{response}", '
        f"algorithm={algorithm}"
    )
    if qop:
        value += f', qop={qop}, nc={nc}, cnonce="{cnonce}"'
    return value
