"""Reading numbers out of a caller's transcript, and tool messages fit to be spoken.

Whisper writes spoken digits in several ways: "4217", "4 2 1 7", "four two one seven",
"9-4-1-0-7", and — its most common slip on "four" — "my order for 217" or "9 for 107".
:func:`numbers_in` finds each separate number (so "order 4217, ZIP 94107" is two numbers,
not "421794107") and reads it with :func:`service.agent.hotline.orders.spoken_digits`,
taking the homophones "for"/"to"/"oh" as digits only where a digit is meant: between digits,
or "for" just before a number that is one digit short of an order number.
"""

from __future__ import annotations

import re

from service.agent.hotline.orders import spoken_digits

__all__ = ["numbers_in", "speakable"]

_TOKEN = re.compile(r"[a-z]+|\d+")
_STRONG = frozenset(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy "
    "eighty ninety".split()
)
_WEAK = {
    "for": "four",
    "to": "two",
    "too": "two",
    "won": "one",
    "ate": "eight",
    "oh": "oh",
    "o": "oh",
}
_REPEAT = frozenset({"double", "triple"})
_FILLER = frozenset({"uh", "um", "er", "ah", "dash", "hyphen"})


def _kind(token: str) -> str | None:
    if token.isdigit() or token in _STRONG:
        return "strong"
    if token in _WEAK:
        return "weak"
    if token in _REPEAT:
        return "repeat"
    if token in _FILLER:
        return "filler"
    return None


def _read(run: list[tuple[int, str, str]]) -> tuple[int, str] | None:
    """One run of number-ish tokens → (position, digits), or None if it holds no digit."""
    # Trailing: fillers, and "for"/"to" as words after a number ("4217 to my mom").
    while run and (run[-1][2] in ("filler", "repeat") or run[-1][1] in ("for", "to", "too")):
        run = run[:-1]
    # Leading: fillers, and "oh"/"won"/"ate" as words ("Oh, it's 4217").
    while run and (run[0][2] == "filler" or run[0][1] in ("oh", "o", "won", "ate")):
        run = run[1:]
    if not any(kind == "strong" for _, _, kind in run):
        return None
    if run[0][2] == "weak":  # a leading "for"/"to": a digit only if one is missing
        rest = spoken_digits(" ".join(_WEAK.get(t, t) for _, t, _ in run[1:]))
        if len(rest) != 3:
            run = run[1:]
    words = " ".join(_WEAK.get(token, token) if kind == "weak" else token for _, token, kind in run)
    digits = spoken_digits(words)
    return (run[0][0], digits) if digits else None


def numbers_in(text: str) -> list[tuple[int, str]]:
    """``[(character position, digits), …]`` for each number in ``text``, in order."""
    out: list[tuple[int, str]] = []
    run: list[tuple[int, str, str]] = []
    for match in _TOKEN.finditer(text.lower()):
        kind = _kind(match.group())
        if kind is not None:
            run.append((match.start(), match.group(), kind))
            continue
        if run and (found := _read(run)):
            out.append(found)
        run = []
    if run and (found := _read(run)):
        out.append(found)
    return out


_SENTENCE = re.compile(r"(?<=[.!?])\s+")
# Tool messages mix facts for the caller with orders for the model ("Ask the caller …").
_TO_MODEL = re.compile(
    r"^(ask|don't|do not|never|offer|look|call|tell|say|use|read|if)\b|\bthe caller\b|_",
    re.IGNORECASE,
)


def speakable(message: str) -> str:
    """The sentences of a tool's ``message`` that can be said to the caller as they are."""
    kept = [s for s in _SENTENCE.split(message.strip()) if s and not _TO_MODEL.search(s)]
    return " ".join(kept)
