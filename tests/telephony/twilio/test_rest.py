"""Twilio's REST client and the call-control tools against a local stand-in for Twilio's REST
API, through the twilio SDK. The tools act through a ``CallControl`` that does what the Twilio
edge does with the worker's ``HangUp``/``Transfer`` commands."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import pytest

from service.agent.call_control import end_call, transfer_call
from service.agent.tools import ToolContext
from service.telephony.numbers import TransferPolicy, validate_transfer_target
from service.telephony.twilio.rest import (
    CallNotActiveError,
    TelephonyError,
    TwilioCalls,
    transfer_twiml,
)
from tests.support.twilio_rest import TwilioRestStandIn

ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "secret-auth-token"
SID = "CA" + "fedcba9876543210" * 2
CALL_PATH = f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{SID}.json"

# twilio 9.x's async client passes auth= to aiohttp, which aiohttp 3.14 deprecates; not ours.
pytestmark = [
    pytest.mark.network,
    pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning"),
]


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioRestStandIn]:
    async with TwilioRestStandIn(ACCOUNT, TOKEN) as stand_in:
        yield stand_in


@pytest.fixture
async def calls(twilio: TwilioRestStandIn) -> AsyncIterator[TwilioCalls]:
    async with TwilioCalls(ACCOUNT, TOKEN, base_url=twilio.base_url, timeout=2.0) as client:
        yield client


class RestControl:
    """The Twilio edge's part: a hang-up completes the call, a transfer redirects it."""

    def __init__(self, calls: TwilioCalls) -> None:
        self.calls = calls
        self.hang_ups: list[dict[str, object]] = []

    async def hang_up(self, reason: str) -> None:
        self.hang_ups.append(await self.calls.hang_up(SID))

    async def transfer(self, target: str) -> None:
        await self.calls.redirect(SID, transfer_twiml(target))


def context(calls: TwilioCalls, default_number: str = "") -> ToolContext:
    return ToolContext(
        call_sid=SID,
        redis=None,
        transfer_policy=TransferPolicy(default_number),
        call=RestControl(calls),
    )


def dial_of(twiml: str) -> tuple[str, ET.Element]:
    """(the <Say> text, the <Dial> element) of a transfer's TwiML."""
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    assert [child.tag for child in root] == ["Say", "Dial"]
    say, dial = root
    return say.text or "", dial


async def test_hang_up_sends_status_completed_with_basic_auth(
    twilio: TwilioRestStandIn, calls: TwilioCalls
) -> None:
    result = await calls.hang_up(SID)

    assert result == {"call_sid": SID, "already_ended": False, "status": "completed"}
    assert twilio.requests == [(CALL_PATH, {"Status": "completed"})]
    assert twilio.auth_users == [ACCOUNT]  # the stand-in checked the token too
    assert SID in twilio.completed


@pytest.mark.parametrize("reply", ["404", "400"])
async def test_hang_up_of_an_ended_call_is_success(
    twilio: TwilioRestStandIn, calls: TwilioCalls, reply: str
) -> None:
    twilio.completed.add(SID)
    twilio.completed_reply = reply  # type: ignore[assignment]

    result = await calls.hang_up(SID)

    assert result["already_ended"] is True
    assert result["twilio_code"] == (20404 if reply == "404" else 21220)
    assert len(twilio.requests) == 1


async def test_second_hang_up_is_already_ended(calls: TwilioCalls) -> None:
    assert (await calls.hang_up(SID))["already_ended"] is False
    assert (await calls.hang_up(SID))["already_ended"] is True


async def test_end_call_tool(twilio: TwilioRestStandIn, calls: TwilioCalls) -> None:
    ctx = context(calls)
    assert await end_call(ctx, reason="caller_done") == {"ended": True}
    assert twilio.requests == [(CALL_PATH, {"Status": "completed"})]
    assert await end_call(ctx) == {"ended": True}
    assert [h["already_ended"] for h in ctx.call.hang_ups] == [False, True]  # type: ignore[union-attr]


async def test_transfer_redirects_to_dial_twiml(
    twilio: TwilioRestStandIn, calls: TwilioCalls
) -> None:
    result = await transfer_call(context(calls), target="+1 (555) 987-6543")

    assert result == {"transferred": True, "target": "+15559876543"}
    [(path, form)] = twilio.requests
    assert path == CALL_PATH
    assert set(form) == {"Twiml"}  # a redirect, not a hang-up
    say, dial = dial_of(form["Twiml"])
    assert say == "Transferring you now."
    assert dial.text == "+15559876543"
    assert SID not in twilio.completed


async def test_transfer_to_human_uses_the_configured_number(
    twilio: TwilioRestStandIn, calls: TwilioCalls
) -> None:
    ctx = context(calls, default_number="+442071838750")
    for target in ("human", "Agent", ""):
        assert (await transfer_call(ctx, target=target))["target"] == "+442071838750"
    assert all(dial_of(form["Twiml"])[1].text == "+442071838750" for _, form in twilio.requests)


