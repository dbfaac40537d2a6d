"""The house rules, checked on the source: who may import whom, and no import circles.

Imports are read from the AST: top-level, function-level and ``TYPE_CHECKING`` ones alike,
since each is a dependency a reader has to follow. ``python bench/import_graph.py`` prints
the same graph.
"""

from __future__ import annotations

from bench.import_graph import FORBIDDEN, cycles, forbidden_imports, import_graph


def test_no_import_cycles_among_service_modules() -> None:
    found = cycles(import_graph())
    assert found == [], "\n".join(" → ".join(cycle) for cycle in found)


def test_edges_import_only_what_their_rules_allow() -> None:
    graph = import_graph()
    broken = forbidden_imports(graph)
    assert broken == [], "\n".join(f"{a} imports {b} ({why})" for a, b, why in broken)


def test_the_rules_cover_every_edge_package() -> None:
    prefixes = {rule.importer for rule in FORBIDDEN}
    assert {
        "service.telephony",
        "service.realtime",
        "service.modelserver",
        "service.peers",
    } <= prefixes
    graph = import_graph()
    assert any(module.startswith("service.telephony.twilio") for module in graph)
