from __future__ import annotations

import pytest

from service.ui.search import matches

CALL = {
    "from": "+15550100001",
    "to": "+15550100002",
    "profile": "hotline",
    "end_reason": "caller_hangup",
    "status": "completed",
}


@pytest.mark.parametrize(
    "query",
    [
        "",
        "CA12",
        "ca12",
        "hotline",
        "HOT",
        "caller_hangup",
        "completed",
        "0100001",
        "+1 555 010 0002",
        "555-0100",
    ],
)
def test_matching_queries(query: str) -> None:
    assert matches("CA1234", CALL, query)


@pytest.mark.parametrize("query", ["CA99", "sales", "busy", "0199", "hang"])
def test_other_queries(query: str) -> None:
    assert not matches("CA1234", CALL, query)
