"""SDP offer/answer for one audio stream (RFC 4566, RFC 3264).

We answer one G.711 codec, the first of PCMU/8000 (PT 0) and PCMA/8000 (PT 8) in the offer's
order, and telephone-event/8000 at the payload type the offer uses (RFC 3264 §6.1: the answer
keeps the offer's numbers), ptime 20. An offer with neither codec is answered 488. Hold
(§8.4): the offer's direction ``sendonly``/``inactive`` or a ``c=0.0.0.0`` tells us to stop
sending.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MediaOffer", "SdpError", "build_answer", "build_offer", "parse_offer"]

PCMU = 0
PCMA = 8
_CODECS = {PCMU: "PCMU/8000", PCMA: "PCMA/8000"}


class SdpError(ValueError):
    """An offer we cannot answer (488 Not Acceptable Here)."""


@dataclass(slots=True)
class MediaOffer:
    address: str
    port: int
    payload_types: list[int] = field(default_factory=list)
    telephone_event: int | None = None  # the offer's PT for telephone-event/8000
    direction: str = "sendrecv"

    @property
    def on_hold(self) -> bool:
        """§8.4: the far end does not want our audio (or gave no address to send it to)."""
        return self.direction in ("sendonly", "inactive") or self.address in ("0.0.0.0", "::")

    @property
    def audio_pt(self) -> int | None:
        """The codec we answer with: the offer's first G.711 payload type."""
        return next((pt for pt in self.payload_types if pt in _CODECS), None)


def parse_offer(body: bytes) -> MediaOffer:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SdpError("SDP is not UTF-8") from exc
    session_address = ""
    offer: MediaOffer | None = None
    media_address = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        kind, _, value = line.strip().partition("=")
        if kind == "c":
            address = value.split()[-1] if value.split() else ""
            if offer is None:
                session_address = address
            else:
                media_address = address
        elif kind == "m":
            if offer is not None:
                continue  # RFC 3264 §6: we take the first audio stream only
            parts = value.split()
            if len(parts) < 4 or parts[0] != "audio" or not parts[1].isdigit():
                continue
            pts = [int(pt) for pt in parts[3:] if pt.isdigit()]
            offer = MediaOffer(address="", port=int(parts[1]), payload_types=pts)
        elif kind == "a" and offer is not None:
            if value in ("sendrecv", "sendonly", "recvonly", "inactive"):
                offer.direction = value
            elif value.startswith("rtpmap:"):
                pt_text, _, codec = value[7:].partition(" ")
                if codec.lower().startswith("telephone-event/8000") and pt_text.isdigit():
                    offer.telephone_event = int(pt_text)
        elif kind == "a" and offer is None and value in ("sendonly", "inactive"):
            session_address = session_address or ""
    if offer is None:
        raise SdpError("no audio stream in the offer")
    offer.address = media_address or session_address
    if not offer.address:
        raise SdpError("no connection address")
    if offer.telephone_event not in offer.payload_types:
        offer.telephone_event = None
    return offer


def _direction_answer(offered: str) -> str:
    return {"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}.get(
        offered, "sendrecv"
    )


def build_answer(offer: MediaOffer, address: str, port: int, session_id: int) -> bytes:
    if offer.audio_pt is None:
        raise SdpError("the offer has neither PCMU/8000 nor PCMA/8000")
    direction = _direction_answer(offer.direction)
    return _sdp(address, port, session_id, offer.audio_pt, offer.telephone_event, direction)


def build_offer(address: str, port: int, session_id: int, telephone_event: int = 101) -> bytes:
    return _sdp(address, port, session_id, PCMU, telephone_event, "sendrecv")


def _sdp(
    address: str,
    port: int,
    session_id: int,
    audio_pt: int,
    telephone_event: int | None,
    direction: str,
) -> bytes:
    family = "IP6" if ":" in address else "IP4"
    pts = f"{audio_pt}" if telephone_event is None else f"{audio_pt} {telephone_event}"
    lines = [
        "v=0",
        f"o=- {session_id} {session_id} IN {family} {address}",
        "s=voice-agent",
        f"c=IN {family} {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {pts}",
        f"a=rtpmap:{audio_pt} {_CODECS[audio_pt]}",
    ]
    if telephone_event is not None:
        lines += [
            f"a=rtpmap:{telephone_event} telephone-event/8000",
            f"a=fmtp:{telephone_event} 0-16",
        ]
    lines += ["a=ptime:20", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()
