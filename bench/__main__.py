"""`python -m bench [--quick] [--scenarios ...] [--duration S]`: run the suite, write results, gate on targets."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from bench.gate import evaluate, load_targets, print_outcomes
from bench.report import write_results
from bench.runner import RESULTS, Options, run
from bench.scenarios import ALL_NAMES

SELECTABLE = (*ALL_NAMES, "mixed")


def _options(argv: Sequence[str] | None) -> tuple[Options, bool]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: short scenarios, small seed (< 3 min)")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=SELECTABLE,
        metavar="NAME",
        help=f"run only these (default all): {', '.join(SELECTABLE)}",
    )
    parser.add_argument("--duration", type=float, help="seconds per wrk scenario (default 10; quick 3)")
    parser.add_argument(
        "--workers", default="1", help="comma-separated worker counts to run, e.g. 1,2 (default 1: best on 2 cores)"
    )
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--batch-size", type=int, default=1000, help="metrics per batch POST (default 1000)")
    parser.add_argument("--mixed-users", type=int, help="locust users (default 32; quick 16)")
    parser.add_argument("--mixed-duration", type=float, help="locust seconds (default 60; quick 20)")
    parser.add_argument(
        "--mixed-rate",
        type=float,
        help="mixed workload requests/s across all users (default 500; 0: closed loop, the saturated server)",
    )
    parser.add_argument("--no-gate-exit", action="store_true", help="exit 0 even when a target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, data files)")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    duration = args.duration or (3.0 if quick else 10.0)
    return Options(
        quick=quick,
        duration_s=duration,
        warmup_s=1.0 if quick else 2.0,
        workers=tuple(int(w) for w in str(args.workers).split(",") if w.strip()),
        connections=args.connections,
        batch_connections=8,
        batch_size=args.batch_size,
        threads=2,
        seed_docs=10_000 if quick else 100_000,
        delete_pool=10_000 if quick else 40_000,
        cold_starts=1 if quick else 3,
        mixed_users=args.mixed_users or (16 if quick else 32),
        mixed_duration_s=args.mixed_duration or (20.0 if quick else 60.0),
        mixed_rate=500.0 if args.mixed_rate is None else args.mixed_rate,
        insert_many_s=3.0 if quick else 8.0,
        engine_build_timeout_s=30.0 if quick else 1200.0,
        scenarios=frozenset(args.scenarios or ()),
        keep=bool(args.keep),
    ), bool(args.no_gate_exit)


def main(argv: Sequence[str] | None = None) -> int:
    options, no_gate_exit = _options(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results = run(options)
    results["gate"] = evaluate(results, load_targets())
    paths = write_results(results, RESULTS, stamp)
    print()
    failed = print_outcomes(results["gate"])
    print("\nresults:", *(str(p) for p in paths.values()), sep="\n  ")
    return 0 if no_gate_exit or not failed else 1


if __name__ == "__main__":
    sys.exit(main())
