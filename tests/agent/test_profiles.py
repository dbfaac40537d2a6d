"""Agent profiles: TOML loading, inheritance, number lookup, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.agent.hotline import hotline_registry
from service.agent.profiles import (
    HOTLINE_PROFILE,
    AgentProfile,
    Profiles,
    load_profiles,
    normalize_number,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "agent-profiles.example.toml"

GOOD = """
[default]
instructions = "Be brief."
voice = "cedar"
greeting = "Hello."
tools = ["lookup_order", "verify_caller", "transfer_call", "end_call"]

[numbers."+15550100002"]
name = "sales"
instructions = "Sell things."
tools = ["end_call"]
backend = "openai"

[numbers."+1 (555) 010-0003"]
greeting = "We're closed."
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profiles.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_means_the_hotline_profile() -> None:
    for path in (None, ""):
        profiles = load_profiles(path)
        assert profiles.default == HOTLINE_PROFILE
        assert profiles.for_number("+15550100002") == HOTLINE_PROFILE
        assert profiles.source is None


def test_hotline_profile_is_an_order_status_agent() -> None:
    p = HOTLINE_PROFILE
    assert p.tools == ("verify_caller", "lookup_order", "transfer_call", "end_call")
    assert p.backend is None and p.voice == "marin"
    assert "order number" in p.greeting
    for phrase in ("ZIP code", "verify_caller", "lookup_order", "transfer_call", "end_call"):
        assert phrase in p.instructions


def test_load_and_lookup(tmp_path: Path) -> None:
    profiles = load_profiles(write(tmp_path, GOOD))
    default = profiles.default
    assert default == AgentProfile(
        name="default",
        instructions="Be brief.",
        voice="cedar",
        greeting="Hello.",
        tools=("lookup_order", "verify_caller", "transfer_call", "end_call"),
        backend=None,
    )
    sales = profiles.for_number("+15550100002")
    assert sales.name == "sales" and sales.backend == "openai"
    assert sales.tools == ("end_call",) and sales.instructions == "Sell things."
    assert sales.voice == "cedar" and sales.greeting == "Hello."  # inherited from [default]
    closed = profiles.for_number("+1 555-010-0003")
    assert closed.name == "+15550100003" and closed.greeting == "We're closed."
    assert closed.instructions == "Be brief."
    assert profiles.for_number("+15559999999") is default
    assert profiles.for_number("") is default and profiles.for_number(None) is default


def test_default_inherits_from_the_builtin_profile(tmp_path: Path) -> None:
    profiles = load_profiles(write(tmp_path, '[default]\nvoice = "cedar"\n'))
    assert profiles.default.voice == "cedar"
    assert profiles.default.instructions == HOTLINE_PROFILE.instructions
    assert profiles.default.tools == HOTLINE_PROFILE.tools


def test_empty_tool_list_is_allowed(tmp_path: Path) -> None:
    profiles = load_profiles(write(tmp_path, '[numbers."+15550100009"]\ntools = []\n'))
    assert profiles.for_number("+15550100009").tools == ()


def test_normalize_number() -> None:
    assert normalize_number(" +1 (555) 010-0002 ") == "+15550100002"
    assert normalize_number("+1.555.010.0002") == "+15550100002"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[default\nvoice = 1", "not valid TOML"),
        ('[defaults]\nvoice = "x"', "unknown top-level key(s) defaults"),
        ('[default]\nvoise = "x"', "default: unknown key(s) voise"),
        ("[default]\nvoice = 3", "default.voice must be a non-empty string"),
        ('[default]\nvoice = "  "', "default.voice must be a non-empty string"),
        ('[default]\ntools = "end_call"', "default.tools must be a list"),
        ("[default]\ntools = [1]", "default.tools must be a list"),
        ('[default]\nbackend = "gemini-pro"', "default.backend 'gemini-pro' is not one of"),
        ('default = "x"', "default must be a table"),
        ('numbers = "x"', "numbers must be a table"),
        ('[numbers."+15550100002"]\ncolour = "x"', 'numbers."+15550100002": unknown key'),
        ('[numbers."sales"]\nvoice = "x"', 'numbers."sales": not a phone number'),
        (
            '[numbers."+15550100002"]\nvoice = "a"\n[numbers."+1 555 010 0002"]\nvoice = "b"',
            "configured twice",
        ),
    ],
)
def test_errors_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as info:
        load_profiles(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        load_profiles(tmp_path / "nope.toml")


def test_check_tools(tmp_path: Path) -> None:
    profiles = load_profiles(write(tmp_path, GOOD))
    assert profiles.tool_names() == {"lookup_order", "verify_caller", "transfer_call", "end_call"}
    profiles.check_tools(["lookup_order", "verify_caller", "transfer_call", "end_call"])
    with pytest.raises(ValueError, match=r"default: end_call, transfer_call.*sales: end_call"):
        profiles.check_tools(["lookup_order", "verify_caller"])


def test_profile_tools_select_from_a_registry() -> None:
    registry = hotline_registry()
    sub = registry.subset(t for t in HOTLINE_PROFILE.tools if t in registry)
    assert sub.names() == ["verify_caller", "lookup_order"]


def test_example_file_loads() -> None:
    profiles = load_profiles(EXAMPLE)
    assert isinstance(profiles, Profiles)
    assert profiles.default.name == "hotline"
    assert profiles.default.instructions == HOTLINE_PROFILE.instructions
    assert profiles.for_number("+15550100002").name == "sales"
    assert profiles.for_number("+15550100003").tools == ("end_call",)
    profiles.check_tools(["verify_caller", "lookup_order", "transfer_call", "end_call"])


def test_outbound_profiles_by_name_with_variables(tmp_path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text(
        """
[profiles.reminder]
greeting = "Hi {customer_name}, this is Acme about order {order_number}."
voicemail_message = "Hi {customer_name}, please call us about {order_number}. {{not a var}}"
wait_for_callee = true
tools = ["record_outcome", "end_call"]
"""
    )
    profiles = load_profiles(path)
    reminder = profiles.by_name("reminder")
    assert reminder is not None and reminder.wait_for_callee
    assert reminder.required_variables() == {"customer_name", "order_number"}
    filled = reminder.with_variables({"customer_name": "Ada", "order_number": "1001", "x": "y"})
    assert filled.greeting == "Hi Ada, this is Acme about order 1001."
    assert filled.voicemail_message.endswith("about 1001. {{not a var}}")
    with pytest.raises(ValueError, match="order_number"):
        reminder.with_variables({"customer_name": "Ada"})
    assert profiles.by_name("nobody") is None
    assert profiles.by_name("default") is profiles.default
