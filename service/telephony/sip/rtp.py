"""RTP for one call (RFC 3550 §5.1), sans-I/O: packet codec, the receive side's reorder
buffer with silence fill, RFC 4733 telephone-events in, and the send side's packetiser.

Receive: packets are released in sequence order; a gap waits at most ``jitter_ms`` for the
missing packet, then is filled with μ-law silence of the missing length (so the model's clock
keeps pace with the caller's) and the late packet is dropped if it comes after all. When the
caller's packets stop altogether (silence suppression, a far end that only streams while it
talks), 20 ms of silence per 20 ms is handed on after ``jitter_ms`` so the model still hears
the pause that ends the caller's turn. Packets of
payload types we did not negotiate are dropped and counted (sipp replays its pcap's PT whatever
the answer says, sip-and-outbound.md §2.2). Memory per call: the reorder buffer holds at most
``max_buffered`` packets (default 16, i.e. 320 ms at 20 ms each).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "RtpError",
    "RtpPacket",
    "RtpReceiver",
    "RtpSender",
    "parse_rtp",
]

ULAW_SILENCE = 0xFF
DTMF_EVENTS = "0123456789*#ABCD"  # RFC 4733 §3.2: events 0-15
FRAME_SECONDS = 0.020
FRAME_BYTES = 160
MAX_FILL_BYTES = 8 * 500  # never invent more than 500 ms of silence for one gap
_HEADER = struct.Struct("!BBHII")


class RtpError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    def to_bytes(self) -> bytes:
        header = _HEADER.pack(
            0x80,
            (0x80 if self.marker else 0) | self.payload_type,
            self.sequence & 0xFFFF,
            self.timestamp & 0xFFFFFFFF,
            self.ssrc,
        )
        return header + self.payload


def parse_rtp(data: bytes) -> RtpPacket:
    """RFC 3550 §5.1 (CSRCs, header extension §5.3.1 and padding skipped)."""
    if len(data) < _HEADER.size:
        raise RtpError("shorter than an RTP header")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise RtpError("not RTP version 2")
    offset = _HEADER.size + 4 * (first & 0x0F)
    if first & 0x10:
        if len(data) < offset + 4:
            raise RtpError("truncated header extension")
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
    end = len(data)
    if first & 0x20:
        end -= data[-1] if data else 0
    if offset > end:
        raise RtpError("truncated packet")
    return RtpPacket(
        second & 0x7F, sequence, timestamp, ssrc, data[offset:end], bool(second & 0x80)
    )


def _seq_after(a: int, b: int) -> int:
    """Signed distance a - b in 16-bit sequence space (RFC 3550 A.1 wrap-around)."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


@dataclass(slots=True)
class _Held:
    packet: RtpPacket
    arrived: float