async def test_transfer_to_sip_uses_a_sip_noun(
    twilio: TwilioRestStandIn, calls: TwilioCalls
) -> None:
    await transfer_call(context(calls), target="sip:support@pbx.example.com;transport=tls")
    _, dial = dial_of(twilio.requests[0][1]["Twiml"])
    [sip] = list(dial)
    assert sip.tag == "Sip"
    assert sip.text == "sip:support@pbx.example.com;transport=tls"


INVALID_TARGETS = [
    "5551234",
    "+0123456789",
    "+1234567",
    "+1234567890123456",
    "call my boss",
    "sip:nohost",
    "sip:a b@example.com",
    "tel:+15551234567",
    "+1555<Hangup/>",
]


async def test_invalid_transfer_targets_are_refused_before_any_request(
    twilio: TwilioRestStandIn, calls: TwilioCalls
) -> None:
    for target in INVALID_TARGETS:
        with pytest.raises(ValueError, match=r"^I "):  # a sentence the agent can say
            await transfer_call(context(calls), target=target)
    assert twilio.requests == []


def test_human_without_a_configured_number_and_allowed_prefixes() -> None:
    with pytest.raises(ValueError, match="can't transfer you to a person"):
        validate_transfer_target("human", TransferPolicy())
    with pytest.raises(ValueError, match="can't transfer you to a person"):
        validate_transfer_target("agent", None)
    allowed = TransferPolicy(allowed_prefixes=("+1", "sip:"))
    assert validate_transfer_target("+15551234567", allowed) == "+15551234567"
    assert validate_transfer_target("SIP:a@b.example", allowed) == "sip:a@b.example"
    with pytest.raises(ValueError, match="not able to transfer"):
        validate_transfer_target("+882123456789", allowed)


async def test_transfer_of_an_ended_call(twilio: TwilioRestStandIn, calls: TwilioCalls) -> None:
    twilio.completed.add(SID)
    with pytest.raises(CallNotActiveError) as caught:
        await transfer_call(context(calls), target="+15559876543")
    assert (caught.value.status, caught.value.code) == (400, 21220)
    assert "not in-progress" in caught.value.message


async def test_wrong_token_is_a_telephony_error(twilio: TwilioRestStandIn) -> None:
    async with TwilioCalls(ACCOUNT, "wrong", base_url=twilio.base_url) as calls:
        with pytest.raises(TelephonyError) as caught:
            await calls.hang_up(SID)
    error = caught.value
    assert (error.status, error.code, error.retryable) == (401, 20003, False)
    assert error.message == "Authenticate"
    assert "hang_up" in str(error) and "20003" in str(error)
    assert "wrong" not in str(error)
    assert twilio.auth_users == [ACCOUNT] and twilio.requests == []


async def test_server_error_is_a_retryable_telephony_error(
    twilio: TwilioRestStandIn, calls: TwilioCalls
) -> None:
    twilio.fail_with = 500
    with pytest.raises(TelephonyError) as caught:
        await calls.hang_up(SID)
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (500, 20500, True)
    with pytest.raises(TelephonyError):
        await end_call(context(calls))


async def test_network_error_and_timeout_are_telephony_errors(
    twilio: TwilioRestStandIn,
) -> None:
    twilio.delay = 1.0
    async with TwilioCalls(ACCOUNT, TOKEN, base_url=twilio.base_url, timeout=0.2) as calls:
        with pytest.raises(TelephonyError, match=r"no reply within 0\.2 s") as caught:
            await calls.redirect(SID, "<Response/>")
        assert caught.value.status is None and caught.value.retryable

    base_url = twilio.base_url
    await twilio.stop()  # nothing listens on the port any more
    async with TwilioCalls(ACCOUNT, TOKEN, base_url=base_url) as calls:
        with pytest.raises(TelephonyError, match="network error") as caught:
            await calls.hang_up(SID)
    assert caught.value.retryable


async def test_tools_without_a_live_call() -> None:
    with pytest.raises(RuntimeError, match="needs a live call"):
        await end_call(ToolContext(call_sid=SID, redis=None))


def test_client_validates_its_arguments() -> None:
    with pytest.raises(ValueError):
        TwilioCalls("", TOKEN)
    calls = TwilioCalls(ACCOUNT, TOKEN, base_url="http://127.0.0.1:9/")
    assert TOKEN not in repr(calls)
    assert calls.base_url == "http://127.0.0.1:9"


async def test_twiml_longer_than_twilio_accepts(calls: TwilioCalls) -> None:
    with pytest.raises(ValueError, match="4000"):
        await calls.redirect(SID, "<Response>" + "<Pause/>" * 600 + "</Response>")


async def test_tool_specs_from_the_registry() -> None:
    from service.agent.tools import build_spec

    end_spec, transfer_spec = build_spec(end_call), build_spec(transfer_call)
    assert end_spec.ctx_param == transfer_spec.ctx_param == "ctx"
    assert end_spec.parameters["properties"]["reason"]["default"] == "caller_done"
    assert transfer_spec.parameters["required"] == ["target"]
    assert "ctx" not in transfer_spec.parameters["properties"]
