"""The SIP user agent server without sockets: transactions, dialogs, access (RFC 3261)."""

from __future__ import annotations

from service.telephony.sip.endpoint import (
    T1,
    T2,
    CallConfirmed,
    CallEnded,
    CallOffered,
    MediaChanged,
    SipEndpoint,
    Transmit,
)
from service.telephony.sip.message import header_param, parse
from service.telephony.sip.sdp import build_answer
from tests.telephony.sip.messages import CALLER, OFFER, invite, request

ANSWER = build_answer(
    __import__("service.telephony.sip.sdp", fromlist=["parse_offer"]).parse_offer(OFFER.encode()),
    "192.0.2.1",
    20000,
    1,
)


def endpoint(**kwargs: object) -> SipEndpoint:
    kwargs.setdefault("allowed_sources", ("192.0.2.0/24",))
    return SipEndpoint(contact_host="192.0.2.1", contact_port=5060, **kwargs)  # type: ignore[arg-type]


def sent(actions: list) -> list:
    return [parse(a.data) for a in actions if isinstance(a, Transmit)]


def statuses(actions: list) -> list[int]:
    # Read from the status line alone: a 400 copies back the malformed header it refuses.
    return [int(a.data.split(b" ", 2)[1]) for a in actions if isinstance(a, Transmit)]


def offered(sip: SipEndpoint, now: float = 0.0) -> tuple[CallOffered, str]:
    actions = sip.receive(invite(), CALLER, now)
    call = next(a for a in actions if isinstance(a, CallOffered))
    tag = header_param(sent(actions)[-1].get("to"), "tag")
    return call, tag


def test_invite_gets_trying_ringing_and_an_offer_with_the_dialed_user() -> None:
    sip = endpoint()
    actions = sip.receive(invite(), CALLER, 0.0)
    assert statuses(actions) == [100, 180]
    call = next(a for a in actions if isinstance(a, CallOffered))
    assert (call.to_user, call.from_user) == ("+15550100", "+15551234")
    assert call.offer.port == 6000 and call.offer.telephone_event == 101


def test_answer_retransmits_200_doubling_to_t2_until_ack() -> None:
    sip = endpoint()
    call, tag = offered(sip)
    assert statuses(sip.answer(call.call_id, ANSWER, 0.0)) == [200]
    times = []
    now = 0.0
    while now < 10.0:
        now = round(now + 0.05, 2)
        if statuses(sip.poll(now)) == [200]:
            times.append(round(now, 2))
    gaps = [round(b - a, 1) for a, b in zip([0.0, *times], times, strict=False)]
    assert gaps[:4] == [T1, 2 * T1, 4 * T1, T2]
    ack = request("ACK", to_tag=tag, branch="z9hG4bK-ack")
    assert sip.receive(ack, CALLER, now) == [CallConfirmed(call.call_id)]
    assert statuses(sip.poll(now + 5)) == []


def test_no_ack_after_64_t1_sends_bye_and_ends_the_call() -> None:
    sip = endpoint()
    call, _ = offered(sip)
    sip.answer(call.call_id, ANSWER, 0.0)
    actions = sip.poll(64 * T1)
    assert [m.method for m in sent(actions)] == ["BYE"]
    assert CallEnded(call.call_id, "no_ack") in actions


def test_retransmitted_invite_and_reinvite_never_offer_a_second_call() -> None:
    sip = endpoint()
    call, tag = offered(sip)
    again = sip.receive(invite(), CALLER, 0.2)
    assert statuses(again) == [180] and not any(isinstance(a, CallOffered) for a in again)
    sip.answer(call.call_id, ANSWER, 0.3)
    sip.receive(request("ACK", to_tag=tag), CALLER, 0.4)
    hold = OFFER.replace("a=fmtp:101 0-11,16\r\n", "a=fmtp:101 0-11,16\r\na=sendonly\r\n")
    actions = sip.receive(invite(cseq=2, branch="z9hG4bK-2", to_tag=tag, body=hold), CALLER, 1.0)
    assert statuses(actions) == [200]
    change = next(a for a in actions if isinstance(a, MediaChanged))
    assert change.offer.on_hold
    assert not any(isinstance(a, CallOffered) for a in actions)


def test_cancel_before_answer_gets_200_and_487() -> None:
    sip = endpoint()
    call, _ = offered(sip)
    actions = sip.receive(request("CANCEL", cseq=1), CALLER, 0.5)
    assert statuses(actions) == [200, 487]
    assert CallEnded(call.call_id, "caller_cancelled") in actions
    assert sip.answer(call.call_id, ANSWER, 0.6) == []


