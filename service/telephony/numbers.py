"""Where a call may be sent: transfer-target rules that belong to no carrier.

E.164 numbers and SIP URIs are the public telephone network's and RFC 3261's shapes, and the
allowed-prefix list is the operator's policy; every carrier edge (Twilio's ``<Dial>``, a SIP
``REFER``) dials the same validated target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["TransferPolicy", "validate_transfer_target"]

_HUMAN_ALIASES = frozenset({"", "human", "agent", "person", "operator", "representative"})
_E164 = re.compile(r"\+[1-9]\d{7,14}")  # ITU-T E.164: "+" then 8–15 digits, no leading zero
_SIP_URI = re.compile(
    r"sip:[^\s@<>\"']+@[A-Za-z0-9.-]+(?::\d{1,5})?(?:;[^\s<>\"']*)?", re.IGNORECASE
)
_PHONE_PUNCTUATION = re.compile(r"[\s().-]")


@dataclass(frozen=True, slots=True)
class TransferPolicy:
    """``default_number`` answers "a person"; ``allowed_prefixes`` (e.g. ``("+1", "sip:")``),
    when set, is the only places a transfer may go (TRANSFER_* settings)."""

    default_number: str = ""
    allowed_prefixes: tuple[str, ...] = ()


def validate_transfer_target(target: str, policy: TransferPolicy | None = None) -> str:
    """The dialable target for ``target``: an E.164 number (spaces, dashes, dots and
    parentheses are dropped), a ``sip:user@host`` URI, or — for "human"/"agent"/empty — the
    policy's ``default_number``. Raises ValueError with a sentence the agent can say.

    With ``allowed_prefixes`` set the target must start with one of them: the model picks the
    target, so without a list a caller can talk it into dialling any number (toll fraud).
    """
    policy = policy or TransferPolicy()
    raw = (target or "").strip()
    if raw.lower() in _HUMAN_ALIASES:
        raw = policy.default_number.strip()
        if not raw:
            raise ValueError("I'm sorry, I can't transfer you to a person right now.")
    if raw[:4].lower() == "sip:":
        if not _SIP_URI.fullmatch(raw):
            raise ValueError("I can't transfer the call to that address.")
        dialable = "sip:" + raw[4:]
    else:
        dialable = _PHONE_PUNCTUATION.sub("", raw)
        if not _E164.fullmatch(dialable):
            raise ValueError(
                "I can't transfer the call to that number. I need the full number with "
                "the country code."
            )
    allowed = tuple(prefix.lower() for prefix in policy.allowed_prefixes)
    if allowed and not dialable.lower().startswith(allowed):
        raise ValueError("I'm not able to transfer calls to that number.")
    return dialable
