"""A SIP call's media without sockets: ticks put one packet out each, marks echo as their
audio leaves, a clear stops the cut audio before the next packet."""

from __future__ import annotations

from service.telephony.events import ClearPlayback, MarkPlayed, PlaceMark, PlayAudio
from service.telephony.sip.call import SipCall
from service.telephony.sip.rtp import parse_rtp
from service.telephony.sip.sdp import MediaOffer


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, address: tuple[str, int]) -> None:
        self.sent.append(data)

    def close(self) -> None:
        pass


def media() -> tuple[SipCall, FakeTransport]:
    call = SipCall(
        "c",
        "SIPc",
        MediaOffer("192.0.2.10", 6000, [0, 101], telephone_event=101),
        jitter_ms=60,
        rtp_timeout=30,
        hang_up=lambda _call_id: None,
    )
    transport = FakeTransport()
    call.transport = transport  # type: ignore[assignment]
    return call, transport


def echoed(call: SipCall) -> list[str]:
    names = []
    while not call._inbox.empty():
        event, _ = call._inbox.get_nowait()
        if isinstance(event, MarkPlayed):
            names.append(event.name)
    return names


async def test_marks_echo_when_their_last_packet_leaves_and_clear_is_immediate() -> None:
    call, transport = media()
    await call.send(PlayAudio(b"\x01" * 320))
    await call.send(PlaceMark("a"))
    await call.send(PlayAudio(b"\x02" * 480))
    await call.send(PlaceMark("b"))
    call.tick(0.02)
    assert echoed(call) == []
    call.tick(0.04)
    assert echoed(call) == ["a"]  # its second (last) packet just left
    call.tick(0.06)
    await call.send(ClearPlayback())
    assert echoed(call) == ["b"]  # echoed by the clear, at once
    call.tick(0.08)
    payloads = [parse_rtp(p).payload for p in transport.sent]
    assert payloads[:3] == [b"\x01" * 160, b"\x01" * 160, b"\x02" * 160]
    assert payloads[3] == b"\xff" * 160  # nothing of the cut audio after the clear


async def test_no_packets_while_held() -> None:
    call, transport = media()
    call.update_media(MediaOffer("192.0.2.10", 6000, [0], direction="inactive"))
    call.tick(0.02)
    assert transport.sent == []