def test_bye_both_ways() -> None:
    sip = endpoint()
    call, tag = offered(sip)
    sip.answer(call.call_id, ANSWER, 0.0)
    sip.receive(request("ACK", to_tag=tag), CALLER, 0.1)
    actions = sip.receive(request("BYE", cseq=2, branch="z9hG4bK-b", to_tag=tag), CALLER, 1.0)
    assert statuses(actions) == [200] and CallEnded(call.call_id, "caller_hangup") in actions
    # Ours: BYE retransmitted until a response comes.
    sip = endpoint()
    call, tag = offered(sip)
    sip.answer(call.call_id, ANSWER, 0.0)
    sip.receive(request("ACK", to_tag=tag), CALLER, 0.1)
    bye = sent(sip.hang_up(call.call_id, 1.0))[0]
    assert bye.method == "BYE" and bye.uri == "sip:caller@192.0.2.10:5060"
    assert header_param(bye.get("from"), "tag") == tag
    assert [m.method for m in sent(sip.poll(1.0 + T1))] == ["BYE"]
    ok = (
        f"SIP/2.0 200 OK\r\nVia: {bye.get('via')}\r\nFrom: {bye.get('from')}\r\n"
        f"To: {bye.get('to')}\r\nCall-ID: {bye.call_id}\r\nCSeq: {bye.get('cseq')}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    sip.receive(ok, CALLER, 1.6)
    assert sent(sip.poll(3.0)) == []


def test_options_unknown_methods_and_unknown_dialogs() -> None:
    sip = endpoint()
    options = sent(sip.receive(request("OPTIONS"), CALLER, 0.0))[0]
    assert options.status == 200 and "INVITE" in options.get("allow")
    assert statuses(sip.receive(request("SUBSCRIBE"), CALLER, 0.0)) == [405]
    assert statuses(sip.receive(request("BYE", to_tag="nope", call_id="x"), CALLER, 0.0)) == [481]


def test_offer_without_g711_gets_488() -> None:
    sip = endpoint()
    body = OFFER.replace("RTP/AVP 8 0 101", "RTP/AVP 9 101")
    assert statuses(sip.receive(invite(body=body), CALLER, 0.0)) == [488]


def test_sources_outside_the_allow_list_get_403_or_a_digest_challenge() -> None:
    stranger = ("198.51.100.7", 5060)
    assert statuses(endpoint().receive(invite(), stranger, 0.0)) == [403]
    sip = endpoint(credentials=("trunk", "secret"))
    challenge = sent(sip.receive(invite(), stranger, 0.0))[0]
    assert challenge.status == 401
    from service.telephony.sip.digest import answer_challenge

    auth = answer_challenge(
        challenge.get("www-authenticate"),
        username="trunk",
        password="secret",
        method="INVITE",
        uri="sip:+15550100@192.0.2.1:5060",
    )
    actions = sip.receive(invite(cseq=2, extra=f"Authorization: {auth}\r\n"), stranger, 0.1)
    assert any(isinstance(a, CallOffered) for a in actions)
    wrong = auth.replace('response="', 'response="0')
    assert statuses(
        sip.receive(invite(call_id="c2", extra=f"Authorization: {wrong}\r\n"), stranger, 0.2)
    ) == [401]


def test_garbage_never_raises_and_gets_400_when_answerable() -> None:
    sip = endpoint()
    for junk in (b"\x00\xff" * 50, b"hello", b"INVITE sip:x SIP/2.0\r\n\r\n", b"\r\n\r\n"):
        assert statuses(sip.receive(junk, CALLER, 0.0)) == []
    bad_cseq = invite().replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE")
    assert statuses(sip.receive(bad_cseq, CALLER, 0.0)) == [400]
    short_body = invite().replace(b"Content-Length: ", b"Content-Length: 9")
    assert statuses(sip.receive(short_body, CALLER, 0.0)) == [400]
    assert sip.malformed == 5


def test_fuzzed_requests_never_raise() -> None:
    import random

    rng = random.Random(7)
    sip = endpoint(credentials=("u", "p"))
    base = invite()
    for i in range(3000):
        data = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        source = CALLER if i % 2 else ("203.0.113.9", 5060)
        sip.receive(bytes(data[: rng.randint(0, len(data))]), source, i * 0.01)
        sip.poll(i * 0.01)


def confirmed(sip: SipEndpoint) -> tuple[CallOffered, str]:
    call, tag = offered(sip)
    sip.answer(call.call_id, ANSWER, 0.0)
    sip.receive(request("ACK", to_tag=tag), CALLER, 0.1)
    return call, tag


def response_to(message, status: int) -> bytes:  # type: ignore[no-untyped-def]
    return (
        f"SIP/2.0 {status} X\r\nVia: {message.get('via')}\r\nFrom: {message.get('from')}\r\n"
        f"To: {message.get('to')}\r\nCall-ID: {message.call_id}\r\n"
        f"CSeq: {message.get('cseq')}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_refer_then_notify_sipfrag_reports_the_transfer() -> None:
    from service.telephony.sip.endpoint import RequestAnswered, TransferProgress

    sip = endpoint()
    call, tag = confirmed(sip)
    [refer] = sent(sip.refer(call.call_id, "sip:+15559876@192.0.2.10", 1.0))
    assert refer.method == "REFER" and refer.get("refer-to") == "<sip:+15559876@192.0.2.10>"
    assert refer.cseq == (1, "REFER") and header_param(refer.get("from"), "tag") == tag
    assert sip.receive(response_to(refer, 202), CALLER, 1.1) == [
        RequestAnswered(call.call_id, "REFER", 202)
    ]
    for frag, status in ((b"SIP/2.0 100 Trying", 100), (b"SIP/2.0 200 OK", 200)):
        notify = request(
            "NOTIFY", cseq=3, to_tag=tag, extra="Event: refer\r\n", body=frag.decode() + "\r\n"
        )
        actions = sip.receive(notify, CALLER, 1.2)
        assert statuses(actions) == [200]
        assert TransferProgress(call.call_id, status) in actions


def test_refer_without_an_answer_times_out() -> None:
    from service.telephony.sip.endpoint import RequestAnswered

    sip = endpoint()
    call, _ = confirmed(sip)
    sip.refer(call.call_id, "sip:x@y", 1.0)
    assert RequestAnswered(call.call_id, "REFER", 0) in sip.poll(1.0 + 64 * T1)
