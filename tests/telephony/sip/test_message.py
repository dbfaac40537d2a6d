"""SIP message parsing (RFC 3261 §7) and digest (§22, RFC 8760)."""

from __future__ import annotations

import random

import pytest

from service.telephony.sip.digest import DigestChallenger, answer_challenge
from service.telephony.sip.message import SipParseError, parse
from tests.telephony.sip.messages import invite


def test_compact_forms_folding_and_multi_via() -> None:
    raw = (
        b"BYE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h1;branch=z9hG4bKa, SIP/2.0/UDP h2\r\n"
        b"f: <sip:x@y>;tag=1\r\nt: <sip:a@b>\r\n ;tag=2\r\ni: abc\r\nCSeq: 2 BYE\r\nl: 0\r\n\r\n"
    )
    message = parse(raw)
    assert message.get_all("via") == ["SIP/2.0/UDP h1;branch=z9hG4bKa", "SIP/2.0/UDP h2"]
    assert message.call_id == "abc" and message.get("to") == "<sip:a@b> ;tag=2"
    assert message.branch == "z9hG4bKa" and message.cseq == (2, "BYE")


def test_round_trip() -> None:
    message = parse(invite())
    assert parse(message.to_bytes()) == message


def test_fuzzed_datagrams_raise_only_parse_errors() -> None:
    rng = random.Random(13)
    base = invite()
    for _ in range(2000):
        data = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cut = bytes(data[: rng.randint(0, len(data))])
        try:
            parse(cut)
        except SipParseError:
            pass


def test_digest_md5_and_sha256() -> None:
    server = DigestChallenger("u", "p")
    for algorithm in ("MD5", "SHA-256"):
        challenge = server.challenge(algorithm=algorithm)
        auth = answer_challenge(challenge, username="u", password="p", method="INVITE", uri="sip:x")
        assert server.check(auth, "INVITE")
        assert not server.check(auth, "BYE")
    with pytest.raises(AssertionError):
        assert server.check('Digest nonce="1.x"', "INVITE")
