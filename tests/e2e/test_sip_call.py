"""Calls over SIP/RTP into the whole service: our SIP phone (service/peers/sip) dials the SIP
edge on 127.0.0.1, the local OpenAI-Realtime server plays the agent, a real Redis records."""

from __future__ import annotations

import asyncio

from service.audio.g711 import pcm16_to_ulaw
from service.demo import DEMO_SCRIPT, synthetic_caller
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
