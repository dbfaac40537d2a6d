"""The engine's own digit reader and slot-aware choice (rules measured in the study and
``bench/hearing.py``)."""

from __future__ import annotations

import pytest

from service.modelserver.engine.digits import spoken_digits
from service.modelserver.engine.numbers import numbers_in
from service.modelserver.engine.slots import ORDER, ZIP, choose, slot_asked


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("nine four one oh seven", "94107"),
        ("Nine, four, one, zero, seven.", "94107"),
        ("one double five seven nine", "15579"),
        ("triple seven oh two", "77702"),
        ("twenty-six thirty-four", "2634"),
        ("twenty six thirty four", "2634"),
        ("Twenty, seven, four, five.", "20745"),  # a pause stops the pair reading
        ("sixty-one ninety-eight", "6198"),
        ("9 for 1 oh 7", "94107"),  # "for" next to a digit is a 4
        ("won two three", "123"),
        ("two hundred", ""),  # ambiguous: ask again rather than guess
    ],
)
def test_spoken_digits(text: str, digits: str) -> None:
    assert spoken_digits(text) == digits


@pytest.mark.parametrize(
    ("text", "lengths", "numbers"),
    [
        ("Hi, where is my order for 217?", (4, 5, 6), ["4217"]),
        ("I'm calling for 4217", None, ["4217"]),  # a whole number: "for" is a word
        ("4217 for my mom", None, ["4217"]),
        ("nine four one oh for", (5,), ["94104"]),  # trailing "for" after a digit
        ("Oh, let me find it", (5,), []),  # a lone leading "oh" is not a 0
        ("Oh, it's nine four one oh seven", (5,), ["94107"]),
        ("oh, two, one, three, nine", (5,), ["02139"]),  # ...unless the slot needs it
        ("7 to 3 41", (4, 5, 6), ["7", "341"]),  # "to" is never a 2 (it broke 19, fixed 0)
        ("It's 4 2 1 7 and my zip code is 9 4 1 0 7.", None, ["4217", "94107"]),
        ("I'd like to talk to a person", None, []),
    ],
)
def test_numbers_in_with_the_slot(
    text: str, lengths: tuple[int, ...] | None, numbers: list[str]
) -> None:
    assert [digits for _, digits in numbers_in(text, lengths)] == numbers


def test_the_slot_comes_from_the_agents_last_question() -> None:
    assert slot_asked("Thanks. To verify it's you, what's the ZIP code on the order?") == ZIP
    assert slot_asked("Thanks for calling. What's your order number?") == ORDER
    keypad = "Sorry about that. Please say the ZIP code again, one digit at a time — or type it."
    assert slot_asked(keypad) == ZIP
    assert slot_asked("I heard 9 4 1 0 7 — is that right?") is None  # yes/no, not digits
    assert slot_asked("Your order shipped. Is there anything else I can help with?") is None


def test_the_hypothesis_that_fits_the_slot_wins_and_is_read_back() -> None:
    top = "Nine, four, one, seven."  # a digit collapsed: 4 digits for a ZIP
    heard = choose([top, "Nine, four, one, oh, seven.", "9 4 1 0 7"], ZIP)
    assert heard.text == "Nine, four, one, oh, seven." and not heard.confident
    sure = choose(["Nine, four, one, oh, seven.", "nine four one oh seven"], ZIP)
    assert sure.confident  # the best fits and no fitting alternative disagrees
    split = choose(["Nine, four, one, oh, seven.", "Nine, four, one, oh, eleven."], ZIP)
    assert split.confident
    disagree = choose(["Nine, four, one, oh, seven.", "Five, four, one, oh, seven."], ZIP)
    assert not disagree.confident
    assert choose(["Hello."], None).confident and choose([], ZIP).text == ""
    # "double seven" heard as "number seven": read so only if that alone fits, and unsure.
    doubled = choose(["Number seven, double eight."], ORDER)
    assert doubled.text == "double seven, double eight." and not doubled.confident
    assert choose(["My order number is four two one seven."], ORDER).confident
    # "4 to 1 7": "to" is a 2 only when nothing fits otherwise, and then it is read back.
    two = choose(["Hi, where is my order 4 to 1 7?"], ORDER)
    assert two.text == "Hi, where is my order 4 two 1 7?" and not two.confident
    assert choose(["I sent 4217 to 9 people"], ORDER).text == "I sent 4217 to 9 people"
