"""The hotline over SIP with no cloud: our SIP phone speaks (Piper) into the SIP edge, the
service talks to the local server running the offline speech engine, the hotline tools run
against the real Redis, and what the phone heard is transcribed."""

from __future__ import annotations

import asyncio

from service.agent.hotline.orders import seed_orders
from service.audio.g711 import pcm16_to_ulaw
from service.demo import BARGE_IN, HOTLINE_TURNS
from service.modelserver.engine.tts import speak
from service.peers.sip import SipPhone
from service.telephony.sip.server import call_sid_for
from tests.e2e.test_call_offline_engine import engine, heard_text
from tests.e2e.test_call_tools import audit_of, states


async def agent_has_spoken(phone: SipPhone, patience_s: float = 15.0) -> None:
    """Wait for a new talk spurt from the agent, then for it to end."""
    loop = asyncio.get_running_loop()
    spurts = len(phone.talk_spurts())
    deadline = loop.time() + patience_s
    while len(phone.talk_spurts()) <= spurts:
        assert loop.time() < deadline, "the agent did not answer"
        await asyncio.sleep(0.05)
    while loop.time() - phone.talk_spurts()[-1][-1].at < 0.6:
        assert loop.time() < deadline + patience_s
        await asyncio.sleep(0.05)


async def test_spoken_order_status_call_over_sip(make_service, local_model, tmp_path) -> None:
    model = await local_model(engine=engine())
    service = await make_service(
        realtime_backend="local",
        local_realtime_url=model.url,
        input_transcription_model="whisper-1",
        sip_listen="127.0.0.1:0",
        sip_rtp_ports="21000-21999",
    )
    await seed_orders(service.services.redis, service.services.settings.redis_key_prefix)
    phone = SipPhone(("127.0.0.1", service.services.sip.port))
    assert (await phone.invite()).status == 200

    async def say(text: str) -> None:
        await asyncio.sleep(phone.speak(pcm16_to_ulaw(speak(text, 8000))) / 1000 + 0.1)

    await agent_has_spoken(phone)  # the greeting
    await say(HOTLINE_TURNS[0])
    await agent_has_spoken(phone)
    await say(HOTLINE_TURNS[1])
    # Let the answer get well under way, then talk over it.
    loop = asyncio.get_running_loop()
    asked_at = loop.time()
    deadline = asked_at + 20

    def answer_ms() -> int:
        return 20 * sum(1 for p in phone.heard if p.at > asked_at and not p.silent)

    while answer_ms() < 4000:
        assert loop.time() < deadline, f"no long answer to talk over ({answer_ms()} ms)"
        await asyncio.sleep(0.05)
    await say(BARGE_IN)
    await asyncio.sleep(4.0)
    assert (await phone.bye()).status == 200
    await phone.close()
    record = tmp_path / "heard.wav"
    phone.record(record)

    call_sid = call_sid_for(phone.call_id)
    await service.services.writer.flush(timeout=5)
    entries = await audit_of(service, call_sid)
    assert states(entries, "verify_caller")[:3] == ["requested", "started", "finished"]
    assert states(entries, "lookup_order")[:3] == ["requested", "started", "finished"]
    said = heard_text(record).lower()
    assert "ship" in said and "ups" in said, said
    events = await service.services.store.get_events(call_sid)
    assert any(e["type"] == "barge_in" for e in events)
    stored = await service.services.store.get_call(call_sid)
    assert stored["carrier"] == "sip" and stored["end_reason"] == "caller_hangup"
