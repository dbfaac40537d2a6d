from __future__ import annotations

import orjson

from service.ui.live import StreamSlots, sse


def test_an_sse_frame_is_one_json_line() -> None:
    frame = sse("calls", {"text": "two\nlines"}, event_id="1-0")
    head, data = frame.decode().split("data: ")
    assert head == "id: 1-0\nevent: calls\n"
    assert data.endswith("\n\n") and "\n" not in data[:-2]
    assert orjson.loads(data) == {"text": "two\nlines"}


def test_feed_slots_are_bounded() -> None:
    slots = StreamSlots(2)
    assert slots.take() and slots.take() and not slots.take()
    slots.give()
    assert slots.take()
    for _ in range(5):
        slots.give()
    assert slots.open == 0
