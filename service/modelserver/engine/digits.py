"""Digits as a caller says them and Whisper writes them: the engine's own reader.

The engine stands in for a speech model, so it reads numbers itself rather than borrowing
the product's parser (the product keeps its own for its tools). Which rules are here, and
why (measured in ``shared/reference/offline-stt-study.md`` and ``bench/hearing.py``):

* digit words, "oh"/"o" → 0, "double"/"triple" + digit, teens, and pair readings
  ("twenty-six thirty-four" → 2634, "twenty" alone → 20);
* homophones "for"/"fore" → 4, "won" → 1, "ate" → 8, but only next to a digit: on its own
  "for" is a preposition. Across the study's 5,277 transcripts "for"→4 fixed 9 and broke 0;
* **not** "to"/"too" → 2: it broke 19 transcripts and fixed none (Whisper writes
  "seventy-three" as "7 to 3" when it mishears a pair);
* "hundred"/"thousand"/"point"/"minus" make a reading ambiguous: refuse rather than guess;
* a pause mark stops a pair reading: "twenty-six" and "twenty six" are 26, but "twenty,
  seven four five" is 2 0 7 4 5 (Whisper writes the caller's pause as a comma).
"""

from __future__ import annotations

import re

__all__ = ["DIGIT_WORDS", "HOMOPHONES", "spoken_digits", "tokens"]

DIGIT_WORDS = {
    "zero": 0, "oh": 0, "o": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
TENS = {
    "twenty": 2, "thirty": 3, "forty": 4, "fifty": 5, "sixty": 6, "seventy": 7, "eighty": 8,
    "ninety": 9,
}  # fmt: skip
REPEAT = {"double": 2, "triple": 3}
# Words Whisper writes for a digit it heard; a digit only next to another digit.
HOMOPHONES = {"for": "four", "fore": "four", "won": "one", "ate": "eight"}
AMBIGUOUS = frozenset({"hundred", "thousand", "million", "point", "minus"})

_TOKEN = re.compile(r"[a-z]+|\d+")
_WITH_PAUSES = re.compile(r"[a-z]+|\d+|[,.;:!?]")
PAUSE = ","


def tokens(text: str) -> list[str]:
    """Lower-case words and digit runs ("9-4-1" → ["9", "4", "1"])."""
    return _TOKEN.findall(text.lower())


def _tokens_and_pauses(text: str) -> list[str]:
    return [PAUSE if t in ",.;:!?" else t for t in _WITH_PAUSES.findall(text.lower())]


def _is_digitish(token: str) -> bool:
    return token.isdigit() or token in DIGIT_WORDS or token in TEENS or token in TENS


def _resolve_homophones(words: list[str]) -> list[str]:
    out = list(words)
    for i, word in enumerate(words):
        if word not in HOMOPHONES:
            continue
        before = i > 0 and _is_digitish(words[i - 1])
        after = i + 1 < len(words) and _is_digitish(words[i + 1])
        if before or after:
            out[i] = HOMOPHONES[word]
    return out


def spoken_digits(text: str) -> str:
    """The digits in ``text`` ("4 2 1 7", "four two one seven", "forty-two seventeen",
    "one double five", "9 for 1 oh 7"); other words are skipped; "" when ambiguous."""
    words = _resolve_homophones(_tokens_and_pauses(text))
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if word.isdigit():
            out.append(word)
        elif word in AMBIGUOUS:
            return ""
        elif word in REPEAT and (nxt in DIGIT_WORDS or (nxt.isdigit() and len(nxt) == 1)):
            digit = str(DIGIT_WORDS[nxt]) if nxt in DIGIT_WORDS else nxt
            out.append(digit * REPEAT[word])
            i += 1
        elif word in DIGIT_WORDS:
            out.append(str(DIGIT_WORDS[word]))
        elif word in TEENS:
            out.append(str(TEENS[word]))
        elif word in TENS:
            if nxt in DIGIT_WORDS and DIGIT_WORDS[nxt] > 0:  # "forty two" is 42
                out.append(f"{TENS[word]}{DIGIT_WORDS[nxt]}")
                i += 1
            else:
                out.append(f"{TENS[word]}0")
        i += 1
    return "".join(out)
