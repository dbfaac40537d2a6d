"""SDP offer/answer (RFC 3264): PCMU at the offer's telephone-event PT, ptime 20, hold."""

from __future__ import annotations

import pytest

from service.telephony.sip.sdp import SdpError, build_answer, parse_offer
from tests.telephony.sip.messages import OFFER


def test_answer_keeps_the_offers_event_payload_type() -> None:
    offer = parse_offer(OFFER.encode())
    assert (offer.address, offer.port, offer.telephone_event) == ("192.0.2.10", 6000, 101)
    answer = build_answer(offer, "192.0.2.1", 20000, 5).decode()
    assert "m=audio 20000 RTP/AVP 0 101" not in answer  # the offer lists PCMA first
    assert "m=audio 20000 RTP/AVP 8 101" in answer
    assert "a=rtpmap:101 telephone-event/8000" in answer
    assert "a=ptime:20" in answer and "a=sendrecv" in answer


def test_hold_and_unanswerable_offers() -> None:
    assert parse_offer(OFFER.replace("c=IN IP4 192.0.2.10", "c=IN IP4 0.0.0.0").encode()).on_hold
    held = parse_offer((OFFER + "a=sendonly\r\n").encode())
    assert held.on_hold and "a=recvonly" in build_answer(held, "h", 1, 1).decode()
    with pytest.raises(SdpError):
        build_answer(parse_offer(OFFER.replace("8 0 101", "9 101").encode()), "h", 1, 1)


def test_pcma_first_in_the_offer_is_answered_as_pcma() -> None:
    offer = parse_offer(OFFER.replace("8 0 101", "8 101").encode())
    answer = build_answer(offer, "192.0.2.1", 20000, 5).decode()
    assert offer.audio_pt == 8 and "m=audio 20000 RTP/AVP 8 101" in answer
    assert "a=rtpmap:8 PCMA/8000" in answer
    with pytest.raises(SdpError):
        parse_offer(b"v=0\r\n")
