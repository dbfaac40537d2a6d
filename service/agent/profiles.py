"""Agent profiles: instructions, voice, greeting, tools and backend per dialed number.

Read from a TOML file (the ``AGENT_PROFILES`` setting; see
``deploy/agent-profiles.example.toml``)::

    [default]                      # used when no number matches
    instructions = "..."
    voice = "marin"
    greeting = "Thanks for calling Acme order support. What's your order number?"
    tools = ["verify_caller", "lookup_order", "transfer_call", "end_call"]

    [profiles.reminder]            # chosen by name (outbound calls, campaigns)
    greeting = "Hi {customer_name}, this is Acme about order {order_number}."
    voicemail_message = "Hi {customer_name}, Acme here about order {order_number}."
    wait_for_callee = true

    [numbers."+15550100002"]       # the dialed number (Twilio's ``To``)
    name = "sales"
    instructions = "..."
    tools = ["end_call"]
    backend = "openai"

Inheritance: keys missing from ``[default]`` come from the built-in hotline profile; keys
missing from a number's table come from the file's ``[default]``. ``name`` is not inherited
(it is ``"default"`` / the number itself unless given). ``backend`` unset means the service's
``REALTIME_BACKEND``. Numbers are compared after removing spaces, dashes, dots and
parentheses; there is no other fuzziness (Twilio always sends E.164).

Tool names are checked against the tools the service has with ``Profiles.check_tools`` (at
start-up, so a typo fails before the first call rather than during it).

Memory: the profiles live for the process; one per configured number.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = [
    "HOTLINE_PROFILE",
    "KNOWN_BACKENDS",
    "AgentProfile",
    "Profiles",
    "load_profiles",
    "normalize_number",
]

# Must match ``Settings.realtime_backend``: a profile naming another backend fails at load.
KNOWN_BACKENDS = frozenset({"openai", "azure", "gemini", "local", "none"})


@dataclass(frozen=True)
class AgentProfile:
    """How the agent behaves on one number. ``greeting`` is what the agent says first;
    ``backend`` None means the service default."""

    name: str
    instructions: str
    voice: str
    greeting: str
    tools: tuple[str, ...]
    backend: str | None = None
    # Outbound: what to say to an answering machine after its beep ("" = hang up instead),
    # and whether to hold the greeting until the callee speaks (async AMD starts the stream
    # at answer, so an agent that speaks first would talk over a voicemail greeting).
    voicemail_message: str = ""
    wait_for_callee: bool = False

    def required_variables(self) -> set[str]:
        """``{name}`` placeholders in instructions, greeting and voicemail message."""
        texts = (self.instructions, self.greeting, self.voicemail_message)
        return {match for text in texts for match in _PLACEHOLDER.findall(text)}

    def with_variables(self, variables: Mapping[str, str]) -> AgentProfile:
        """This profile with ``{name}`` placeholders filled in. ``ValueError`` naming what is
        missing; unknown variables are ignored; ``{{``/``}}`` stay literal braces."""
        missing = sorted(self.required_variables() - set(variables))
        if missing:
            raise ValueError(f"profile {self.name!r} needs variable(s): {', '.join(missing)}")

        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: str(variables[m.group(1)]), text)

        return replace(
            self,
            instructions=fill(self.instructions),
            greeting=fill(self.greeting),
            voicemail_message=fill(self.voicemail_message),
        )


HOTLINE_INSTRUCTIONS = """\
You are the phone agent of Acme's order-status hotline. You are on a phone call: answer in \
one or two short sentences, in plain words, with no lists, symbols or markdown.

Help the caller check on an order:
1. Ask for the order number (4 to 6 digits).
2. Before giving ANY detail about an order, verify the caller: ask for the ZIP code on the \
order, read it back digit by digit and wait for the caller's yes (every wrong ZIP counts \
toward a lockout), then call verify_caller. Never say, hint at or confirm what the ZIP code \
on file is. Digits the caller types on the keypad are exact: use them without reading back.
3. Once verified, call lookup_order and tell the caller where the order is, using its "say" \
sentence. Offer more detail (items, carrier) only if asked.
4. If the order can't be found, ask the caller to repeat the number once, digit by digit.
5. If verification fails three times, if the caller asks for a person, or if you can't \
help, offer to transfer them to a human and call transfer_call if they agree.
6. If a tool says it couldn't look something up, say so briefly and offer a human.

