"""Hypothesis strategies for fuzzing protocol cores: arbitrary JSON values put into the fields
of well-formed messages, one field at a time (plus whole arbitrary objects).

``mutations(templates)`` draws (template, path, value): the message is the template with the
value at ``path``. ``wrong_type(template_value, value)`` says whether a core that reads that
field must count the message as malformed (the value is present and of another JSON type).
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

Path = tuple[str | int, ...]

# Values that broke naive parsers (issue 11) besides what hypothesis finds by itself.
_NASTY = ["²", "①", "9" * 5000, "", "x", "-1", "1e400", "٨٠٠٠", "\u0000", "a" * 300]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what orjson can encode
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(_NASTY)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every path to a field in ``value`` (objects' keys and lists' indexes), outermost first."""
    found: list[Path] = []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, inner in items:
        found.append((*prefix, key))
        found += paths(inner, (*prefix, key))
    return found


def get(value: Any, path: Path) -> Any:
    for key in path:
        value = value[key]
    return value


def put(template: Any, path: Path, value: Any) -> Any:
    message = copy.deepcopy(template)
    get(message, path[:-1])[path[-1]] = value
    return message


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "int" if isinstance(value, int) else "float"
    return type(value).__name__


def wrong_type(expected: Any, value: Any) -> bool:
    return value is not None and json_type(value) != json_type(expected)


@st.composite
def mutations(draw: st.DrawFn, templates: list[dict[str, Any]]) -> tuple[dict, Path, Any]:
    template = draw(st.sampled_from(templates))
    path = draw(st.sampled_from(paths(template)))
    return template, path, draw(json_values)
