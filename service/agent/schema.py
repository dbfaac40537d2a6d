"""Turning a tool's Python signature into what a model reads: a description and a plain JSON
Schema (no titles, no ``$defs``: models handle a self-contained schema best)."""

from __future__ import annotations

from typing import Any

__all__ = ["docstring_summary", "plain_schema"]


def docstring_summary(doc: str) -> str:
    """The docstring's first paragraph, as one line."""
    return " ".join(doc.split("\n\n", 1)[0].split())


def plain_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Pydantic's schema without titles and with ``$defs`` inlined (models handle a
    self-contained schema best; recursive types are refused rather than looped on)."""
    defs = schema.get("$defs", {})

    def clean(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [clean(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = ref.removeprefix("#/$defs/")
            if target in seen:
                raise ValueError(f"recursive type {target} cannot be inlined in a tool schema")
            merged = {**defs[target], **{k: v for k, v in node.items() if k != "$ref"}}
            return clean(merged, (*seen, target))
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("title", "$defs"):
                continue
            if key == "properties":  # keys here are field names, not keywords
                out[key] = {name: clean(sub, seen) for name, sub in value.items()}
            else:
                out[key] = clean(value, seen)
        return out

    plain = clean(schema, ())
    plain.setdefault("properties", {})
    plain["additionalProperties"] = False
    return plain
