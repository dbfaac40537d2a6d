"""The import graph of ``service/``: circles, and imports the package rules forbid.

``python bench/import_graph.py`` prints a table of package-to-package imports, any circles,
and any forbidden edges; ``tests/test_architecture.py`` asserts there are none. Every import
counts, wherever it sits (top level, inside a function, under ``TYPE_CHECKING``).
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "service"


@dataclass(frozen=True)
class Rule:
    importer: str  # a module prefix
    forbidden: str  # a module prefix it must not import
    why: str


# DESIGN.md "Import rules", and each package's own rules header.
FORBIDDEN: tuple[Rule, ...] = (
    Rule("service.telephony", "service.realtime", "a carrier edge never knows the model"),
    Rule("service.telephony", "service.agent", "a carrier edge never knows the agent"),
    Rule("service.telephony", "service.calls.worker", "carriers reach the middle via factory"),
    Rule("service.realtime", "service.telephony", "a model edge never knows the carrier"),
    Rule("service.realtime", "service.agent", "a model edge never knows the agent"),
    Rule("service.realtime", "service.calls", "a model edge never knows the middle"),
    Rule("service.modelserver", "service.agent", "the model server speaks only the wire"),
    Rule("service.modelserver", "service.calls", "the model server speaks only the wire"),
    Rule("service.modelserver", "service.telephony", "the model server speaks only the wire"),
    Rule("service.modelserver", "service.realtime", "the model server speaks only the wire"),
    Rule("service.modelserver", "service.store", "the model server speaks only the wire"),
    Rule("service.peers", "service.agent", "a peer speaks only the wire"),
    Rule("service.peers", "service.calls", "a peer speaks only the wire"),
    Rule("service.peers", "service.realtime", "a peer speaks only the wire"),
    Rule("service.peers", "service.telephony", "a peer speaks only the wire"),
    Rule("service.peers", "service.store", "a peer speaks only the wire"),
    Rule("service.peers", "service.modelserver", "a peer speaks only the wire"),
    Rule("service.loadtest", "service.telephony", "the load generator speaks only the wire"),
    Rule("service.loadtest", "service.realtime", "the load generator speaks only the wire"),
    Rule("service.loadtest", "service.calls", "the load generator speaks only the wire"),
    Rule("service.loadtest", "service.agent", "the load generator speaks only the wire"),
    Rule("service.loadtest", "service.store", "the load generator speaks only the wire"),
    Rule("service.loadtest", "service.app", "the load generator speaks only the wire"),
    Rule("service.loadtest", "service.serving", "the load generator speaks only the wire"),
    Rule("service.loadtest", "service.services", "the load generator speaks only the wire"),
    Rule("service.audio", "service.", "audio is the bottom layer"),
    Rule("service.store", "service.calls", "the store keeps what it is given"),
    Rule("service.store", "service.realtime", "the store keeps what it is given"),
    Rule("service.store", "service.telephony", "the store keeps what it is given"),
)
# What the bottom layers may still use (``service.audio`` importing itself, etc.).
ALLOWED: tuple[tuple[str, str], ...] = (("service.audio", "service.audio"),)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph() -> dict[str, set[str]]:
    """module → the ``service`` modules it imports (``from a import b`` counts ``a.b`` when
    ``a.b`` is a module, else ``a``)."""
    files = sorted((ROOT / PACKAGE).rglob("*.py"))
    modules = {_module_name(path) for path in files}
    graph: dict[str, set[str]] = {}
    for path in files:
        name = _module_name(path)
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, path.name == "__init__.py", node)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), as a sorted list.

    A package ``__init__`` that re-exports its own modules is not a circle worth reporting:
    edges from a package to its own submodules are left out.
    """
    edges = {a: {b for b in targets if not b.startswith(a + ".")} for a, targets in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for succ in edges.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix if prefix.endswith(".") else prefix + ".")


def forbidden_imports(graph: dict[str, set[str]]) -> list[tuple[str, str, str]]:
    broken = []
    for importer, targets in sorted(graph.items()):
        for target in sorted(targets):
            for rule in FORBIDDEN:
                if not (_within(importer, rule.importer) and _within(target, rule.forbidden)):
                    continue
                if any(_within(importer, a) and _within(target, b) for a, b in ALLOWED):
                    continue
                broken.append((importer, target, rule.why))
    return broken


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def main() -> int:
    graph = import_graph()
    pairs: Counter[tuple[str, str]] = Counter()
    for importer, targets in graph.items():
        for target in targets:
            if _package(importer) != _package(target):
                pairs[(_package(importer), _package(target))] += 1
    print(f"{len(graph)} modules; package → package imports (count of module edges):")
    print(f"{'from':<24} {'to':<24} {'edges':>5}")
    for (a, b), n in sorted(pairs.items()):
        print(f"{a:<24} {b:<24} {n:>5}")
    found = cycles(graph)
    print(f"\ncircles: {len(found)}")
    for cycle in found:
        print("  " + " → ".join(cycle))
    broken = forbidden_imports(graph)
    print(f"forbidden edge imports: {len(broken)}")
    for a, b, why in broken:
        print(f"  {a} → {b}: {why}")
    return 1 if found or broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
