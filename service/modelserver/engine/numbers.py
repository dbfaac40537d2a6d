"""Reading numbers out of a caller's transcript, and tool messages fit to be spoken.

Whisper writes spoken digits in several ways: "4217", "4 2 1 7", "four two one seven",
"9-4-1-0-7", and — its most common slip on "four" — "my order for 217" or "9 for 107".
:func:`numbers_in` finds each separate number (so "order 4217, ZIP 94107" is two numbers,
not "421794107") and reads it with the engine's own :func:`.digits.spoken_digits`.

Run edges are where words and digits are confused, so they get rules of their own, decided
by the lengths the agent is waiting for (``lengths``: the slot, or None):

* a leading "for" is a 4 only if the number is then one of the expected lengths
  ("for 217" → 4217 when an order number was asked for);
* a leading "oh" is a 0 only if that makes an expected length ("oh two one three nine" for
  a ZIP); otherwise it is the interjection ("Oh, let me find it" gave a false 0 in the study);
* a trailing "for" after a single digit is a 4 ("nine four one oh for"), after a longer
  number a word ("4217 for my mom").
"""

from __future__ import annotations

import re
from collections.abc import Collection

from service.modelserver.engine.digits import DIGIT_WORDS, HOMOPHONES, TEENS, TENS
from service.modelserver.engine.digits import spoken_digits as _digits

__all__ = ["numbers_in", "speakable"]

_TOKEN = re.compile(r"[a-z]+|\d+")
_STRONG = frozenset(DIGIT_WORDS) - {"oh", "o"} | frozenset(TEENS) | frozenset(TENS)
_WEAK = frozenset(HOMOPHONES) | {"oh", "o"}
_REPEAT = frozenset({"double", "triple"})
_FILLER = frozenset({"uh", "um", "er", "ah", "dash", "hyphen"})
_ZERO = frozenset({"oh", "o"})
_FOUR = frozenset({"for", "fore"})

Run = list[tuple[int, str, str]]  # (character position, token, kind)


def _gap(text: str, run: Run, i: int) -> str:
    """What stood between token ``i`` and the next: a comma is a pause, and a pause stops
    a pair reading ("twenty, seven" is 2 0 7), so it is kept."""
    end = run[i][0] + len(run[i][1])
    between = text[end : run[i + 1][0]] if i + 1 < len(run) else ""
    return ", " if any(c in between for c in ",.;:!?") else " "


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


def _words(run: Run, text: str) -> str:
    return "".join(token + _gap(text, run, i) for i, (_, token, _) in enumerate(run))


def _read(run: Run, lengths: Collection[int] | None, text: str) -> tuple[int, str] | None:
    def _fits(part: Run, lengths: Collection[int] | None, default: int) -> bool:
        n = len(_digits(_words(part, text)))
        return n in lengths if lengths else n == default

    """One run of number-ish tokens → (position, digits), or None if it holds no digit."""
    while run and run[-1][2] in ("filler", "repeat"):
        run = run[:-1]
    while run and run[-1][2] == "weak" and run[-1][1] in _FOUR:
        single = len(run) > 1 and (
            run[-2][1] in DIGIT_WORDS or (run[-2][1].isdigit() and len(run[-2][1]) == 1)
        )
        if single and (not lengths or _fits(run, lengths, 0)):
            break
        run = run[:-1]
    while run and run[-1][1] in ("won", "ate"):
        run = run[:-1]  # a trailing "won"/"ate": a word
    while run and (run[0][2] == "filler" or run[0][1] in ("won", "ate")):
        run = run[1:]
    if not any(kind == "strong" for _, _, kind in run):
        return None
    if run[0][1] in _FOUR:  # "for 217": a 4 only if one is missing
        rest = run[1:]
        four = [(run[0][0], "four", "strong"), *rest]
        run = four if _fits(four, lengths, 4) and not _fits(rest, lengths, -1) else rest
    if run and run[0][1] in _ZERO:
        rest = run[1:]
        if not (lengths and _fits(run, lengths, 0) and not _fits(rest, lengths, 0)):
            run = rest
    digits = _digits(_words(run, text)) if run else ""
    return (run[0][0], digits) if digits else None


def numbers_in(text: str, lengths: Collection[int] | None = None) -> list[tuple[int, str]]:
    """``[(character position, digits), …]`` for each number in ``text``, in order;
    ``lengths``: the digit counts the agent is waiting for, which settle edge words."""
    out: list[tuple[int, str]] = []
    run: Run = []
    text = text.lower()
    for match in _TOKEN.finditer(text):
        kind = _kind(match.group())
        if kind is not None:
            run.append((match.start(), match.group(), kind))
            continue
        if run and (found := _read(run, lengths, text)):
            out.append(found)
        run = []
    if run and (found := _read(run, lengths, text)):
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
