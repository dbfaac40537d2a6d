from __future__ import annotations

from service.ui.board import LiveBoard

HASH = {
    "carrier": "twilio",
    "direction": "inbound",
    "profile": "hotline",
    "from": "+15550100001",
    "to": "+15550100002",
    "started_at": "2026-12-01T10:00:00.000Z",
}


def board_with_call() -> LiveBoard:
    board = LiveBoard(mask=True)
    board.keep_only(["CA1"])
    board.apply_hash("CA1", HASH)
    return board


def test_a_row_shows_the_call_with_masked_numbers() -> None:
    [row] = board_with_call().snapshot()
    assert row["from"] == "+1••••••0001" and row["to"] == "+1••••••0002"
    assert (row["carrier"], row["direction"], row["profile"]) == ("twilio", "inbound", "hotline")
    assert row["state"] == "greeting" and row["barge_ins"] == 0


def test_state_follows_the_newest_telling_event() -> None:
    board = board_with_call()
    board.apply_event("CA1", {"type": "transcript", "role": "agent"})
    assert board.snapshot()[0]["state"] == "agent speaking"
    board.apply_event("CA1", {"type": "barge_in", "audio_end_ms": "640"})
    row = board.snapshot()[0]
    assert row["state"] == "caller speaking"
    assert row["barge_ins"] == 1 and row["last_heard_ms"] == "640"
    board.apply_event("CA1", {"type": "transcript", "role": "caller"})
    assert board.snapshot()[0]["state"] == "agent answering"
    board.apply_event("CA1", {"type": "response"})
    assert board.snapshot()[0]["state"] == "listening"


def test_an_open_tool_call_wins_until_it_finishes() -> None:
    board = board_with_call()
    board.apply_tool("CA1", {"call_id": "c1", "state": "requested"})
    board.apply_event("CA1", {"type": "transcript", "role": "agent"})
    assert board.snapshot()[0]["state"] == "tool running"
    board.apply_tool("CA1", {"call_id": "c1", "state": "finished"})
    assert board.snapshot()[0]["state"] == "agent speaking"


def test_calls_no_longer_live_leave_the_board() -> None:
    board = board_with_call()
    board.keep_only(["CA2"])
    board.apply_hash("CA2", {**HASH, "started_at": "2026-12-01T10:00:01.000Z"})
    assert [r["call_sid"] for r in board.snapshot()] == ["CA2"]
    board.apply_event("CA1", {"type": "barge_in"})  # a late entry for a gone call is ignored
    assert len(board.rows) == 1