class RtpReceiver:
    """Turns arriving packets into in-order μ-law payloads and DTMF digits.

    Invariant: ``_expected`` is the sequence number of the next audio packet to release;
    ``_held`` holds packets at or after it, keyed by sequence.
    """

    def __init__(
        self,
        *,
        audio_pt: int = 0,
        telephone_event: int | None = None,
        to_ulaw: bytes | None = None,
        jitter_ms: float = 60.0,
        max_buffered: int = 16,
    ) -> None:
        self.audio_pt = audio_pt
        self.to_ulaw = to_ulaw  # a translate table when the call's codec is not μ-law
        self.telephone_event = telephone_event
        self.jitter = jitter_ms / 1000.0
        self.max_buffered = max_buffered
        self._expected: int | None = None
        self._next_timestamp: int | None = None
        self._held: dict[int, _Held] = {}
        self._digits_seen: dict[tuple[int, int], None] = {}
        # Counters (monotonic).
        self.packets = 0
        self.late = 0
        self.lost = 0
        self.wrong_payload_type = 0
        self.malformed = 0
        self.silence_filled_bytes = 0
        self.idle_filled_bytes = 0
        self.last_packet_at: float | None = None
        self._last_out_at: float | None = None

    def receive(self, data: bytes, now: float) -> tuple[list[bytes], list[str]]:
        """One datagram in; audio payloads ready to hand on (in order) and new digits."""
        try:
            packet = parse_rtp(data)
        except RtpError:
            self.malformed += 1
            return [], []
        self.last_packet_at = now
        if self.telephone_event is not None and packet.payload_type == self.telephone_event:
            return self.poll(now), self._dtmf(packet)
        if packet.payload_type != self.audio_pt:
            self.wrong_payload_type += 1
            return self.poll(now), []
        self.packets += 1
        if self._expected is None:
            self._expected = packet.sequence
        elif _seq_after(packet.sequence, self._expected) < 0:
            self.late += 1  # already filled with silence or a duplicate
            return self.poll(now), []
        self._held.setdefault(packet.sequence, _Held(packet, now))
        return self.poll(now), []

    def poll(self, now: float) -> list[bytes]:
        """Release what is due: the next in order at once; past a gap, once it is too old."""
        out: list[bytes] = []
        while self._held and self._expected is not None:
            held = self._held.pop(self._expected, None)
            if held is not None:
                out.append(self._release(held.packet))
                continue
            oldest = min(
                self._held.values(),
                key=lambda h: _seq_after(h.packet.sequence, self._expected or 0),
            )
            waited_too_long = now - oldest.arrived >= self.jitter
            if not waited_too_long and len(self._held) < self.max_buffered:
                break
            # Give up on the gap: fill it with silence and go on from the oldest held packet.
            gap = _seq_after(oldest.packet.sequence, self._expected)
            self.lost += gap
            if self._next_timestamp is not None:
                missing = (oldest.packet.timestamp - self._next_timestamp) & 0xFFFFFFFF
                fill = min(missing, MAX_FILL_BYTES)
                if fill:
                    self.silence_filled_bytes += fill
                    out.append(bytes([ULAW_SILENCE]) * fill)
            self._expected = oldest.packet.sequence
        if out:
            self._last_out_at = now
        elif not self._held and self._last_out_at is not None:
            while now - self._last_out_at >= self.jitter + FRAME_SECONDS:
                out.append(bytes([ULAW_SILENCE]) * FRAME_BYTES)
                self.idle_filled_bytes += FRAME_BYTES
                self._last_out_at += FRAME_SECONDS
        return out

    def _release(self, packet: RtpPacket) -> bytes:
        self._expected = (packet.sequence + 1) & 0xFFFF
        self._next_timestamp = (packet.timestamp + len(packet.payload)) & 0xFFFFFFFF
        if self.to_ulaw is not None:
            return packet.payload.translate(self.to_ulaw)
        return packet.payload

    def _dtmf(self, packet: RtpPacket) -> list[str]:
        """RFC 4733 §2.3: one event per (SSRC, timestamp); its end packet comes 3 times."""
        if len(packet.payload) < 4 or packet.payload[0] >= len(DTMF_EVENTS):
            return []
        key = (packet.ssrc, packet.timestamp)
        if key in self._digits_seen:
            return []
        self._digits_seen[key] = None
        while len(self._digits_seen) > 64:
            del self._digits_seen[next(iter(self._digits_seen))]
        return [DTMF_EVENTS[packet.payload[0]]]


class RtpSender:
    """Numbers our outgoing packets: sequence +1 and timestamp +samples per packet (§5.1)."""

    def __init__(
        self, ssrc: int, *, payload_type: int = 0, sequence: int = 0, timestamp: int = 0
    ) -> None:
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.sequence = sequence
        self.timestamp = timestamp
        self.packets = 0
        self._first = True

    def packet(self, payload: bytes) -> bytes:
        data = RtpPacket(
            self.payload_type, self.sequence, self.timestamp, self.ssrc, payload, marker=self._first
        ).to_bytes()
        self._first = False
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + len(payload)) & 0xFFFFFFFF
        self.packets += 1
        return data
