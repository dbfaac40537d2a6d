"""Run load specs one after another with a progress bar, then print the table."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from service.loadtest.report import call_failure, render
from service.loadtest.run import LoadSpec, Outcome, run_load

__all__ = ["run_loadtest", "run_specs"]


def run_specs(
    specs: list[LoadSpec], console: Console | None = None, log_dir: Path | None = None
) -> list[Outcome]:
    """Run each spec in turn; the processes' logs go to ``log_dir`` (default: a temporary
    directory, removed at the end)."""
    console = console or Console(stderr=True)
    outcomes: list[Outcome] = []
    with contextlib.ExitStack() as stack:
        tmp = log_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="loadtest-")))
        tmp.mkdir(parents=True, exist_ok=True)
        for spec in specs:
            name = spec.label or f"{spec.mode} N={spec.calls}"
            with Progress(
                TextColumn(f"[bold]{name}"),
                BarColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            ) as bar:
                task = bar.add_task("starting", total=spec.ramp_s + spec.seconds)

                outcome = run_load(spec, Path(tmp), progress=_updater(bar, task))
            outcomes.append(outcome)
    return outcomes


def _updater(bar: Progress, task: TaskID) -> Callable[[float, float, str], None]:
    def update(done: float, total: float, status: str) -> None:
        bar.update(task, completed=done, total=total, description=status)

    return update


def run_loadtest(specs: list[LoadSpec], log_dir: Path | None = None) -> int:
    """The ``loadtest`` command: 0 if every call went through, 1 otherwise."""
    outcomes = run_specs(specs, log_dir=log_dir)
    render(outcomes, Console(width=200))
    failed = any(o.error is not None or any(call_failure(r) for r in o.results) for o in outcomes)
    return 1 if failed else 0
