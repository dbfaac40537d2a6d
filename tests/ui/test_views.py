from __future__ import annotations

import orjson

from service.ui.views import REDACTED, clean_fields, mask_number, public_tool_entry


def test_numbers_are_masked_but_for_the_last_four_digits() -> None:
    assert mask_number("+15550100001") == "+1••••••0001"
    assert mask_number("15550100001") == "•••••••0001"
    assert mask_number("browser") == "browser"
    assert mask_number("1234") == "1234"
    assert mask_number("sip:+15550100001@example.com") == "sip:+•••••••0001@example.com"


def test_secret_looking_fields_never_reach_the_page() -> None:
    shown = clean_fields(
        {
            "from": "+15550100001",
            "token": "abc",
            "stream_token": "abc",
            "api_key": "k",
            "auth_header": "Bearer x",
            "profile": "hotline",
        },
        mask=True,
    )
    assert shown == {"from": "+1••••••0001", "profile": "hotline"}


def test_numbers_shown_whole_when_masking_is_off() -> None:
    assert clean_fields({"to": "+15550100002"}, mask=False) == {"to": "+15550100002"}


def test_tool_arguments_are_redacted_at_any_depth() -> None:
    arguments = orjson.dumps(
        {"order_number": "4217", "card_number": "4111", "nested": [{"password": "p"}]}
    ).decode()
    shown = public_tool_entry(
        {"state": "requested", "name": "verify_caller", "arguments": arguments}, mask=True
    )
    parsed = orjson.loads(shown["arguments"])
    assert parsed["order_number"] == "4217"
    assert parsed["card_number"] == REDACTED
    assert parsed["nested"] == [{"password": REDACTED}]
    assert "4111" not in shown["arguments"]


def test_non_json_values_pass_as_text() -> None:
    assert clean_fields({"result": "{not json"}, mask=True) == {"result": "{not json"}