Read numbers digit by digit. Never make up order details. When the caller is done, say a \
short goodbye and call end_call.\
"""

HOTLINE_PROFILE = AgentProfile(
    name="hotline",
    instructions=HOTLINE_INSTRUCTIONS,
    voice="marin",
    greeting="Thanks for calling Acme order support. What's your order number?",
    tools=("verify_caller", "lookup_order", "transfer_call", "end_call"),
    backend=None,
)

_STRING_KEYS = ("name", "instructions", "voice", "greeting", "backend", "voicemail_message")
_KEYS = frozenset({*_STRING_KEYS, "tools", "wait_for_callee"})
# ``{customer_name}``; ``{{`` is not a placeholder (lookbehind/ahead on the braces).
_PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
_PUNCTUATION = re.compile(r"[\s\-.()]")


def normalize_number(number: str) -> str:
    """``"+1 (555) 010-0002"`` → ``"+15550100002"``: spaces, dashes, dots, parentheses go."""
    return _PUNCTUATION.sub("", number)


@dataclass(frozen=True)
class Profiles:
    """The default profile and one per dialed number (keys normalised)."""

    default: AgentProfile = HOTLINE_PROFILE
    numbers: Mapping[str, AgentProfile] = field(default_factory=dict)
    source: Path | None = None  # the file they came from; None: built in
    named: Mapping[str, AgentProfile] = field(default_factory=dict)  # [profiles.NAME]

    def by_name(self, name: str) -> AgentProfile | None:
        """The profile called ``name``: a ``[profiles.NAME]`` table, else any profile whose
        ``name`` matches (default and per-number ones); None if there is none."""
        if name in self.named:
            return self.named[name]
        return next((p for p in self.all() if p.name == name), None)

    def for_number(self, to: str | None) -> AgentProfile:
        """The profile for the dialed number ``to``; the default when none matches."""
        if not to:
            return self.default
        return self.numbers.get(normalize_number(to), self.default)

    def all(self) -> list[AgentProfile]:
        return [self.default, *self.numbers.values(), *self.named.values()]

    def tool_names(self) -> set[str]:
        """Every tool any profile enables."""
        return {name for profile in self.all() for name in profile.tools}

    def check_tools(self, available: Iterable[str]) -> None:
        """``ValueError`` naming each profile that enables a tool not in ``available``."""
        known = set(available)
        problems = [
            f"{profile.name}: {', '.join(sorted(set(profile.tools) - known))}"
            for profile in self.all()
            if set(profile.tools) - known
        ]
        if problems:
            where = f"{self.source}: " if self.source else ""
            raise ValueError(f"{where}unknown tools in profiles ({'; '.join(problems)})")


def load_profiles(path: str | Path | None) -> Profiles:
    """Profiles from the TOML file at ``path``; ``None``/empty: the built-in hotline profile
    only. A path that does not exist, bad TOML, unknown keys or wrong types raise
    ``ValueError`` naming the file and the key."""
    if path is None or str(path) == "":
        return Profiles()
    source = Path(path)
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{source}: agent profiles file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{source}: cannot read agent profiles: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not valid TOML: {exc}") from None

    unknown = sorted(set(data) - {"default", "numbers", "profiles"})
    if unknown:
        raise ValueError(
            f"{source}: unknown top-level key(s) {', '.join(unknown)} "
            '(expected [default] and [numbers."+1..."])'
        )
    default_table = _table(data.get("default", {}), source, "default")
    default = _profile(default_table, HOTLINE_PROFILE, source, "default", name="default")

    numbers_table = _table(data.get("numbers", {}), source, "numbers")
    numbers: dict[str, AgentProfile] = {}
    for raw_number, table in numbers_table.items():
        where = f'numbers."{raw_number}"'
        number = normalize_number(raw_number)
        if not re.fullmatch(r"\+?\d{3,15}", number):
            raise ValueError(f"{source}: {where}: not a phone number (E.164, e.g. +15550100002)")
        if number in numbers:
            raise ValueError(f"{source}: {where}: the same number is configured twice")
        numbers[number] = _profile(
            _table(table, source, where), default, source, where, name=number
        )
    named: dict[str, AgentProfile] = {}
    for name, table in _table(data.get("profiles", {}), source, "profiles").items():
        where = f"profiles.{name}"
        named[name] = _profile(_table(table, source, where), default, source, where, name=name)
    return Profiles(default=default, numbers=numbers, source=source, named=named)


def _table(value: Any, source: Path, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{source}: {where} must be a table, got {type(value).__name__}")
    return value


def _profile(
    table: dict[str, Any], base: AgentProfile, source: Path, where: str, *, name: str
) -> AgentProfile:
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ValueError(
            f"{source}: {where}: unknown key(s) {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(_KEYS))})"
        )
    changes: dict[str, Any] = {"name": name}
    for key in _STRING_KEYS:
        if key not in table:
            continue
        value = table[key]
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{source}: {where}.{key} must be a non-empty string")
        changes[key] = value.strip()
    if "tools" in table:
        tools = table["tools"]
        if not isinstance(tools, list) or not all(isinstance(t, str) and t for t in tools):
            raise ValueError(f"{source}: {where}.tools must be a list of tool names (strings)")
        changes["tools"] = tuple(dict.fromkeys(tools))  # order kept, duplicates dropped
    if "wait_for_callee" in table:
        if not isinstance(table["wait_for_callee"], bool):
            raise ValueError(f"{source}: {where}.wait_for_callee must be true or false")
        changes["wait_for_callee"] = table["wait_for_callee"]
    backend = changes.get("backend")
    if backend is not None and backend not in KNOWN_BACKENDS:
        raise ValueError(
            f"{source}: {where}.backend {backend!r} is not one of "
            f"{', '.join(sorted(KNOWN_BACKENDS))}"
        )
    return replace(base, **changes)
