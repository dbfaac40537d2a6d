"""A campaign's progress line and results table, as text (the CLI and the demo print them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["progress_line", "results_table"]

BAR = 30
TABLE_COLUMNS = ("contact_id", "phone", "result", "attempts", "answered_by", "outcome",
                 "duration_s", "last_error")  # fmt: skip


def progress_line(status: Mapping[str, Any]) -> str:
    """``[#####.....] 4/10 done | dialed 6 · in call 2 · person 3 · voicemail 1 · failed 1 ·
    waiting for window 0 | running``."""
    counters = status.get("counters", {})
    total = int(counters.get("total", 0))
    done = int(counters.get("done", 0))
    filled = BAR * done // total if total else BAR
    failed = sum(int(counters.get(k, 0)) for k in ("failed", "busy", "no_answer", "invalid"))
    parts = (
        f"dialed {counters.get('dialed', 0)}",
        f"in call {status.get('live', 0)}",
        f"person {counters.get('answered', 0)}",
        f"voicemail {counters.get('voicemail_left', 0)}",
        f"machine {counters.get('machine', 0)}",
        f"failed {failed}",
        f"dnc {counters.get('dnc', 0)}",
        f"waiting for window/retry {status.get('waiting_for_window', 0)}",
    )
    bar = "#" * filled + "." * (BAR - filled)
    return f"[{bar}] {done}/{total} done | {' · '.join(parts)} | {status.get('state')}"


def results_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = TABLE_COLUMNS) -> str:
    cells = [[str(row.get(c, "") or "")[:40] for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)
