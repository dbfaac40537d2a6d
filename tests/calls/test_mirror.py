"""The conversation mirror: what a fresh model session is told, and its memory bound."""

from __future__ import annotations

from service.calls.mirror import ConversationMirror
from service.realtime.events import ReplayItem


def nothing_sent(_item_id: str) -> float:
    return 0.0


def test_lines_come_back_in_order_with_tool_calls_and_outputs() -> None:
    mirror = ConversationMirror()
    mirror.agent_said("item_1", "Hello, how can I help?")
    mirror.caller_said("Where is order 42?")
    mirror.tool_called("call_1", "lookup", '{"n": 42}')
    mirror.tool_answered("call_1", '{"status": "shipped"}')
    mirror.agent_said("item_2", "It shipped.")
    assert mirror.items(nothing_sent) == [
        ReplayItem("agent", "Hello, how can I help?"),
        ReplayItem("caller", "Where is order 42?"),
        ReplayItem("tool_call", '{"n": 42}', call_id="call_1", name="lookup"),
        ReplayItem("tool_output", '{"status": "shipped"}', call_id="call_1"),
        ReplayItem("agent", "It shipped."),
    ]


def test_a_barge_in_cuts_the_agents_line_at_what_was_heard() -> None:
    mirror = ConversationMirror()
    mirror.agent_said("item_1", "one two three four five six seven eight nine ten")
    mirror.agent_cut("item_1", heard_ms=300, sent_ms=1000)
    assert mirror.items(nothing_sent) == [ReplayItem("agent", "one two three")]


def test_a_line_cut_by_a_drop_keeps_only_what_its_audio_could_carry() -> None:
    """Text runs ahead of audio: deltas of words the carrier never got are left out."""
    mirror = ConversationMirror()
    for word in "one two three four five six".split():
        mirror.agent_saying("item_1", word + " ")
    assert mirror.unfinished_agent_line()
    assert mirror.items(lambda _item: 600.0) == [ReplayItem("agent", "one two")]
    assert mirror.items(lambda _item: 0.0) == []
    mirror.session_replaced()
    assert not mirror.unfinished_agent_line()


def test_the_final_transcript_replaces_the_deltas() -> None:
    mirror = ConversationMirror()
    mirror.agent_saying("item_1", "Hel")
    mirror.agent_said("item_1", "Hello there")
    mirror.agent_saying("item_1", " late")  # a stray delta after done changes nothing
    assert mirror.items(nothing_sent) == [ReplayItem("agent", "Hello there")]
    assert len(mirror) == 1


def test_memory_is_bounded_and_orphan_outputs_are_left_out() -> None:
    mirror = ConversationMirror(max_items=3, max_chars=1000)
    mirror.tool_called("call_1", "lookup", "{}")
    mirror.tool_answered("call_1", "ok")
    for n in range(5):
        mirror.caller_said(f"line {n}")
    assert len(mirror) == 3 and mirror.evicted == 4
    assert [i.text for i in mirror.items(nothing_sent)] == ["line 2", "line 3", "line 4"]
    small = ConversationMirror(max_items=100, max_chars=50)
    small.tool_called("call_1", "lookup", "{}")
    small.tool_answered("call_1", "x" * 30)
    small.caller_said("y" * 30)  # evicts the call; its output must not be replayed alone
    assert all(i.kind != "tool_output" for i in small.items(nothing_sent))
    assert sum(len(i.text) for i in small.items(nothing_sent)) <= 50
