"""REGISTER as a client: digest once, refresh at 80 % of the granted expiry, retry on failure."""

from __future__ import annotations

from service.telephony.sip.dialog import T1
from service.telephony.sip.digest import DigestChallenger
from service.telephony.sip.message import SipMessage, parse
from service.telephony.sip.registration import RETRY_SECONDS, Registration, RegistrationState

REGISTRAR = ("192.0.2.60", 5060)


def reply(request: SipMessage, status: int, extra: str = "") -> SipMessage:
    text = (
        f"SIP/2.0 {status} X\r\nVia: {request.get('via')}\r\nFrom: {request.get('from')}\r\n"
        f"To: {request.get('to')};tag=r\r\nCall-ID: {request.call_id}\r\n"
        f"CSeq: {request.get('cseq')}\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    return parse(text.encode())


def test_register_with_digest_then_refresh() -> None:
    server = DigestChallenger("agent", "pw", realm="trunk")
    registration = Registration(
        registrar=REGISTRAR,
        domain="sip.example.net",
        user="agent",
        contact="192.0.2.1:5060",
        credentials=("agent", "pw"),
    )
    [first] = registration.start(0.0)
    request = parse(first.data)
    assert request.method == "REGISTER" and request.uri == "sip:sip.example.net"
    assert [parse(t.data).cseq for t in registration.poll(T1)[0]] == [(1, "REGISTER")]
    challenge = f"WWW-Authenticate: {server.challenge()}\r\n"
    [again], state = registration.on_response(reply(request, 401, challenge), 0.6)
    assert state is None
    request = parse(again.data)
    assert server.check(request.get("authorization"), "REGISTER")
    contact = "Contact: <sip:agent@192.0.2.1:5060>;expires=120\r\n"
    sent, state = registration.on_response(reply(request, 200, contact), 0.7)
    assert sent == [] and state == RegistrationState(200, 120)
    assert registration.poll(90.0) == ([], None)
    refresh, _ = registration.poll(0.7 + 96.0)
    assert parse(refresh[0].data).cseq == (3, "REGISTER")


def test_a_refusal_is_retried_later() -> None:
    registration = Registration(
        registrar=REGISTRAR, domain="d", user="u", contact="h:5060", credentials=None
    )
    [first] = registration.start(0.0)
    _, state = registration.on_response(reply(parse(first.data), 403), 0.1)
    assert state == RegistrationState(403)
    assert registration.poll(RETRY_SECONDS)[0] == []
    assert len(registration.poll(0.1 + RETRY_SECONDS)[0]) == 1
