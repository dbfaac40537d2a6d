"""Typed field reads of model events (service/realtime/wire.py)."""

from __future__ import annotations

from service.realtime.wire import MS_LIMIT, Fields


def test_well_typed_fields_read_as_they_are() -> None:
    event = Fields({"id": "r1", "ms": 40, "on": True, "sub": {"x": "y"}, "ids": ["a", "b"]})
    assert event.text("id") == "r1" and event.integer("ms") == 40 and event.flag("on")
    assert event.object("sub").text("x") == "y" and event.texts("ids") == ["a", "b"]
    assert event.problems == []


def test_missing_and_null_fields_are_absent_not_problems() -> None:
    event = Fields({"id": None})
    assert event.text("id", "d") == "d" and event.integer("ms", 7) == 7
    assert event.object("sub").text("x") == "" and event.objects("parts") == []
    assert event.problems == []


def test_wrong_types_read_as_absent_and_are_noted_once_each() -> None:
    event = Fields(
        {"id": 1.5, "ms": "²", "big": MS_LIMIT + 1, "on": "yes", "sub": "x", "ids": [1, "a"]}
    )
    assert event.text("id") == "" and event.integer("ms") == 0 and event.integer("big") == 0
    assert event.flag("on") is False and event.object("sub").text("x") == ""
    assert event.texts("ids") == ["a"]
    assert len(event.problems) == 6
    assert event.problems[0] == "id is float, not a string"


def test_texts_are_cut_and_problems_are_bounded() -> None:
    assert Fields({"t": "x" * 10_000}).text("t", limit=100) == "x" * 100
    event = Fields({str(i): [] for i in range(50)})
    for i in range(50):
        event.text(str(i))
    assert len(event.problems) == Fields.MAX_PROBLEMS
