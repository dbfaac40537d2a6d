"""Bench: latency, CPU and memory the service adds while bridging N concurrent calls.

Run: ``.venv/bin/python bench/bridge_latency.py`` (defaults: ``--loads 10,50,200
--modes transcode,passthrough --seconds 12``). Each row is one ``python -m service loadtest``
run (service/loadtest/): a fresh service, a fresh synthetic model pool (20 ms deltas in real
time) and a fresh redis-server per row, so the service's cumulative ``/stats`` belong to that
row only. The calls: greeting, ~1.2 s question, the agent answers, a ~0.8 s barge-in
(``--barge-every`` repeats it), hang-up at the end. Columns: see service/loadtest/report.py.

The machine is shared and noisy: compare rows within one run, not across runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console

from service.loadtest.cli import run_specs
from service.loadtest.report import render
from service.loadtest.run import LoadSpec
from service.logging import configure_logging


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loads", default="10,50,200", help="comma-separated concurrent calls")
    ap.add_argument("--modes", default="transcode,passthrough", help="AUDIO_MODE values")
    ap.add_argument("--seconds", type=float, default=12.0, help="length of each call")
    ap.add_argument("--barge-every", type=float, default=None, help="repeat barge-ins (s)")
    ap.add_argument("--model-procs", type=int, default=2, help="synthetic model processes")
    ap.add_argument("--redis-url", default=None, help="default: a fresh redis-server per row")
    ap.add_argument(
        "--compare-tree",
        default=None,
        help="also run each row against the service in this checkout (the 'before' rows)",
    )
    args = ap.parse_args()
    loads = [int(x) for x in args.loads.split(",") if x.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in ("transcode", "passthrough") for m in modes) or any(n < 1 for n in loads):
        ap.error("modes must be transcode/passthrough and loads positive integers")
    if not 5 <= args.seconds <= 600:
        ap.error("--seconds must be within 5..600")
    configure_logging("console", "error")  # the softphones log every call at info
    # Alternate the two checkouts row by row, "before" first.
    trees = ([(args.compare_tree, "before ")] if args.compare_tree else []) + [(None, "")]
    specs = [
        LoadSpec(
            calls=n,
            seconds=args.seconds,
            mode=mode,
            model_procs=args.model_procs,
            redis_url=args.redis_url,
            barge_every_s=args.barge_every,
            service_tree=tree,
            label=f"{label}{mode} N={n}",
        )
        for n in loads
        for mode in modes
        for tree, label in trees
    ]
    outcomes = run_specs(specs)
    render(outcomes, Console(width=200))
    by_key = {
        (o.spec.mode, o.spec.calls): o
        for o in outcomes
        if o.calls_per_core and o.spec.service_tree is None
    }
    ratios = [
        f"N={n}: {by_key[('passthrough', n)].calls_per_core / by_key[('transcode', n)].calls_per_core:.2f}x"  # noqa: E501
        for n in loads
        if ("transcode", n) in by_key and ("passthrough", n) in by_key
    ]
    if ratios:
        print("\nCalls per core, passthrough / transcode (same run): " + ", ".join(ratios))
    before = {
        (o.spec.mode, o.spec.calls): o
        for o in outcomes
        if o.calls_per_core and o.spec.service_tree is not None
    }
    gains = [
        f"{mode} N={n}: {by_key[(mode, n)].calls_per_core / b.calls_per_core:.2f}x"
        for (mode, n), b in before.items()
        if (mode, n) in by_key
    ]
    if gains:
        print("Calls per core, this checkout / --compare-tree (same run): " + ", ".join(gains))
    return 0 if all(o.error is None for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
