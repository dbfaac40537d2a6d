"""RTP receive (reorder, silence fill, PT filter, RFC 4733) and send numbering."""

from __future__ import annotations

import struct

from service.telephony.sip.rtp import RtpPacket, RtpReceiver, RtpSender, parse_rtp


def audio(seq: int, fill: int = 0x10, ssrc: int = 7) -> bytes:
    return RtpPacket(0, seq & 0xFFFF, seq * 160, ssrc, bytes([fill]) * 160).to_bytes()


def test_in_order_packets_pass_at_once() -> None:
    rx = RtpReceiver(telephone_event=101)
    assert rx.receive(audio(1), 0.0)[0] == [bytes([0x10]) * 160]
    assert rx.receive(audio(2), 0.02)[0] == [bytes([0x10]) * 160]


def test_reordered_packets_come_out_in_order() -> None:
    rx = RtpReceiver()
    rx.receive(audio(1, 1), 0.0)
    assert rx.receive(audio(3, 3), 0.04)[0] == []  # waiting for 2
    assert rx.receive(audio(2, 2), 0.05)[0] == [bytes([2]) * 160, bytes([3]) * 160]
    assert rx.lost == 0


def test_a_lost_packet_becomes_silence_after_the_jitter_window() -> None:
    rx = RtpReceiver(jitter_ms=60)
    rx.receive(audio(1), 0.0)
    assert rx.receive(audio(3), 0.04)[0] == []
    out = rx.poll(0.101)
    assert out == [b"\xff" * 160, bytes([0x10]) * 160]
    assert rx.lost == 1 and rx.silence_filled_bytes == 160
    assert rx.receive(audio(2), 0.11)[0] == [] and rx.late == 1  # too late: dropped


def test_sequence_wraps_around() -> None:
    rx = RtpReceiver()
    assert len(rx.receive(audio(0xFFFF), 0.0)[0]) == 1
    assert len(rx.receive(audio(0x10000), 0.02)[0]) == 1


def test_unnegotiated_payload_types_and_junk_are_dropped_and_counted() -> None:
    rx = RtpReceiver(telephone_event=101)
    pcma = RtpPacket(8, 1, 0, 9, b"\xd5" * 240).to_bytes()
    assert rx.receive(pcma, 0.0) == ([], [])
    assert rx.receive(b"\x00" * 5, 0.0) == ([], [])
    assert (rx.wrong_payload_type, rx.malformed) == (1, 1)


def test_rfc4733_digit_once_per_event_though_the_end_packet_comes_three_times() -> None:
    rx = RtpReceiver(telephone_event=101)
    digits = []
    for duration, end in ((0, 0), (320, 0), (640, 0x80), (640, 0x80), (640, 0x80)):
        payload = struct.pack("!BBH", 1, end | 10, duration)
        packet = RtpPacket(101, 1, 8000, 0x0E05384E, payload).to_bytes()
        digits += rx.receive(packet, 0.0)[1]
    assert digits == ["1"]


def test_sender_numbers_packets() -> None:
    tx = RtpSender(42, sequence=0xFFFF, timestamp=100)
    first = parse_rtp(tx.packet(b"\xff" * 160))
    second = parse_rtp(tx.packet(b"\xff" * 160))
    assert first.marker and not second.marker
    assert (second.sequence, second.timestamp - first.timestamp) == (0, 160)


def test_pcma_payloads_reach_the_worker_as_ulaw() -> None:
    from service.telephony.sip.g711 import ALAW_TO_ULAW, ULAW_TO_ALAW

    rx = RtpReceiver(audio_pt=8, to_ulaw=ALAW_TO_ULAW)
    alaw_silence = b"\xd5" * 160
    # A-law's quietest code (+8) is μ-law 0xFE: one step off zero, as G.711 quantises it.
    assert rx.receive(RtpPacket(8, 1, 0, 1, alaw_silence).to_bytes(), 0.0)[0] == [b"\xfe" * 160]
    assert bytes([0xFF]).translate(ULAW_TO_ALAW) == b"\xd5"


def test_when_the_caller_stops_sending_silence_keeps_the_models_clock() -> None:
    rx = RtpReceiver(jitter_ms=60)
    rx.receive(audio(1), 0.0)
    assert rx.poll(0.05) == []
    assert rx.poll(0.081) == [b"\xff" * 160]  # 60 ms of patience + one frame
    assert rx.poll(0.101) == [b"\xff" * 160]
    assert rx.receive(audio(2), 0.11)[0] == [bytes([0x10]) * 160]  # no double fill
