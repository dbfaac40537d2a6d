"""Slot-aware hearing: what number the agent is waiting for, and which of the decoder's
alternatives to believe.

The engine knows only what crossed the wire: the words it last spoke. When those words ask
for an order number or a ZIP code, the caller's next turn is transcribed expecting digits
(:mod:`.stt` switches prompt and beam) and the slot's lengths pick among the beam's
hypotheses: the first one (best score first) that reads as a number of an expected length
wins. How sure the engine is goes to the brain with the transcript (:class:`Heard`), so the
dialogue can read uncertain digits back instead of acting on them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from service.modelserver.engine.numbers import numbers_in

__all__ = ["ORDER", "ZIP", "Heard", "Slot", "choose", "slot_asked"]


@dataclass(frozen=True)
class Slot:
    """A number the agent asked for: its name and the digit counts it may have."""

    name: str
    lengths: tuple[int, ...]


ORDER = Slot("order", (4, 5, 6))
ZIP = Slot("zip", (5,))


@dataclass(frozen=True)
class Heard:
    """A transcript and how far to trust it: ``confident`` is False when the digits the
    slot needed came from a lower-ranked hypothesis, or the top hypotheses disagree."""

    text: str
    confident: bool = True
    slot: Slot | None = None


_CONFIRMING = re.compile(
    r"\b(is that right|is that correct|is that the right|did i get that right)\b", re.I
)
_ZIP = re.compile(r"\b(zip|postal|post code|postcode)\b", re.I)
_ORDER = re.compile(r"\border number\b", re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def slot_asked(said: str) -> Slot | None:
    """The slot the agent's last words ask for (the last sentence that names one), or None.

    A read-back ("I heard 9 4 1 0 7 — is that right?") expects yes/no, not digits: the
    digits prompt could make Whisper write a number for "yes"."""
    for sentence in reversed([s for s in _SENTENCE_END.split(said.strip()) if s]):
        if _CONFIRMING.search(sentence):
            return None
        if _ZIP.search(sentence):
            return ZIP
        if _ORDER.search(sentence):
            return ORDER
    return None


# Whisper's usual slip on "double six" over the phone is "number six" (study: 3 of 9
# "double" clips right). Read so only when the plain reading does not fit the slot and this
# one does — and then never as sure, so the digits are read back.
_NUMBER_FOR_DOUBLE = re.compile(
    r"\bnumber\b(?=[\s,]+(zero|oh|one|two|three|four|five|six|seven|eight|nine|\d)\b)", re.I
)


# "to" between digits is a 2 far less often than a word (study: to→2 broke 19 transcripts,
# fixed none), but "4 to 1 7" for an order number is only readable one way. Same rule as
# above: only when nothing else fits, and read back.
_DIGIT = r"(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|\d)"
_TO_BETWEEN = re.compile(rf"(\b{_DIGIT}[\s,]+)(?:to|too)\b(?=[\s,]+{_DIGIT}\b)", re.I)


def _fallbacks(text: str) -> list[str]:
    """Readings of ``text`` tried only when no hypothesis fits the slot as written."""
    doubled = _NUMBER_FOR_DOUBLE.sub("double", text)
    two = _TO_BETWEEN.sub(r"\1two", text)
    return [t for t in (doubled, two) if t != text]


def _fitting(text: str, slot: Slot) -> str | None:
    for _, digits in numbers_in(text, slot.lengths):
        if len(digits) in slot.lengths:
            return digits
    return None


def choose(hypotheses: Sequence[str], slot: Slot | None, *, doubles: bool = True) -> Heard:
    """The hypothesis to believe (best first in ``hypotheses``) for ``slot``; ``doubles``:
    try the fallback readings ("number" as "double", "to" as 2; see above) when nothing fits
    as written (off only to measure them)."""
    if not hypotheses:
        return Heard("", slot=slot)
    if slot is None:
        return Heard(hypotheses[0])
    readings = [_fitting(text, slot) for text in hypotheses]
    for index, digits in enumerate(readings):
        if digits is None:
            continue
        # Sure only when the best guess fits and no other fitting guess says otherwise.
        others = {d for d in readings if d is not None}
        return Heard(hypotheses[index], confident=index == 0 and others == {digits}, slot=slot)
    for text in hypotheses if doubles else ():
        for reading in _fallbacks(text):
            if _fitting(reading, slot) is not None:
                return Heard(reading, confident=False, slot=slot)
    return Heard(hypotheses[0], confident=False, slot=slot)
