"""Reading realtime.call.incoming's SIP headers (sip-and-outbound.md 1.2)."""

from __future__ import annotations

import pytest

from service.telephony.openai_calls.control import refer_target
from service.telephony.openai_calls.incoming import read_incoming_call, sip_user


@pytest.mark.parametrize(
    ("value", "user"),
    [
        ('"Ann" <sip:+15550100@sip.example.net>;tag=abc', "+15550100"),
        ("<sip:+15550100001@sip.api.openai.com>", "+15550100001"),
        ("sips:proj_123@sip.api.openai.com;transport=tls", "proj_123"),
        ("<tel:+15550100;phone-context=x>", "+15550100"),
        ("+15550100", "+15550100"),
        ("", ""),
    ],
)
def test_sip_user_is_the_user_part_of_the_uri(value: str, user: str) -> None:
    assert sip_user(value) == user


def test_incoming_call_reads_numbers_profile_and_twilio_ids() -> None:
    call = read_incoming_call(
        "rtc_1",
        [
            {"name": "From", "value": "<sip:+15550100999@sip.twilio.com>;tag=1"},
            {"name": "To", "value": "<sip:proj_abc@sip.api.openai.com>"},
            {"name": "Call-ID", "value": "abc@host"},
            {"name": "X-Twilio-CallSid", "value": "CA123"},
            {"name": "x-profile", "value": " sales "},
            {"name": "X-Profile", "value": "second-one-is-ignored"},
        ],
    )
    assert call.call_id == "rtc_1"
    assert call.from_number == "+15550100999"
    assert call.to_number == "proj_abc"
    assert call.profile_name == "sales"
    assert call.carrier_fields() == {"twilio_call_sid": "CA123", "sip_call_id": "abc@host"}


def test_untrusted_header_values_are_bounded_and_missing_ones_are_empty() -> None:
    call = read_incoming_call("rtc_2", [{"name": "x-profile", "value": "p" * 10_000}, {}])
    assert len(call.profile_name) == 256
    assert call.from_number == call.to_number == call.twilio_call_sid == ""


@pytest.mark.parametrize(
    ("target", "uri"),
    [
        ("+15550109999", "tel:+15550109999"),
        ("sip:agent@pbx.example.com", "sip:agent@pbx.example.com"),
    ],
)
def test_a_transfer_target_becomes_the_refer_uri(target: str, uri: str) -> None:
    assert refer_target(target) == uri
