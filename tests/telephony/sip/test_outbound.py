"""Outbound calls without sockets: INVITE client transaction, digest, ACK, BYE (RFC 3261 §13.2)."""

from __future__ import annotations

from service.telephony.sip.dialog import T1, CallAnswered, CallEnded, Transmit
from service.telephony.sip.digest import DigestChallenger
from service.telephony.sip.endpoint import SipEndpoint
from service.telephony.sip.message import SipMessage, header_param, parse
from service.telephony.sip.sdp import build_offer
from tests.telephony.sip.messages import OFFER

TRUNK = ("192.0.2.50", 5060)
URI = "sip:+15557654321@192.0.2.50"


def endpoint() -> SipEndpoint:
    return SipEndpoint(contact_host="192.0.2.1", contact_port=5060, allowed_sources=())


def dial(sip: SipEndpoint, **kwargs: object) -> tuple[str, SipMessage]:
    call_id, actions = sip.dial(
        request_uri=URI,
        from_user="+15550100",
        sdp=build_offer("192.0.2.1", 20000, 1),
        destination=TRUNK,
        now=0.0,
        **kwargs,  # type: ignore[arg-type]
    )
    return call_id, parse(actions[0].data)


def reply(invite: SipMessage, status: int, *, extra: str = "", body: str = "") -> bytes:
    to = invite.get("to") + ("" if status < 200 and status != 180 else ";tag=far")
    text = (
        f"SIP/2.0 {status} Whatever\r\nVia: {invite.get('via')}\r\nFrom: {invite.get('from')}\r\n"
        f"To: {to}\r\nCall-ID: {invite.call_id}\r\nCSeq: {invite.get('cseq')}\r\n"
        f"Contact: <sip:far@192.0.2.50:5070>\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    )
    return text.encode()


def sent(actions: list) -> list[SipMessage]:
    return [parse(a.data) for a in actions if isinstance(a, Transmit)]


def test_invite_is_retransmitted_until_a_provisional_then_answered_and_acked() -> None:
    sip = endpoint()
    call_id, invite = dial(sip)
    assert invite.method == "INVITE" and invite.uri == URI and invite.cseq == (1, "INVITE")
    assert [m.method for m in sent(sip.poll(T1))] == ["INVITE"]
    sip.receive(reply(invite, 180), TRUNK, 0.6)
    assert sent(sip.poll(5.0)) == []  # ringing: no more retransmissions
    actions = sip.receive(reply(invite, 200, body=OFFER), TRUNK, 6.0)
    [ack] = sent(actions)
    assert ack.method == "ACK" and ack.uri == "sip:far@192.0.2.50:5070"
    assert header_param(ack.get("to"), "tag") == "far"
    answered = next(a for a in actions if isinstance(a, CallAnswered))
    assert answered.call_id == call_id and answered.answer.port == 6000
    [bye] = sent(sip.hang_up(call_id, 7.0))
    assert bye.method == "BYE" and bye.uri == "sip:far@192.0.2.50:5070"
    assert bye.get("from") == invite.get("from") and header_param(bye.get("to"), "tag") == "far"


def test_a_407_is_answered_once_with_digest() -> None:
    sip = endpoint()
    server = DigestChallenger("trunk", "secret", realm="carrier")
    call_id, invite = dial(sip, credentials=("trunk", "secret"))
    challenge = f"Proxy-Authenticate: {server.challenge(algorithm='SHA-256')}\r\n"
    actions = sip.receive(reply(invite, 407, extra=challenge), TRUNK, 0.1)
    ack, again = sent(actions)
    assert ack.method == "ACK" and ack.branch == invite.branch
    assert again.cseq == (2, "INVITE") and again.branch != invite.branch
    assert server.check(again.get("proxy-authorization"), "INVITE")
    # A second challenge is a wrong password: the call ends.
    actions = sip.receive(reply(again, 407, extra=challenge), TRUNK, 0.2)
    assert CallEnded(call_id, "rejected_407") in actions


def test_busy_ends_the_call_and_silence_gives_up() -> None:
    sip = endpoint()
    call_id, invite = dial(sip)
    actions = sip.receive(reply(invite, 486), TRUNK, 0.1)
    assert [m.method for m in sent(actions)] == ["ACK"]
    assert CallEnded(call_id, "rejected_486") in actions
    sip = endpoint()
    call_id, invite = dial(sip)
    assert CallEnded(call_id, "no_answer") in sip.poll(64 * T1)


def test_hanging_up_while_ringing_cancels() -> None:
    sip = endpoint()
    call_id, invite = dial(sip)
    sip.receive(reply(invite, 180), TRUNK, 0.1)
    [cancel] = sent(sip.hang_up(call_id, 1.0))
    assert cancel.method == "CANCEL" and cancel.branch == invite.branch
    assert cancel.cseq == (1, "CANCEL")
