"""Calls over SIP/RTP into the whole service: our SIP phone (service/peers/sip) dials the SIP
edge on 127.0.0.1, the local OpenAI-Realtime server plays the agent, a real Redis records."""

from __future__ import annotations

import asyncio

from service.audio.g711 import pcm16_to_ulaw
from service.demo import DEMO_SCRIPT, synthetic_caller
from service.modelserver.script import FunctionCall, Turn
from service.peers.sip import SipPhone
from service.telephony.sip.server import call_sid_for


async def sip_service(make_service, local_model, script=DEMO_SCRIPT, **overrides):  # type: ignore[no-untyped-def]
    model = await local_model(script)
    service = await make_service(
        realtime_backend="local",
        local_realtime_url=model.url,
        sip_listen="127.0.0.1:0",
        sip_rtp_ports="21000-21999",
        **overrides,
    )
    return service, model


def phone_for(service) -> SipPhone:  # type: ignore[no-untyped-def]
    sip = service.services.sip
    assert sip is not None
    return SipPhone(("127.0.0.1", sip.port))


def caller_voice(text: str) -> bytes:
    return pcm16_to_ulaw(synthetic_caller(text))


async def wait_heard(phone: SipPhone, spurts: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    async def enough() -> bool:
        found = phone.talk_spurts()
        return len(found) >= spurts and (asyncio.get_running_loop().time() - found[-1][-1].at) > 0.3

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await enough():
        assert loop.time() < deadline, (
            f"heard {len(phone.talk_spurts())} spurts in {len(phone.heard)} packets",
            phone.heard[-3:],
        )
        await asyncio.sleep(0.05)


async def test_sip_call_greets_answers_and_barge_in_is_exact(make_service, local_model) -> None:
    service, _model = await sip_service(make_service, local_model)
    phone = phone_for(service)
    response = await phone.invite()
    assert response.status == 200
    assert [r.status for r in phone.responses][:2] == [100, 180]
    await wait_heard(phone, 1)  # the greeting
    await asyncio.sleep(phone.speak(caller_voice("Where is my order?")) / 1000 + 0.1)
    # Talk over the 4 s answer once about 1.5 s of it has been heard.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(phone.talk_spurts()) < 2 or len(phone.talk_spurts()[1]) < 75:
        assert loop.time() < deadline
        await asyncio.sleep(0.01)
    phone.speak(caller_voice("Wait, which carrier?"))
    await asyncio.sleep(3.0)
    assert (await phone.bye()).status == 200
    await phone.close()

    await service.services.writer.flush(timeout=5)
    store = service.services.store
    call_sid = call_sid_for(phone.call_id)
    record = await store.get_call(call_sid)
    assert record["carrier"] == "sip" and record["sip_call_id"] == phone.call_id
    assert (record["from"], record["to"], record["end_reason"]) == (
        "+15551234",
        "+15550100",
        "caller_hangup",
    )
    events = await store.get_events(call_sid)
    [barge_in] = [e for e in events if e["type"] == "barge_in"]
    audio_end_ms = int(barge_in["audio_end_ms"])
    assert any(e["type"] == "truncated" and e["item_id"] == barge_in["item_id"] for e in events)
    # What the phone heard of each reply: the greeting whole (1.8 s), the answer up to the
    # barge-in, then the short reply (1.2 s) whole: no packet of the cut answer after the clear.
    greeting, answer, reply = phone.talk_spurts()
    assert (len(greeting), len(reply)) == (90, 60)
    heard_ms = len(answer) * 20
    assert abs(heard_ms - audio_end_ms) <= 20, (heard_ms, audio_end_ms)
    assert int(barge_in["sent_ms"]) == 4000


async def ended_record(service, phone: SipPhone) -> tuple[dict, list[dict]]:  # type: ignore[no-untyped-def]
    await service.services.writer.flush(timeout=5)
    store = service.services.store
    call_sid = call_sid_for(phone.call_id)
    for _ in range(100):
        record = await store.get_call(call_sid)
        if record.get("end_reason"):
            break
        await asyncio.sleep(0.05)
        await service.services.writer.flush(timeout=5)
    return record, await store.get_events(call_sid)


async def test_dtmf_digits_arrive_once_each(make_service, local_model) -> None:
    service, _ = await sip_service(make_service, local_model)
    phone = phone_for(service)
    assert (await phone.invite()).status == 200
    await asyncio.sleep(0.3)
    for digit in "5#":
        phone.send_dtmf(digit)
        await asyncio.sleep(0.2)
    assert (await phone.bye()).status == 200
    await phone.close()
    record, events = await ended_record(service, phone)
    assert [e["digit"] for e in events if e["type"] == "dtmf"] == ["5", "#"]
    assert record["end_reason"] == "caller_hangup"


async def black_hole() -> tuple[asyncio.Server, str]:
    """A TCP server that accepts and never answers: a model that cannot get ready."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"ws://127.0.0.1:{port}/v1/realtime"


async def test_no_model_means_503_and_cancel_while_ringing_means_487(make_service) -> None:
    server, url = await black_hole()
    async with server:
        service = await make_service(
            realtime_backend="local",
            local_realtime_url=url,
            model_ready_timeout_seconds=1.5,
            sip_listen="127.0.0.1:0",
            sip_rtp_ports="21000-21999",
        )
        phone = phone_for(service)
        response = await phone.invite()
        assert response.status == 503
        await phone.close()

        phone = phone_for(service)
        await phone.open()
        invite = asyncio.create_task(phone.invite())
        for _ in range(100):
            if any(r.status == 180 for r in phone.responses):
                break
            await asyncio.sleep(0.01)
        assert (await phone.cancel()).status == 200
        assert (await invite).status == 487
        await phone.close()
        await asyncio.sleep(0.2)
        assert len(service.services.calls) == 0


async def test_the_service_hangs_up_when_the_callers_rtp_stops(make_service, local_model) -> None:
    service, _ = await sip_service(make_service, local_model, sip_rtp_timeout_seconds=1.0)
    phone = phone_for(service)
    assert (await phone.invite()).status == 200
    await asyncio.sleep(0.3)
    await phone.stop_media()
    await asyncio.wait_for(phone.ended_by_server.wait(), 5)
    record, _ = await ended_record(service, phone)
    assert record["end_reason"] == "rtp_timeout"
    await phone.close()


async def test_garbage_options_and_a_stranger_never_disturb_a_call(
    make_service, local_model
) -> None:
    service, _ = await sip_service(make_service, local_model)
    phone = phone_for(service)
    assert (await phone.invite()).status == 200
    for junk in (b"\x00" * 40, b"INVITE nonsense\r\n\r\n", b"SIP/2.0 200 OK\r\n\r\n", b"\r\n\r\n"):
        phone.send_raw(junk)
        phone.send_rtp(junk)
    bad = phone._request("MESSAGE", body="")[0].replace(b"CSeq: ", b"CSeq: x")
    phone.send_raw(bad)
    assert (await phone.request("OPTIONS")).status == 200
    heard_before = len(phone.heard)
    for _ in range(100):  # media carried on (bounded: a loaded machine may be slow)
        if len(phone.heard) >= heard_before + 20:
            break
        await asyncio.sleep(0.05)
    assert len(phone.heard) >= heard_before + 20
    assert any(r.status == 400 for r in phone.responses)  # the answerable one got a 400
    assert (await phone.bye()).status == 200
    await phone.close()
    record, _ = await ended_record(service, phone)
    assert record["end_reason"] == "caller_hangup"
    assert int(record["rtp_malformed"]) >= 3


async def test_a_source_outside_the_allow_list_is_refused(make_service, local_model) -> None:
    service, _ = await sip_service(make_service, local_model, sip_allowed_sources="10.0.0.0/8")
    phone = phone_for(service)
    assert (await phone.invite()).status == 403
    await phone.close()
    assert len(service.services.calls) == 0


async def test_hold_stops_our_audio_and_resume_brings_it_back(make_service, local_model) -> None:
    service, _ = await sip_service(make_service, local_model)
    phone = phone_for(service)
    assert (await phone.invite()).status == 200
    await asyncio.sleep(0.3)
    assert (await phone.reinvite("sendonly")).status == 200
    await asyncio.sleep(0.1)
    held_at = len(phone.heard)
    await asyncio.sleep(0.5)
    assert len(phone.heard) == held_at  # nothing sent while held
    assert (await phone.reinvite("sendrecv")).status == 200
    for _ in range(100):
        if len(phone.heard) >= held_at + 20:
            break
        await asyncio.sleep(0.05)
    assert len(phone.heard) >= held_at + 20
    assert len(service.services.calls) == 1  # a re-INVITE is not a second call
    assert (await phone.bye()).status == 200
    await phone.close()


async def test_five_percent_loss_and_reordering_keep_the_callers_clock(
    make_service, local_model
) -> None:
    service, _ = await sip_service(make_service, local_model)
    phone = SipPhone(("127.0.0.1", service.services.sip.port), drop_every=20, swap_every=7)
    assert (await phone.invite()).status == 200
    await asyncio.sleep(2.0)
    assert (await phone.bye()).status == 200
    await phone.close()
    record, _ = await ended_record(service, phone)
    sent = phone.sent_packets - phone.dropped_packets
    assert int(record["rtp_packets_in"]) >= sent - 2
    assert int(record["rtp_lost"]) >= phone.dropped_packets - 2
    # Every lost packet became 20 ms of silence: the model heard the caller's whole timeline.
    assert int(record["caller_audio_ms"]) >= (phone.sent_packets - 3) * 20


async def test_past_max_calls_a_sip_call_gets_503(make_service, local_model) -> None:
    service, _ = await sip_service(make_service, local_model, max_calls=1)
    first = phone_for(service)
    assert (await first.invite()).status == 200
    second = phone_for(service)
    assert (await second.invite()).status == 503
    assert (await first.bye()).status == 200
    for phone in (first, second):
        await phone.close()


async def agent_turn(make_service, local_model, call: FunctionCall):  # type: ignore[no-untyped-def]
    """A service whose agent answers the caller's first question by calling ``call``."""
    from tests.e2e.test_call_tools import hotline_service

    model, service = await hotline_service(
        make_service, local_model, sip_listen="127.0.0.1:0", sip_rtp_ports="21000-21999"
    )
    turn = Turn(text="One moment.", function_call=call)
    object.__setattr__(model.script, "caller_turn", lambda _request: turn)
    return service


async def test_transfer_call_becomes_a_refer_and_we_leave_on_its_200(
    make_service, local_model
) -> None:
    service = await agent_turn(
        make_service, local_model, FunctionCall("transfer_call", '{"target": "+1 (555) 010-9999"}')
    )
    phone = phone_for(service)
    assert (await phone.invite()).status == 200
    await wait_heard(phone, 1)
    phone.speak(caller_voice("Put me through to a person please."))
    await asyncio.wait_for(phone.ended_by_server.wait(), 10)
    assert phone.refer_to == "<sip:+15550109999@127.0.0.1>"
    assert phone.requests_received[-2:] == ["REFER", "BYE"]
    record, events = await ended_record(service, phone)
    assert record["end_reason"] == "transferred"
    assert any(e["type"] == "transfer" for e in events)
    await phone.close()


async def test_end_call_says_goodbye_then_sends_bye(make_service, local_model) -> None:
    service = await agent_turn(make_service, local_model, FunctionCall("end_call", "{}"))
    phone = phone_for(service)
    assert (await phone.invite()).status == 200
    await wait_heard(phone, 1)
    phone.speak(caller_voice("That is all, thanks."))
    await asyncio.wait_for(phone.ended_by_server.wait(), 10)
    record, _ = await ended_record(service, phone)
    assert record["end_reason"] == "agent_hangup"
    await phone.close()


async def test_outbound_call_through_a_digest_challenging_trunk(make_service, local_model) -> None:
    from service.telephony.events import CarrierError

    far_end = SipPhone(("127.0.0.1", 9), from_user="+15557654321")
    await far_end.open()
    far_end.answer_calls(challenge=("trunk", "secret"))
    service, _ = await sip_service(
        make_service,
        local_model,
        sip_outbound_proxy=f"127.0.0.1:{far_end.sip_port}",
        sip_username="trunk",
        sip_password="secret",
    )
    sip = service.services.sip
    call_sid = await sip.dial("+15557654321", from_number="+15550100")
    assert far_end.invites_answered == 1
    await wait_heard(far_end, 1)  # the agent's greeting reached the called party
    await service.services.writer.flush(timeout=5)
    record = await service.services.store.get_call(call_sid)
    assert (record["direction"], record["carrier"], record["to"]) == (
        "outbound",
        "sip",
        "+15557654321",
    )
    assert record["sip_call_id"] == far_end.call_id
    # A trunk that keeps refusing the credentials: the dial fails clearly.
    far_end.challenge = ("trunk", "other")
    try:
        await sip.dial("+15557654321")
    except CarrierError as exc:
        assert "rejected_407" in str(exc)
    else:
        raise AssertionError("a refused dial must raise")
    await far_end.close()


async def test_the_edge_registers_with_digest_at_start(make_service, local_model) -> None:
    """A registrar on loopback that challenges once, then grants 60 s."""
    from service.telephony.sip.digest import DigestChallenger
    from service.telephony.sip.message import build_response, parse

    checker = DigestChallenger("agent", "pw", realm="127.0.0.1")
    seen: list[str] = []

    class Registrar(asyncio.DatagramProtocol):
        def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
            self.transport = transport

        def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[no-untyped-def]
            request = parse(data)
            seen.append(request.get("authorization"))
            if checker.check(request.get("authorization"), "REGISTER"):
                extra = [("contact", request.get("contact") + ";expires=60")]
                response = build_response(request, 200, "OK", to_tag="r", headers=extra)
            else:
                challenge = [("www-authenticate", checker.challenge())]
                response = build_response(request, 401, "Unauthorized", headers=challenge)
            self.transport.sendto(response.to_bytes(), addr)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Registrar, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        service, _ = await sip_service(
            make_service,
            local_model,
            sip_registrar=f"127.0.0.1:{port}",
            sip_username="agent",
            sip_password="pw",
        )
        registration = service.services.sip.registration
        for _ in range(100):
            if registration.state is not None:
                break
            await asyncio.sleep(0.02)
        assert registration.state is not None and registration.state.expires == 60
        assert seen[0] == "" and seen[1].startswith("Digest ")
    finally:
        transport.close()
